// Package cursortest runs a cursor input in a test the way the beat runs it: filebeat's cursor
// input manager, a memlog registry on disk, and a fake output whose ACKs move the cursor. The
// registry directory outlives a run, so a second run on it is a restart.
package cursortest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/common/transform/typeconv"
	"github.com/elastic/beats/v7/libbeat/management/status"
	pubtest "github.com/elastic/beats/v7/libbeat/publisher/testing"
	"github.com/elastic/beats/v7/libbeat/statestore"
	"github.com/elastic/beats/v7/libbeat/statestore/backend/memlog"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/monitoring"
	"github.com/elastic/go-concert/unison"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// ackBatch is how many events the fake output gathers before it ACKs, like a bulk request.
const ackBatch = 1024

// Harness is one input run's output and status reporter.
type Harness struct {
	T   testing.TB
	Dir string // the registry directory
	// AutoAck makes the output ACK in batches and whenever the run loop looks (every 10 ms);
	// without it only Ack moves the cursor.
	AutoAck bool
	// Discard keeps no events (large runs); OnEvent still sees each one, under the lock.
	Discard bool
	OnEvent func(beat.Event)
	Log     *logp.Logger // default: discard

	mu       sync.Mutex
	events   []beat.Event
	count    int
	pending  int
	acked    int
	listener beat.EventListener
	// normalization is what the input asked of libbeat's event normalization (nil: the default).
	normalization *bool
	statuses      []StatusUpdate
	snapshot      monitoring.FlatSnapshot
	started       time.Time
}

// StatusUpdate is one status the input reported.
type StatusUpdate struct {
	Status status.Status
	Msg    string
}

// New is a harness with a fresh registry that ACKs automatically.
func New(t testing.TB) *Harness {
	return &Harness{T: t, Dir: t.TempDir(), AutoAck: true}
}

// Restart is a new harness on the same registry.
func (h *Harness) Restart() *Harness {
	h2 := New(h.T)
	h2.Dir = h.Dir
	return h2
}

// PluginFunc builds the input plugin on the harness's state store.
type PluginFunc func(*logp.Logger, statestore.States) v2.Plugin

type states struct{ reg *statestore.Registry }

func (s states) StoreFor(string) (*statestore.Store, error) { return s.reg.Get("defenderbeat") }
func (s states) CleanupInterval() time.Duration             { return time.Hour }

// UpdateStatus records a status (the harness is the input's status reporter).
func (h *Harness) UpdateStatus(s status.Status, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.statuses = append(h.statuses, StatusUpdate{s, msg})
}

func (h *Harness) connector() beat.PipelineConnector {
	return pubtest.FakeConnector{ConnectFunc: func(cfg beat.ClientConfig) (beat.Client, error) {
		h.mu.Lock()
		h.listener = cfg.EventListener
		h.normalization = cfg.Processing.EventNormalization
		h.mu.Unlock()
		return &pubtest.FakeClient{PublishFunc: func(ev beat.Event) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.count++
			if !h.Discard {
				h.events = append(h.events, ev)
			}
			if h.OnEvent != nil {
				h.OnEvent(ev)
			}
			h.listener.AddEvent(ev, true)
			h.pending++
			if h.AutoAck && h.pending >= ackBatch {
				h.ackLocked(h.pending)
			}
		}}, nil
	}}
}

// Normalized reports whether libbeat would normalize the input's documents before publishing.
func (h *Harness) Normalized() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.normalization == nil || *h.normalization
}

// Ack acknowledges the next n published events, as the output would.
func (h *Harness) Ack(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ackLocked(n)
}

func (h *Harness) ackLocked(n int) {
	n = min(n, h.pending)
	if n <= 0 {
		return
	}
	h.pending -= n
	h.acked += n
	h.listener.ACKEvents(n)
}

// Published returns the events published so far (none with Discard).
func (h *Harness) Published() []beat.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]beat.Event(nil), h.events...)
}

