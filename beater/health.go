package beater

import (
	"github.com/elastic/beats/v7/libbeat/cfgfile"
	"github.com/elastic/beats/v7/libbeat/management/status"
	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/internal/health"
)

// healthRunner puts an input's health reporter between the input and Elastic Agent: the input
// reports to it whether the beat is managed or not, and it passes each report on to the Agent's
// reporter when there is one.
type healthRunner struct {
	cfgfile.Runner
	reporter *health.Reporter
}

// withHealth registers the input a runner runs in the health registry and makes the runner
// report there.
func withHealth(reg *health.Registry, runner cfgfile.Runner, cfg *conf.C) cfgfile.Runner {
	inner, ok := runner.(status.WithStatusReporter)
	if reg == nil || !ok {
		return runner
	}
	id, _ := cfg.String("id", -1)
	typ, _ := cfg.String("type", -1)
	rep := reg.Register(id, typ)
	inner.SetStatusReporter(rep)
	return &healthRunner{Runner: runner, reporter: rep}
}

// SetStatusReporter is called with Elastic Agent's reporter for the input's unit.
func (r *healthRunner) SetStatusReporter(next status.StatusReporter) { r.reporter.SetNext(next) }

func (r *healthRunner) Stop() {
	r.Runner.Stop()
	r.reporter.Unregister()
}
