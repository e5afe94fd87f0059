package graphinput

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/libbeat/beat"
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

// harness runs one input the way the beat does (cursor manager, memlog registry on disk,
// ACK-driven cursor) against a fake output that ACKs on demand. The registry directory
// outlives a run, so a second run is a restart.
type harness struct {
	t   *testing.T
	dir string

	mu       sync.Mutex
	events   []beat.Event
	acked    int
	autoAck  bool
	listener beat.EventListener
	statuses []statusUpdate
}

type statusUpdate struct {
	status status.Status
	msg    string
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, dir: t.TempDir(), autoAck: true}
}

type testStates struct {
	reg *statestore.Registry
}

func (s testStates) StoreFor(string) (*statestore.Store, error) { return s.reg.Get("defenderbeat") }
func (s testStates) CleanupInterval() time.Duration             { return time.Hour }

func (h *harness) UpdateStatus(s status.Status, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.statuses = append(h.statuses, statusUpdate{s, msg})
}

func (h *harness) connector() beat.PipelineConnector {
	return pubtest.FakeConnector{ConnectFunc: func(cfg beat.ClientConfig) (beat.Client, error) {
		h.mu.Lock()
		h.listener = cfg.EventListener
		h.mu.Unlock()
		return &pubtest.FakeClient{PublishFunc: func(ev beat.Event) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.events = append(h.events, ev)
			h.listener.AddEvent(ev, true)
			if h.autoAck {
				h.acked++
				h.listener.ACKEvents(1)
			}
		}}, nil
	}}
}

// ack acknowledges the next n published events, as the output would.
func (h *harness) ack(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acked += n
	h.listener.ACKEvents(n)
}

func (h *harness) published() []beat.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]beat.Event(nil), h.events...)
}

func (h *harness) lastStatus() statusUpdate {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.statuses) == 0 {
		return statusUpdate{}
	}
	return h.statuses[len(h.statuses)-1]
}

func (h *harness) sawStatus(s status.Status) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range h.statuses {
		if u.status == s {
			return true
		}
	}
	return false
}

// run starts the input and stops it once done() holds (or fails the test after timeout).
func (h *harness) run(spec Spec, settings map[string]any, timeout time.Duration, done func() bool) {
	h.t.Helper()
	log := logp.NewNopLogger()
	backend, err := memlog.New(log, memlog.Settings{Root: h.dir, FileMode: 0o600})
	if err != nil {
		h.t.Fatal(err)
	}
	reg := statestore.NewRegistry(backend)
	defer reg.Close()

	plugin := spec.Plugin(log, testStates{reg})
	var tasks unison.TaskGroup
	if err := plugin.Manager.Init(&tasks); err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = tasks.Stop() }()

	inp, err := plugin.Manager.Create(conf.MustNewConfigFrom(settings))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan error, 1)
	go func() {
		finished <- inp.Run(v2.Context{
			ID:              "test",
			Name:            spec.InputType,
			Cancelation:     ctx,
			Logger:          log,
			MetricsRegistry: monitoring.NewRegistry(),
			StatusReporter:  h,
		}, h.connector())
	}()

	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			cancel()
			<-finished
			h.t.Fatalf("condition not reached within %s; %d events published, last status %+v", timeout, len(h.published()), h.lastStatus())
		}
		select {
		case err := <-finished:
			h.t.Fatalf("input stopped early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-finished; err != nil {
		h.t.Fatalf("input returned %v", err)
	}
}

// simSettings points an input at a simulator.
func simSettings(sim *simulator.Server, id string, extra map[string]any) map[string]any {
	s := map[string]any{
		"id":                          id,
		"tenant_id":                   sim.TenantID(),
		"client_id":                   sim.ClientID(),
		"client_secret":               sim.ClientSecret(),
		"login_url":                   sim.URL(),
		"request_url":                 sim.URL(),
		"ssl.certificate_authorities": []string{sim.CAFile()},
		"interval":                    "100ms",
		"initial_interval":            "72h",
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

func idsOf(t *testing.T, events []beat.Event, key string) []string {
	t.Helper()
	out := make([]string, 0, len(events))
	for _, ev := range events {
		v, err := ev.Fields.GetValue(key)
		if err != nil {
			t.Fatalf("event without %s: %v", key, ev.Fields)
		}
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func mustConfig(t *testing.T, m map[string]any) *conf.C {
	t.Helper()
	c, err := conf.NewConfigFrom(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
