package incident

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/graphinput"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// These tests are about reading incidents with their alerts (expand.go): they run the real
// input with a minimal transform, so that a document says only which incident and alert it
// carries; the golden tests cover the mapping.
var testSpec = func() graphinput.Spec {
	s := spec(inputkit.Timings{FirstRetry: 100 * time.Millisecond, ClientRetry: [2]time.Duration{50 * time.Millisecond, 1500 * time.Millisecond}})
	s.Transform = testIncidentTransform
	return s
}()

// simSettings points an input at a simulator, polling fast and reading all of its 48 hours.
func simSettings(sim *simulator.Server, id string, extra map[string]any) map[string]any {
	s := map[string]any{"interval": "100ms", "initial_interval": "72h"}
	for k, v := range extra {
		s[k] = v
	}
	return cursortest.SimSettings(sim, id, s)
}

func TestIncidentExpandFallback(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 4, Alerts: 60, Incidents: 8})
	// Only the listing is poisoned; the per-incident reads also carry $expand and succeed.
	sim.AddFault(simulator.Fault{Path: path, ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1})
	h := cursortest.New(t)
	settings := simSettings(sim, "incidents", map[string]any{"batch_size": 5})
	// Run on for a while after the fallback, so that later polls show what they do.
	var fellBack time.Time
	h.Run(testSpec.Dataset().Plugin, settings, 30*time.Second, func() bool {
		if fellBack.IsZero() && h.SawStatus(status.Degraded) && len(h.Published()) > 0 {
			fellBack = time.Now()
		}
		return !fellBack.IsZero() && time.Since(fellBack) > 2*time.Second
	})
	events := h.Published()
	withAlerts := 0
	for _, ev := range events {
		if _, err := ev.Fields.GetValue("record.alert"); err == nil {
			withAlerts++
		}
	}
	if withAlerts == 0 {
		t.Fatalf("fallback published no alert of any incident: %d documents", len(events))
	}
	cursortest.AssertUniqueIDs(t, events)
	// Later polls of the run (interval 100ms) must not spend their retries on the failing
	// listing again: one failed attempt with its retries, then per-incident reads only.
	listings := 0
	for _, r := range sim.Requests() {
		if r.Path == path && strings.Contains(r.RawQuery, "$expand=alerts") {
			listings++
		}
	}
	if listings > 1+5 {
		t.Fatalf("%d expanded listings: the failing listing was tried again on later polls", listings)
	}
}

// TestOversizedIncidentFallsBackToSeparateAlerts: an incident whose expanded alerts exceed
// max_response_bytes must not hold the cursor: the run lists without $expand and publishes the
// incident on its own when even its single read is too large.
func TestOversizedIncidentFallsBackToSeparateAlerts(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 15, Incidents: 6, AlertsPerIncident: 60})
	h := cursortest.New(t)
	h.Run(testSpec.Dataset().Plugin, simSettings(sim, "huge-incidents", map[string]any{"max_response_bytes": 64 << 10}), 30*time.Second,
		func() bool { return h.SawStatus(status.Degraded) && len(h.Published()) >= 6 })
	got := map[string]bool{}
	for _, ev := range h.Published() {
		id, _ := ev.Fields.GetValue("record.id")
		got[fmt.Sprint(id)] = true
	}
	if len(got) != 6 {
		t.Fatalf("%d of 6 incidents published", len(got))
	}
	if msg := h.LastStatus().Msg; !strings.Contains(msg, "max_response_bytes") {
		t.Fatalf("status does not say why: %q", msg)
	}
}