// Count is how many events were published.
func (h *Harness) Count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// LastStatus is the last status reported (zero before any).
func (h *Harness) LastStatus() StatusUpdate {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.statuses) == 0 {
		return StatusUpdate{}
	}
	return h.statuses[len(h.statuses)-1]
}

// Statuses returns every status the input reported, oldest first.
func (h *Harness) Statuses() []StatusUpdate {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]StatusUpdate(nil), h.statuses...)
}

// SawStatus reports whether the input ever reported s.
func (h *Harness) SawStatus(s status.Status) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.statuses {
		if u.Status == s {
			return true
		}
	}
	return false
}

// StartedAt is when the last run started.
func (h *Harness) StartedAt() time.Time { return h.started }

// Metric is an integer metric of the input as it stood when the run was stopped.
func (h *Harness) Metric(name string) int64 {
	h.T.Helper()
	for k, v := range h.snapshot.Ints {
		if k == name || strings.HasSuffix(k, "."+name) {
			return v
		}
	}
	h.T.Fatalf("no metric %s in %v", name, h.snapshot.Ints)
	return 0
}

// Metrics are the input's integer metrics as they stood when the run was stopped.
func (h *Harness) Metrics() map[string]int64 {
	out := make(map[string]int64, len(h.snapshot.Ints))
	for k, v := range h.snapshot.Ints {
		out[k] = v
	}
	return out
}

