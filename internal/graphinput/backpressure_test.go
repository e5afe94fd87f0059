package graphinput

import (
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/management/status"

	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// A page is streamed to the output record by record; http_client_timeout bounds the waits on the
// network, not how long the output takes. Both tests poll once (interval 1h), so a page cut
// short would leave the run without its records until the test gives up.

// TestSlowOutputDoesNotCutThePage: an output that blocks again and again for longer than
// http_client_timeout while a page is being read still gets the whole page from one request.
func TestSlowOutputDoesNotCutThePage(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 41, Alerts: 200, Incidents: 1})
	h := cursortest.New(t)
	published := 0
	h.OnEvent = func(beat.Event) {
		if published++; published%50 == 1 {
			time.Sleep(800 * time.Millisecond) // the output is full
		}
	}
	settings := simSettings(sim, "slow-output", map[string]any{"interval": "1h", "http_client_timeout": "400ms"})
	h.Run(alertSpec.Dataset().Plugin, settings, 30*time.Second, func() bool { return h.Count() >= 200 })
	assertUnique(t, metaIDs(h.Published()))
	if n := cursortest.CountRequests(sim, alertSpec.Path, ""); n != 1 {
		t.Fatalf("%d page requests, want the one page read whole", n)
	}
	if h.SawStatus(status.Degraded) {
		t.Fatalf("a slow output was reported as a failure: %+v", h.LastStatus())
	}
}

// TestSlowPageFaultIsReadWhole: the simulator's slow-body fault (simulate --faults slowpage)
// trickles a page in for longer than http_client_timeout, never idle that long: it is read whole.
func TestSlowPageFaultIsReadWhole(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 42, Alerts: 50, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultSlowBody, Trickle: 1500 * time.Millisecond})
	h := cursortest.New(t)
	settings := simSettings(sim, "slow-page", map[string]any{"interval": "1h", "http_client_timeout": "500ms"})
	h.Run(alertSpec.Dataset().Plugin, settings, 30*time.Second, func() bool { return h.Count() >= 50 })
	if n := cursortest.CountRequests(sim, alertSpec.Path, ""); n != 1 {
		t.Fatalf("%d page requests, want the slow page read whole", n)
	}
	if h.SawStatus(status.Degraded) {
		t.Fatalf("a slow page was reported as a failure: %+v", h.LastStatus())
	}
}