// TestFailedAlertReadKeepsTheIncidentForALaterPoll: while $expand=alerts is broken and each
// incident's alerts are read on their own, a read that fails (5xx after the client's retries, a
// 429 whose Retry-After is above what the client waits) publishes nothing of the incident and
// keeps the cursor before it; the poll is reported DEGRADED with the reason and retried, and
// every incident ends up published with all of its alerts.
func TestFailedAlertReadKeepsTheIncidentForALaterPoll(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault simulator.Fault
	}{
		{"5xx-after-retries", simulator.Fault{Status: 500, Times: 6}},          // max_retries 5: six tries
		{"429-above-retry-cap", simulator.Fault{Status: 429, RetryAfter: "2"}}, // the test client waits at most 1.5s
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := cursortest.StartSim(t, simulator.Config{Seed: 4, Alerts: 60, Incidents: 8})
			sim.AddFault(simulator.Fault{Path: path, ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1})
			target := middleIncidentWithAlerts(t, sim)
			f := tc.fault
			f.Path, f.ExactPath = path+"/"+target, true
			sim.AddFault(f)
			want := incidentDocs(sim)

			h := cursortest.New(t)
			h.Run(testSpec.Dataset().Plugin, simSettings(sim, "alert-read-"+tc.name, map[string]any{"batch_size": 5}), 30*time.Second, func() bool {
				got := publishedIncidentDocs(h.Published())
				for k := range want {
					if !got[k] {
						return false
					}
				}
				return true
			})
			for k := range publishedIncidentDocs(h.Published()) {
				if !want[k] {
					t.Errorf("published %s, which is not an incident without alerts nor an incident's alert", k)
				}
			}
			cursortest.AssertUniqueIDs(t, h.Published())
			if !h.StatusMentions(status.Degraded, "incident "+target) {
				t.Fatalf("no DEGRADED status names incident %s: %+v", target, h.Statuses())
			}
		})
	}
}

// TestStopDuringAlertReadPublishesNothingOfTheIncident: an input stopped while the client
// waits to retry one incident's alert read publishes nothing of that incident; the next run
// publishes it with its alerts.
func TestStopDuringAlertReadPublishesNothingOfTheIncident(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 4, Alerts: 60, Incidents: 8})
	expand500 := simulator.Fault{Path: path, ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1}
	sim.AddFault(expand500)
	target := middleIncidentWithAlerts(t, sim)
	targetPath := path + "/" + target
	sim.AddFault(simulator.Fault{Path: targetPath, ExactPath: true, Status: 503, RetryAfter: "1", Times: -1})
	want := incidentDocs(sim)
	settings := simSettings(sim, "stop-in-retry", map[string]any{"batch_size": 5})

	h := cursortest.New(t)
	h.Run(testSpec.Dataset().Plugin, settings, 30*time.Second, func() bool {
		// The first try was answered: the client now waits a second before the next.
		return cursortest.CountRequests(sim, targetPath, "") >= 1
	})
	for _, ev := range h.Published() {
		if id, _ := ev.Fields.GetValue("record.id"); fmt.Sprint(id) == target {
			t.Fatalf("incident %s was published while its alerts were being read: %v", target, ev.Fields)
		}
	}
	var stored graphinput.Cursor
	var targetUpdate string
	for _, inc := range sim.Incidents() {
		if fmt.Sprint(inc["id"]) == target {
			targetUpdate = fmt.Sprint(inc["lastUpdateDateTime"])
		}
	}
	// The incidents before the target were acknowledged: the stored cursor is on the last of them.
	if !h.StoredCursor("defender-incident::stop-in-retry::tenant-"+sim.TenantID(), &stored) {
		t.Fatal("no cursor stored for the incidents published before the stop")
	}
	storedTS, _ := time.Parse(time.RFC3339Nano, stored.LastUpdate)
	targetTS, _ := time.Parse(time.RFC3339Nano, targetUpdate)
	if !storedTS.Before(targetTS) {
		t.Fatalf("the stored cursor %s is not before incident %s (%s)", stored.LastUpdate, target, targetUpdate)
	}

	sim.ClearFaults()
	sim.AddFault(expand500)
	h2 := h.Restart()
	h2.Run(testSpec.Dataset().Plugin, settings, 30*time.Second, func() bool {
		got := publishedIncidentDocs(append(h.Published(), h2.Published()...))
		for k := range want {
			if !got[k] {
				return false
			}
		}
		return true
	})
}