// Run starts the input and stops it once done() holds, failing the test after timeout.
func (h *Harness) Run(plugin PluginFunc, settings map[string]any, timeout time.Duration, done func() bool) {
	h.T.Helper()
	r := h.Start(plugin, settings)
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			_ = r.stop()
			h.T.Fatalf("condition not reached within %s; %d events published, last status %+v", timeout, h.Count(), h.LastStatus())
		}
		if err := r.Check(); err != nil {
			_ = r.stop()
			h.T.Fatalf("input stopped early: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Stop()
}

// Running is an input started by Start; several may run at once, each on its own harness.
type Running struct {
	h        *Harness
	reg      *statestore.Registry
	tasks    *unison.TaskGroup
	cancel   context.CancelFunc
	metrics  *monitoring.Registry
	finished chan error
	ended    bool
	err      error
	tick     chan struct{}
}

// Start starts the input on the harness's registry; the output ACKs as the harness says until
// Stop, which the test must call.
func (h *Harness) Start(plugin PluginFunc, settings map[string]any) *Running {
	h.T.Helper()
	log := h.Log
	if log == nil {
		log = logp.NewNopLogger()
	}
	backend, err := memlog.New(log, memlog.Settings{Root: h.Dir, FileMode: 0o600})
	if err != nil {
		h.T.Fatal(err)
	}
	r := &Running{h: h, reg: statestore.NewRegistry(backend), tasks: &unison.TaskGroup{}, finished: make(chan error, 1), tick: make(chan struct{})}
	p := plugin(log, states{r.reg})
	if err := p.Manager.Init(r.tasks); err != nil {
		r.reg.Close()
		h.T.Fatal(err)
	}
	inp, err := p.Manager.Create(conf.MustNewConfigFrom(settings))
	if err != nil {
		_ = r.tasks.Stop()
		r.reg.Close()
		h.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.metrics = monitoring.NewRegistry()
	h.started = time.Now()
	go func() {
		r.finished <- inp.Run(v2.Context{
			ID:              "test",
			Name:            p.Name,
			Cancelation:     ctx,
			Logger:          log,
			MetricsRegistry: r.metrics,
			StatusReporter:  h,
		}, h.connector())
	}()
	go func() {
		// The output's flush of a partial batch, every 10 ms.
		for {
			select {
			case <-r.tick:
				return
			case <-time.After(10 * time.Millisecond):
				h.flush()
			}
		}
	}()
	return r
}

func (h *Harness) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.AutoAck && h.listener != nil {
		h.ackLocked(h.pending)
	}
}

// Check returns the input's error if it has stopped on its own.
func (r *Running) Check() error {
	if r.ended {
		return r.err
	}
	select {
	case err := <-r.finished:
		r.ended, r.err = true, err
		if err == nil {
			err = errors.New("returned without error")
		}
		return err
	default:
		return nil
	}
}

// Metrics are the input's integer metrics now.
func (r *Running) Metrics() map[string]int64 {
	return monitoring.CollectFlatSnapshot(r.metrics, monitoring.Full, false).Ints
}

// stop cancels the input and waits for it, without judging how it ended.
func (r *Running) stop() error {
	if r.cancel == nil {
		return r.err
	}
	r.h.flush()
	// The input's metrics are unregistered when it stops: keep what they said at the end.
	r.h.snapshot = monitoring.CollectFlatSnapshot(r.metrics, monitoring.Full, false)
	r.cancel()
	r.cancel = nil
	if !r.ended {
		r.err = <-r.finished
		r.ended = true
	}
	close(r.tick)
	_ = r.tasks.Stop()
	r.reg.Close()
	return r.err
}

// Stop stops the input, failing the test if it returned an error.
func (r *Running) Stop() {
	r.h.T.Helper()
	if err := r.stop(); err != nil {
		r.h.T.Fatalf("input returned %v", err)
	}
}

// StoredCursor reads an input's cursor from the registry directory, as a restart would; key is
// "<input type>::<id>::<source>".
func (h *Harness) StoredCursor(key string, into any) bool {
	h.T.Helper()
	backend, err := memlog.New(logp.NewNopLogger(), memlog.Settings{Root: h.Dir, FileMode: 0o600})
	if err != nil {
		h.T.Fatal(err)
	}
	reg := statestore.NewRegistry(backend)
	defer reg.Close()
	store, err := reg.Get("defenderbeat")
	if err != nil {
		h.T.Fatal(err)
	}
	defer store.Close()
	if ok, _ := store.Has(key); !ok {
		return false
	}
	var st struct {
		Cursor any `struct:"cursor"` // nil until an ACK stored one
	}
	if err := store.Get(key, &st); err != nil {
		h.T.Fatal(err)
	}
	if st.Cursor == nil {
		return false
	}
	if err := typeconv.Convert(into, st.Cursor); err != nil {
		h.T.Fatal(err)
	}
	return true
}

// StartSim starts a simulated tenant for the test.
func StartSim(t testing.TB, cfg simulator.Config) *simulator.Server {
	t.Helper()
	sim, err := simulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	return sim
}

// SimSettings are an input's options pointing at a simulated tenant, with extra on top.
func SimSettings(sim *simulator.Server, id string, extra map[string]any) map[string]any {
	s := map[string]any{
		"id":                          id,
		"tenant_id":                   sim.TenantID(),
		"client_id":                   sim.ClientID(),
		"client_secret":               sim.ClientSecret(),
		"login_url":                   sim.URL(),
		"request_url":                 sim.URL(),
		"ssl.certificate_authorities": []string{sim.CAFile()},
		// The simulator serves the export files itself, not from Azure Storage.
		"download_hosts": []string{sim.Hostname()},
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// StatusMentions reports whether the input reported status s with a message containing text.
func (h *Harness) StatusMentions(s status.Status, text string) bool {
	for _, u := range h.Statuses() {
		if u.Status == s && strings.Contains(u.Msg, text) {
			return true
		}
	}
	return false
}

// AssertUniqueIDs fails when two published documents share an @metadata._id: the input sent a
// document twice within what the test covers.
func AssertUniqueIDs(t testing.TB, events []beat.Event) {
	t.Helper()
	seen := map[string]bool{}
	for _, ev := range events {
		id := fmt.Sprint(ev.Meta["_id"])
		if seen[id] {
			t.Fatalf("document %s published twice", id)
		}
		seen[id] = true
	}
}

// CountRequests counts the requests the simulator answered on path whose query contains
// querySubstring.
func CountRequests(sim *simulator.Server, path, querySubstring string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Path == path && strings.Contains(r.RawQuery, querySubstring) {
			n++
		}
	}
	return n
}
