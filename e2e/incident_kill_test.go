package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// TestKilledInIncidentFallbackLosesNothing: the incident listing with $expand=alerts always
// fails, so the input reads each incident's alerts on its own, and some of those reads fail too
// (503, retried). The beat is killed with SIGKILL in that mode and restarted on the same
// path.data: every (incident, alert) document arrives, none without its alerts, and a document
// written twice carries the same _id.
func TestKilledInIncidentFallbackLosesNothing(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 27, Alerts: 600, Incidents: 120})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	sim.AddFault(simulator.Fault{Path: "/v1.0/security/incidents", ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1})
	sim.AddFault(simulator.Fault{Path: "/v1.0/security/incidents/", Status: 503, RetryAfter: "1", Times: 8})

	// What a complete collection publishes: "incident/alert" per alert, "incident" for one
	// without alerts.
	alertsOf := map[string][]string{}
	for _, a := range sim.Alerts() {
		alertsOf[fmt.Sprint(a["incidentId"])] = append(alertsOf[fmt.Sprint(a["incidentId"])], fmt.Sprint(a["id"]))
	}
	want := map[string]bool{}
	for _, inc := range sim.Incidents() {
		id := fmt.Sprint(inc["id"])
		if len(alertsOf[id]) == 0 {
			want[id] = true
		}
		for _, a := range alertsOf[id] {
			want[id+"/"+a] = true
		}
	}

	out, data := t.TempDir(), t.TempDir()
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{simInput(sim, "defender-incident", "incident-kill", sim.ClientSecret(),
			map[string]any{"interval": "1s", "initial_interval": "72h", "batch_size": 5, "max_retries": 1})},
		"output.file": map[string]any{"path": out, "filename": "docs"},
		"queue.mem":   map[string]any{"flush.timeout": "100ms", "flush.min_events": 10},
	})
	published := func() (keys map[string]bool, idOf map[string]string) {
		keys, idOf = map[string]bool{}, map[string]string{}
		for _, d := range readDocs(t, out) {
			key := fmt.Sprint(get(d, "event.id"))
			if a := get(d, "m365_defender.incident.alert.id"); a != nil {
				key += "/" + fmt.Sprint(a)
			}
			id := fmt.Sprint(get(d, "@metadata._id"))
			if prev, ok := idOf[key]; ok && prev != id {
				t.Fatalf("%s written with _id %s and %s", key, prev, id)
			}
			keys[key], idOf[key] = true, id
		}
		return keys, idOf
	}

	first := startBeat(t, cfg, data)
	waitFor(t, 60*time.Second, "some incidents read one by one", func() bool { k, _ := published(); return len(k) >= 40 })
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	if k, _ := published(); len(k) >= len(want) {
		t.Fatalf("the beat finished every incident before it was killed; the test proves nothing")
	}

	second := startBeat(t, cfg, data)
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	waitFor(t, 90*time.Second, "every incident with all its alerts after the restart", func() bool {
		k, _ := published()
		for key := range want {
			if !k[key] {
				return false
			}
		}
		return true
	})
	k, _ := published()
	for key := range k {
		if !want[key] {
			t.Errorf("published %s, which is neither an incident without alerts nor one of an incident's alerts", key)
		}
	}
}