// incidentDocs is what a complete incident collection publishes: "incident/alert" for every
// alert of an incident, "incident" for an incident without alerts.
func incidentDocs(sim *simulator.Server) map[string]bool {
	alertsOf := map[string][]string{}
	for _, a := range sim.Alerts() {
		inc := fmt.Sprint(a["incidentId"])
		alertsOf[inc] = append(alertsOf[inc], fmt.Sprint(a["id"]))
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
	return want
}

func publishedIncidentDocs(events []beat.Event) map[string]bool {
	got := map[string]bool{}
	for _, ev := range events {
		id, _ := ev.Fields.GetValue("record.id")
		key := fmt.Sprint(id)
		if a, err := ev.Fields.GetValue("record.alert"); err == nil {
			key += "/" + fmt.Sprint(a)
		}
		got[key] = true
	}
	return got
}

// middleIncidentWithAlerts is an incident that is neither first nor last in lastUpdateDateTime
// order and has alerts, so that a failure on it happens mid-run.
func middleIncidentWithAlerts(t *testing.T, sim *simulator.Server) string {
	t.Helper()
	incidents := sim.Incidents()
	slices.SortFunc(incidents, func(a, b map[string]any) int {
		return strings.Compare(fmt.Sprint(a["lastUpdateDateTime"]), fmt.Sprint(b["lastUpdateDateTime"]))
	})
	want := incidentDocs(sim)
	for _, inc := range incidents[len(incidents)/2:] {
		id := fmt.Sprint(inc["id"])
		if !want[id] {
			return id
		}
	}
	t.Fatal("no incident with alerts in the second half")
	return ""
}

// testIncidentTransform emits one document per expanded alert, or one for an incident without.
func testIncidentTransform(raw []byte, _ transform.Options, emit transform.Emit) error {
	var r struct {
		ID         string `json:"id"`
		LastUpdate string `json:"lastUpdateDateTime"`
		Alerts     []struct {
			ID string `json:"id"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	if len(r.Alerts) == 0 {
		emit(beat.Event{Fields: mapstr.M{"record": mapstr.M{"id": r.ID, "last_update": r.LastUpdate}}, Meta: mapstr.M{"_id": r.ID + "/" + r.LastUpdate}})
		return nil
	}
	for _, a := range r.Alerts {
		emit(beat.Event{Fields: mapstr.M{"record": mapstr.M{"id": r.ID, "last_update": r.LastUpdate, "alert": a.ID}}, Meta: mapstr.M{"_id": r.ID + "/" + r.LastUpdate + "/" + a.ID}})
	}
	return nil
}

// TestWithoutAlertsListsPlainly: include_alerts: false lists incidents without $expand and
// publishes each as listed.
func TestWithoutAlertsListsPlainly(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 4, Alerts: 60, Incidents: 8})
	h := cursortest.New(t)
	h.Run(testSpec.Dataset().Plugin, simSettings(sim, "plain", map[string]any{"include_alerts": false}), 20*time.Second,
		func() bool { return len(h.Published()) >= len(sim.Incidents()) })
	if n := cursortest.CountRequests(sim, path, "$expand"); n != 0 {
		t.Fatalf("%d requests carried $expand with include_alerts: false", n)
	}
	for _, ev := range h.Published() {
		if _, err := ev.Fields.GetValue("record.alert"); err == nil {
			t.Fatalf("a document carries an alert: %v", ev.Fields)
		}
	}
}

// TestFilterSelectsIncidentsAtTheAPI: with severities and a filter, only the matching incidents
// are listed, and so only they are read, with their alerts or one by one after a fallback.
func TestFilterSelectsIncidentsAtTheAPI(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			sim := cursortest.StartSim(t, simulator.Config{Seed: 9, Alerts: 120, Incidents: 30})
			if fallback {
				sim.AddFault(simulator.Fault{Path: path, ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1})
			}
			want := map[string]bool{}
			for _, inc := range sim.Incidents() {
				if (inc["severity"] == "high" || inc["severity"] == "medium") && inc["status"] != "resolved" {
					want[fmt.Sprint(inc["id"])] = true
				}
			}
			if len(want) == 0 || len(want) == len(sim.Incidents()) {
				t.Fatalf("%d of %d incidents match: the test needs some on each side", len(want), len(sim.Incidents()))
			}
			h := cursortest.New(t)
			settings := simSettings(sim, "incidents", map[string]any{"batch_size": 5, "severities": []string{"high", "medium"}, "filter": "status ne 'resolved'"})
			got := func() map[string]bool {
				ids := map[string]bool{}
				for _, ev := range h.Published() {
					id, _ := ev.Fields.GetValue("record.id")
					ids[fmt.Sprint(id)] = true
				}
				return ids
			}
			h.Run(testSpec.Dataset().Plugin, settings, 30*time.Second, func() bool { return len(got()) >= len(want) })
			for id := range got() {
				if !want[id] {
					t.Fatalf("incident %s published, which the filter excludes", id)
				}
			}
			for id := range sim.Served("incidents") {
				if !want[id] {
					t.Fatalf("the tenant served incident %s, which the filter excludes", id)
				}
			}
		})
	}
}
