// Package health keeps each running input's status as Elastic Agent would see it (HEALTHY,
// DEGRADED, FAILED, with the reason and since when) and serves it, with the input's last
// successful collection and cursor lag, on the beat's HTTP endpoint for standalone runs: a
// container probe or a systemd check reads it where no Agent watches the beat.
package health

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/elastic-agent-libs/logp"
)

// Names of the states, as Elastic Agent shows them for a unit.
const (
	Healthy  = "HEALTHY"
	Degraded = "DEGRADED"
	Failed   = "FAILED"
	Starting = "STARTING"
	Stopping = "STOPPING"
	Stopped  = "STOPPED"
)

// Name is the Agent's name for an input status.
func Name(s status.Status) string {
	switch s {
	case status.Running:
		return Healthy
	case status.Degraded:
		return Degraded
	case status.Failed:
		return Failed
	case status.Stopping:
		return Stopping
	case status.Stopped:
		return Stopped
	default: // Unknown, Starting, Configuring: nothing collected yet
		return Starting
	}
}

// severity orders the states for the overall one: the worst input decides.
func severity(name string) int {
	switch name {
	case Failed:
		return 3
	case Degraded:
		return 2
	case Starting, Stopping, Stopped:
		return 1
	default:
		return 0
	}
}

// Registry holds the status of every running input.
type Registry struct {
	log *logp.Logger
	now func() time.Time

	mu     sync.Mutex
	inputs map[string]*Reporter // by input id
}

// NewRegistry is an empty registry whose reporters log each status change on log.
func NewRegistry(log *logp.Logger) *Registry {
	return &Registry{log: log, now: time.Now, inputs: map[string]*Reporter{}}
}

// Reporter is one input's status reporter: it records each status, logs each change of state
// once, and passes every update on to the next reporter (Elastic Agent's, when managed).
type Reporter struct {
	reg     *Registry
	id, typ string
	log     *logp.Logger
	mu      sync.Mutex
	state   Input
	next    status.StatusReporter
}

// Input is one input's health as the endpoint shows it.
type Input struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"`
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// Filled from the input's metrics when served.
	LastSuccess     string   `json:"last_success,omitempty"`
	CursorTime      string   `json:"cursor,omitempty"`
	LagSeconds      *float64 `json:"lag_seconds,omitempty"`
	LagEvents       *int64   `json:"lag_events,omitempty"`
	PartitionsOwned *int64   `json:"partitions_owned,omitempty"`
}

// Register adds an input, STARTING until it reports. A second input under the same id
// replaces the first (a runner restarted with a new configuration).
func (r *Registry) Register(id, inputType string) *Reporter {
	rep := &Reporter{
		reg: r, id: id, typ: inputType,
		log:   r.log.With("id", id, "input_type", inputType),
		state: Input{ID: id, Type: inputType, Status: Starting, Since: r.now().UTC()},
	}
	r.mu.Lock()
	r.inputs[id] = rep
	r.mu.Unlock()
	return rep
}

// Unregister removes the input: it no longer runs.
func (rep *Reporter) Unregister() {
	rep.reg.mu.Lock()
	defer rep.reg.mu.Unlock()
	if rep.reg.inputs[rep.id] == rep {
		delete(rep.reg.inputs, rep.id)
	}
}

// SetNext makes every later update also reach next (nil: none).
func (rep *Reporter) SetNext(next status.StatusReporter) {
	rep.mu.Lock()
	rep.next = next
	rep.mu.Unlock()
}

// UpdateStatus records a status. A change of state is logged once, with its reason; a new
// reason within the same state is recorded but not logged again (the input logs its own
// failures as they happen).
func (rep *Reporter) UpdateStatus(s status.Status, msg string) {
	name := Name(s)
	rep.mu.Lock()
	prev := rep.state.Status
	rep.state.Reason = msg
	if name != prev {
		rep.state.Status, rep.state.Since = name, rep.reg.now().UTC()
	}
	next := rep.next
	rep.mu.Unlock()

	if name != prev {
		logChange(rep.log, name, prev, msg)
	}
	if next != nil {
		next.UpdateStatus(s, msg)
	}
}

func logChange(log *logp.Logger, name, prev, reason string) {
	const msg = "Input status changed."
	fields := []any{"status", name, "previous", prev}
	if reason != "" {
		fields = append(fields, "reason", reason)
	}
	switch name {
	case Failed:
		log.Errorw(msg, fields...)
	case Degraded:
		log.Warnw(msg, fields...)
	default:
		log.Infow(msg, fields...)
	}
}

// Snapshot lists every input's status, by id.
func (r *Registry) Snapshot() []Input {
	r.mu.Lock()
	reps := make([]*Reporter, 0, len(r.inputs))
	for _, rep := range r.inputs {
		reps = append(reps, rep)
	}
	r.mu.Unlock()
	out := make([]Input, 0, len(reps))
	for _, rep := range reps {
		rep.mu.Lock()
		out = append(out, rep.state)
		rep.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Input) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Overall is the worst state among inputs; HEALTHY without inputs.
func Overall(inputs []Input) string {
	worst := Healthy
	for _, in := range inputs {
		if severity(in.Status) > severity(worst) {
			worst = in.Status
		}
	}
	return worst
}
