// Package beater runs defenderbeat's inputs on libbeat: filebeat's input v2 framework with a
// cursor registry under path.data, a runner list that Elastic Agent can reload, and the publisher
// pipeline with guaranteed sends.
package beater

import (
	"fmt"
	"slices"
	"sync"

	"github.com/elastic/beats/v7/filebeat/channel"
	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/filebeat/input/v2/compat"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/cfgfile"
	"github.com/elastic/beats/v7/libbeat/common/reload"
	"github.com/elastic/beats/v7/libbeat/management"
	"github.com/elastic/beats/v7/libbeat/monitoring/inputmon"
	"github.com/elastic/beats/v7/libbeat/publisher/pipetool"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/go-concert/unison"

	"github.com/defenderbeat/defenderbeat/config"
	"github.com/defenderbeat/defenderbeat/internal/health"
)

type defenderbeat struct {
	cfg    config.Config
	log    *logp.Logger
	health *health.Registry
	done   chan struct{}
	stop   sync.Once
}

// New validates the whole configuration (so `defenderbeat test config` and start-up report every
// problem of every input at once) and prepares the beat.
func New(b *beat.Beat, raw *conf.C) (beat.Beater, error) {
	cfg, err := config.Unpack(raw)
	if err != nil {
		return nil, err
	}
	log := b.Info.Logger.Named("defenderbeat")
	// Under Elastic Agent the inputs arrive through the control protocol, not the file.
	if !b.Manager.Enabled() {
		if err := CheckInputs(cfg.Inputs); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(cfg.Inputs, (*conf.C).Enabled) {
			return nil, fmt.Errorf("no inputs configured: add at least one enabled entry under defenderbeat.inputs (types: %v), or try `defenderbeat simulate`", InputTypes())
		}
	}
	inputHealth := health.NewRegistry(b.Info.Logger.Named("input"))
	if b.API != nil {
		if err := inputmon.AttachHandler(b.API.Router(), b.Monitoring.InputsRegistry()); err != nil {
			return nil, fmt.Errorf("attaching the /inputs/ monitoring endpoint: %w", err)
		}
		if err := b.API.AttachHandler(health.Path, health.Handler(inputHealth, b.Monitoring.InputsRegistry())); err != nil {
			return nil, fmt.Errorf("attaching the %s endpoint: %w", health.Path, err)
		}
	}
	return &defenderbeat{cfg: cfg, log: log, health: inputHealth, done: make(chan struct{})}, nil
}

func plugins(log *logp.Logger, store *stateStore) []v2.Plugin {
	ps := make([]v2.Plugin, len(datasets))
	for i, d := range datasets {
		ps[i] = d.Plugin(log, store)
	}
	return ps
}

// Run mirrors filebeat's own start-up order, keeping only what v2 inputs need.
func (db *defenderbeat) Run(b *beat.Beat) error {
	store, err := openStateStore(b.Info, db.log, db.cfg.Registry, b.Paths)
	if err != nil {
		return fmt.Errorf("opening the cursor registry: %w", err)
	}
	defer store.Close()

	// Every event must reach the output: an input never gives up on a document.
	pipeline := pipetool.WithDefaultGuarantees(b.Publisher, beat.GuaranteedSend)

	inputLog := b.Info.Logger.Named("input")
	loader, err := v2.NewLoader(inputLog, plugins(inputLog, store), "type", "")
	if err != nil {
		return err
	}
	var tasks unison.TaskGroup
	defer func() { _ = tasks.Stop() }()
	if err := loader.Init(&tasks); err != nil {
		return fmt.Errorf("initialising inputs: %w", err)
	}

	factory := withInputDefaults{health: db.health, next: channel.RunnerFactoryWithCommonInputSettings(b.Info,
		compat.RunnerFactory(inputLog, b.Info, b.Monitoring.InputsRegistry(), loader))}
	inputs := cfgfile.NewRunnerList(management.DebugK, factory, pipeline, db.log)
	defer inputs.Stop()
	b.Registry.MustRegisterInput(inputs)

	if !b.Manager.Enabled() {
		var configs []*reload.ConfigWithMeta
		for _, c := range db.cfg.Inputs {
			if c.Enabled() {
				configs = append(configs, &reload.ConfigWithMeta{Config: c})
			}
		}
		if err := inputs.Reload(configs); err != nil {
			return fmt.Errorf("starting inputs: %w", err)
		}
	}

	// The manager starts last: from here on Elastic Agent may add and remove inputs.
	if err := b.Manager.Start(); err != nil {
		return err
	}
	defer b.Manager.Stop()

	db.log.Infow("defenderbeat is running.", "inputs", len(inputs.Runners()), "managed", b.Manager.Enabled())
	<-db.done
	return nil
}

func (db *defenderbeat) Stop() {
	db.stop.Do(func() { close(db.done) })
}
