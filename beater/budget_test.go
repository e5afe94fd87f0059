package beater

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// The alert, incident and vulnerability inputs of one app registration share its request
// budget per API: against a tenant that enforces Microsoft's limits (scaled down from a minute
// to a second so the test sees them within seconds), none of them draws a 429, although the
// two Graph inputs polling every 150 ms each stay within the limit alone and together exceed
// it. They also share one credential: one token per API.
func TestInputsOnOneRegistrationShareTheBudget(t *testing.T) {
	graph := []msapi.CallLimit{{Calls: 10, Window: time.Second}}
	mde := []msapi.CallLimit{{Calls: 5, Window: time.Second}, {Calls: 40, Window: 10 * time.Second}}
	defer msapi.OverrideBudgetLimits(msapi.Graph, graph...)()
	defer msapi.OverrideBudgetLimits(msapi.DefenderForEndpoint, mde...)()
	sim := cursortest.StartSim(t, simulator.Config{
		Seed: 31, Alerts: 120, Incidents: 30,
		GraphLimits: simLimits(graph),
		MDE:         simulator.MDEConfig{APILimits: simLimits(mde)},
	})

	type run struct {
		h    *cursortest.Harness
		r    *cursortest.Running
		name string
	}
	var runs []run
	for _, in := range []struct {
		typ      string
		settings map[string]any
	}{
		{"defender-alert", map[string]any{"batch_size": 10, "interval": "150ms", "initial_interval": "72h"}},
		{"defender-incident", map[string]any{"batch_size": 5, "interval": "150ms", "initial_interval": "72h"}},
		{"defender-vulnerability", map[string]any{"interval": "100ms"}},
	} {
		ds, _ := datasetOf(in.typ)
		h := cursortest.New(t)
		runs = append(runs, run{h: h, r: h.Start(ds.Plugin, cursortest.SimSettings(sim, in.typ, in.settings)), name: in.typ})
	}
	started := time.Now()
	done := func() bool {
		return time.Since(started) > 3*time.Second &&
			runs[0].h.Count() >= len(sim.Alerts()) &&
			len(sim.Served("incidents")) >= len(sim.Incidents()) &&
			runs[2].h.Count() >= sim.ExportRows()
	}
	for !done() {
		for _, r := range runs {
			if err := r.r.Check(); err != nil {
				t.Fatalf("%s stopped: %v", r.name, err)
			}
		}
		if time.Since(started) > 60*time.Second {
			t.Fatalf("not done within 60 s: alerts %d/%d, incidents served %d/%d, vulnerability rows %d/%d",
				runs[0].h.Count(), len(sim.Alerts()), len(sim.Served("incidents")), len(sim.Incidents()), runs[2].h.Count(), sim.ExportRows())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, r := range runs {
		r.r.Stop()
	}

	for _, req := range sim.Requests() {
		if req.Status == http.StatusTooManyRequests {
			t.Fatalf("the tenant throttled %s %s: the inputs exceeded their registration's budget", req.Path, req.RawQuery)
		}
	}
	graphWaits := runs[0].h.Metric("budget_waits_total") + runs[1].h.Metric("budget_waits_total")
	if graphWaits == 0 || runs[2].h.Metric("budget_waits_total") == 0 {
		t.Fatalf("budget waits: graph %d, mde %d; the test did not make the inputs compete", graphWaits, runs[2].h.Metric("budget_waits_total"))
	}
	for _, r := range runs {
		if n := r.h.Metric("throttled_total"); n != 0 {
			t.Errorf("%s: %d throttled answers", r.name, n)
		}
		if st := r.h.LastStatus(); st.Msg != "" && strings.Contains(st.Msg, "429") {
			t.Errorf("%s: status %+v", r.name, st)
		}
	}
	if n := sim.TokensIssued(); n != 2 {
		t.Errorf("%d tokens issued, want 2: one per API for the registration's one credential", n)
	}
}

func simLimits(limits []msapi.CallLimit) []simulator.CallLimit {
	out := make([]simulator.CallLimit, len(limits))
	for i, l := range limits {
		out[i] = simulator.CallLimit{Calls: l.Calls, Window: l.Window}
	}
	return out
}
