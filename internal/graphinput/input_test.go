package graphinput

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/management/status"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// The input is tested with minimal transforms so that these tests are about paging, cursor and
// failure handling only; the datasets' own golden tests cover the mapping.

func recordDoc(raw []byte) (mapstr.M, error) {
	var r struct {
		ID         string            `json:"id"`
		LastUpdate string            `json:"lastUpdateDateTime"`
		Alerts     []json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return mapstr.M{"record": mapstr.M{"id": r.ID, "last_update": r.LastUpdate, "alerts": len(r.Alerts)}}, nil
}

func testAlertTransform(raw []byte, _ transform.Options, emit transform.Emit) error {
	doc, err := recordDoc(raw)
	if err != nil {
		return err
	}
	id, _ := doc.GetValue("record.id")
	lu, _ := doc.GetValue("record.last_update")
	emit(beat.Event{Timestamp: time.Now(), Fields: doc, Meta: mapstr.M{"_id": fmt.Sprint(id, "/", lu)}})
	return nil
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

var (
	alertSpec = Spec{
		InputType: "defender-alert", Dataset: "alert", Path: "/v1.0/security/alerts_v2",
		Permission: "SecurityAlert.Read.All", DefaultInterval: time.Minute, MaxBatch: 1000,
		Transform: testAlertTransform, tuneClient: fastRetries,
	}
	incidentSpec = Spec{
		InputType: "defender-incident", Dataset: "incident", Path: "/v1.0/security/incidents",
		Permission: "SecurityIncident.Read.All", DefaultInterval: time.Minute, MaxBatch: 50,
		CanExpandAlerts: true, Transform: testIncidentTransform, tuneClient: fastRetries,
	}
)

// fastRetries keeps the client's backoff short so that retry tests take seconds, not minutes.
func fastRetries(o *msapi.Options) { o.SetRetryBackoff(50*time.Millisecond, 1500*time.Millisecond) }

func startSim(t *testing.T, cfg simulator.Config) *simulator.Server {
	return cursortest.StartSim(t, cfg)
}

// simSettings points an input at a simulator, polling fast and reading all of its 48 hours.
func simSettings(sim *simulator.Server, id string, extra map[string]any) map[string]any {
	s := map[string]any{"interval": "100ms", "initial_interval": "72h"}
	for k, v := range extra {
		s[k] = v
	}
	return cursortest.SimSettings(sim, id, s)
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

func metaIDs(events []beat.Event) []string {
	ids := make([]string, 0, len(events))
	for _, ev := range events {
		ids = append(ids, fmt.Sprint(ev.Meta["_id"]))
	}
	return ids
}

func assertUnique(t *testing.T, ids []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("document %s published twice", id)
		}
		seen[id] = true
	}
}

func countRequests(sim *simulator.Server, path, querySubstring string) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Path == path && strings.Contains(r.RawQuery, querySubstring) {
			n++
		}
	}
	return n
}

// putAlerts replaces the simulator's data with n alerts sharing one lastUpdateDateTime.
func putAlertsAt(sim *simulator.Server, prefix string, n int, lastUpdate string) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
		sim.PutAlert(map[string]any{
			"id":                 ids[i],
			"lastUpdateDateTime": lastUpdate,
			"createdDateTime":    lastUpdate,
			"severity":           "medium",
			"status":             "new",
			"title":              "test alert " + ids[i],
		})
	}
	return ids
}

func recordIDs(t *testing.T, events []beat.Event) []string {
	return idsOf(t, events, "record.id")
}

func TestFirstRunThenIncrementalWithRestart(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 7, Alerts: 120, Incidents: 5})
	h := cursortest.New(t)
	settings := simSettings(sim, "alerts", map[string]any{"batch_size": 25})

	h.Run(alertSpec.Plugin, settings, 20*time.Second, func() bool { return len(h.Published()) >= 120 })
	first := h.Published()
	if len(first) != 120 {
		t.Fatalf("first run published %d documents, want the 120 alerts", len(first))
	}
	assertUnique(t, metaIDs(first))
	if countRequests(sim, alertSpec.Path, "$top=25") == 0 {
		t.Fatalf("no request carried $top=25: %+v", sim.Requests())
	}
	for _, ev := range first {
		if ev.Fields["data_stream"].(mapstr.M)["dataset"] != "m365_defender.alert" {
			t.Fatalf("document without data_stream.dataset: %v", ev.Fields)
		}
	}

	// New and updated alerts appear; a restarted input (same registry) fetches exactly those.
	sim.Tick()
	sim.Tick()
	h2 := h.Restart()
	time.Sleep(10 * time.Millisecond)
	h2.Run(alertSpec.Plugin, settings, 20*time.Second, func() bool { return len(h2.Published()) > 0 && h2.LastStatus().Status == status.Running })
	// Give it one more interval to prove it does not re-read what it has.
	time.Sleep(300 * time.Millisecond)
	second := h2.Published()
	if len(second) == 0 {
		t.Fatal("restarted input published nothing after the tenant changed")
	}
	firstIDs := metaIDs(first)
	for _, id := range metaIDs(second) {
		if slices.Contains(firstIDs, id) {
			t.Fatalf("restart re-published already ACKed document %s", id)
		}
	}
	assertUnique(t, metaIDs(second))
}

func TestRecordsSharingOneTimestampAcrossPages(t *testing.T) {
	for _, withNextLink := range []bool{true, false} {
		t.Run(fmt.Sprintf("nextLink=%v", withNextLink), func(t *testing.T) {
			sim := startSim(t, simulator.Config{Seed: 3, Alerts: 1, Incidents: 1})
			sim.Reset()
			ts := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.0000000Z")
			want := putAlertsAt(sim, "same", 30, ts) // 3 pages of 10 on one instant
			later := putAlertsAt(sim, "later", 5, time.Now().UTC().Add(-time.Minute).Format("2006-01-02T15:04:05.0000000Z"))
			want = append(want, later...)
			if !withNextLink {
				sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultNoNextLink, Times: -1})
			}
			h := cursortest.New(t)
			h.Run(alertSpec.Plugin, simSettings(sim, "same-ts", map[string]any{"batch_size": 10}), 20*time.Second,
				func() bool { return len(h.Published()) >= len(want) })
			time.Sleep(300 * time.Millisecond) // more intervals: nothing may come twice
			got := recordIDs(t, h.Published())
			assertUnique(t, got)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %d records %v, want %d %v", len(got), got, len(want), want)
			}
			if !withNextLink && countRequests(sim, alertSpec.Path, "$skip=") == 0 {
				t.Fatal("a page sharing one timestamp without nextLink must be stepped with $skip")
			}
		})
	}
}

func TestUnackedDocumentsAreSentAgainAfterRestart(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 11, Alerts: 40, Incidents: 2})
	settings := simSettings(sim, "outage", map[string]any{"batch_size": 10})

	// The output takes everything but acknowledges only the first 15: an outage mid-stream.
	h := cursortest.New(t)
	h.AutoAck = false
	h.Run(alertSpec.Plugin, settings, 20*time.Second, func() bool {
		if len(h.Published()) >= 40 {
			h.Ack(15)
			return true
		}
		return false
	})
	first := h.Published()

	h2 := h.Restart()
	h2.Run(alertSpec.Plugin, settings, 20*time.Second, func() bool { return len(h2.Published()) >= 25 })
	time.Sleep(300 * time.Millisecond)
	second := h2.Published()
	if len(second) != 25 {
		t.Fatalf("after restart %d documents were re-sent, want the 25 not acknowledged", len(second))
	}
	ackedIDs := metaIDs(first[:15])
	resent := metaIDs(second)
	for _, id := range resent {
		if slices.Contains(ackedIDs, id) {
			t.Fatalf("acknowledged document %s was sent again", id)
		}
	}
	if !slices.Equal(resent, metaIDs(first[15:])) {
		t.Fatal("the re-sent documents are not exactly the unacknowledged ones, in order")
	}
}

func TestThrottlingAndServerErrorsAreRetried(t *testing.T) {
	cases := []simulator.Fault{
		{Path: alertSpec.Path, Status: 429, RetryAfter: "1", Times: 2},
		{Path: alertSpec.Path, Status: 429, Times: 2},
		{Path: alertSpec.Path, Status: 503, Times: 3},
	}
	for _, f := range cases {
		t.Run(fmt.Sprintf("%d-retry-after-%q", f.Status, f.RetryAfter), func(t *testing.T) {
			sim := startSim(t, simulator.Config{Seed: 5, Alerts: 12, Incidents: 1})
			sim.AddFault(f)
			h := cursortest.New(t)
			start := time.Now()
			h.Run(alertSpec.Plugin, simSettings(sim, "retry", nil), 30*time.Second, func() bool { return len(h.Published()) >= 12 })
			if f.RetryAfter == "1" && time.Since(start) < 2*time.Second {
				t.Fatalf("Retry-After: 1 twice was not honoured (done in %s)", time.Since(start))
			}
			assertUnique(t, metaIDs(h.Published()))
			if n := countRequests(sim, alertSpec.Path, ""); n < f.Times+1 {
				t.Fatalf("%d requests, want the %d failures retried", n, f.Times)
			}
		})
	}
}

func TestExpiredTokenIsRefreshed(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 9, Alerts: 10, Incidents: 1})
	h := cursortest.New(t)
	settings := simSettings(sim, "expiry", nil)
	h.Run(alertSpec.Plugin, settings, 20*time.Second, func() bool { return len(h.Published()) >= 10 })
	issued := sim.TokensIssued()
	sim.ExpireTokens()
	sim.Tick()
	h.Run(alertSpec.Plugin, settings, 20*time.Second, func() bool { return len(h.Published()) > 10 })
	if sim.TokensIssued() <= issued {
		t.Fatal("no new token was requested after the old one was rejected")
	}
}

func TestAuthFailureKeepsCursorAndPublishesNothing(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 2, Alerts: 5, Incidents: 1})
	for _, tc := range []struct {
		name   string
		status int
		want   status.Status
	}{{"unauthorized", 401, status.Failed}, {"forbidden", 403, status.Degraded}} {
		t.Run(tc.name, func(t *testing.T) {
			sim.ClearFaults()
			sim.AddFault(simulator.Fault{Path: alertSpec.Path, Status: tc.status, Times: -1})
			h := cursortest.New(t)
			h.Run(alertSpec.Plugin, simSettings(sim, "auth-"+tc.name, nil), 10*time.Second, func() bool { return h.SawStatus(tc.want) })
			if n := len(h.Published()); n != 0 {
				t.Fatalf("%d documents published for a %d", n, tc.status)
			}
			if msg := h.LastStatus().Msg; !strings.Contains(msg, "SecurityAlert.Read.All") {
				t.Fatalf("status message does not name the permission: %q", msg)
			}
			// Once the permission is granted the same input collects everything.
			sim.ClearFaults()
			h.Run(alertSpec.Plugin, simSettings(sim, "auth-"+tc.name, nil), 10*time.Second, func() bool { return len(h.Published()) >= 5 })
		})
	}
}

func TestIncidentExpandFallback(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 4, Alerts: 60, Incidents: 8})
	// Only the listing is poisoned; the per-incident reads also carry $expand and succeed.
	sim.AddFault(simulator.Fault{Path: incidentSpec.Path, ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1})
	h := cursortest.New(t)
	settings := simSettings(sim, "incidents", map[string]any{"batch_size": 5})
	// Run on for a while after the fallback, so that later polls show what they do.
	var fellBack time.Time
	h.Run(incidentSpec.Plugin, settings, 30*time.Second, func() bool {
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
	assertUnique(t, metaIDs(events))
	// Later polls of the run (interval 100ms) must not spend their retries on the failing
	// listing again: one failed attempt with its retries, then per-incident reads only.
	listings := 0
	for _, r := range sim.Requests() {
		if r.Path == incidentSpec.Path && strings.Contains(r.RawQuery, "$expand=alerts") {
			listings++
		}
	}
	if listings > 1+5 {
		t.Fatalf("%d expanded listings: the failing listing was tried again on later polls", listings)
	}
}

func TestForeignNextLinkIsRejected(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 6, Alerts: 1, Incidents: 1})
	// nextLinks are followed only through records that share one instant.
	sim.Reset()
	putAlertsAt(sim, "same", 30, time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.0000000Z"))
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultForeignNextLink, Times: -1})
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "foreign", map[string]any{"batch_size": 10}), 10*time.Second,
		func() bool { return h.SawStatus(status.Degraded) })
	if msg := h.LastStatus().Msg; !strings.Contains(msg, "evil.example.test") {
		t.Fatalf("status does not name the foreign host: %q", msg)
	}
}

func TestMalformedPageDoesNotStallOrCrash(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 8, Alerts: 10, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultMalformedJSON, Times: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "bad-page", nil), 20*time.Second,
		func() bool { return h.SawStatus(status.Degraded) && len(h.Published()) >= 10 })
	assertUnique(t, metaIDs(h.Published()))
	if h.LastStatus().Status != status.Running {
		t.Fatalf("status after recovery: %+v", h.LastStatus())
	}
}

func TestOversizedRecordIsReportedThenRetried(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 8, Alerts: 10, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultHugeBody, HugeBytes: 2 << 20, Times: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "huge-record", map[string]any{"max_response_bytes": 1 << 20}), 20*time.Second,
		func() bool { return h.SawStatus(status.Degraded) && len(h.Published()) >= 10 })
	assertUnique(t, metaIDs(h.Published()))
	if msg := fmt.Sprint(h.Published()); strings.Contains(msg, "AAAAAAAA") {
		t.Fatal("part of the oversized record was published")
	}
}

// TestOversizedIncidentFallsBackToSeparateAlerts: an incident whose expanded alerts exceed
// max_response_bytes must not hold the cursor: the run lists without $expand and publishes the
// incident on its own when even its single read is too large.
func TestOversizedIncidentFallsBackToSeparateAlerts(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 15, Incidents: 6, AlertsPerIncident: 60})
	h := cursortest.New(t)
	h.Run(incidentSpec.Plugin, simSettings(sim, "huge-incidents", map[string]any{"max_response_bytes": 64 << 10}), 30*time.Second,
		func() bool { return h.SawStatus(status.Degraded) && len(h.Published()) >= 6 })
	got := map[string]bool{}
	for _, id := range recordIDs(t, h.Published()) {
		got[id] = true
	}
	if len(got) != 6 {
		t.Fatalf("%d of 6 incidents published", len(got))
	}
	if msg := h.LastStatus().Msg; !strings.Contains(msg, "max_response_bytes") {
		t.Fatalf("status does not say why: %q", msg)
	}
}

// TestCrowdedTimestampBeyondSkipLimitIsSkippedAsCountedGap: 650 alerts share one instant and
// Graph gives no nextLink, so $skip (at most 500) reaches only 600 of them with pages of 100.
// The input must not stall there: it reports the 50 it cannot read as a gap (metric, log,
// DEGRADED once) and goes on with the alerts after that instant.
func TestCrowdedTimestampBeyondSkipLimitIsSkippedAsCountedGap(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 3, Alerts: 1, Incidents: 1})
	sim.Reset()
	crowd := putAlertsAt(sim, "crowd", 650, time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.0000000Z"))
	later := putAlertsAt(sim, "later", 5, time.Now().UTC().Add(-time.Minute).Format("2006-01-02T15:04:05.0000000Z"))
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultNoNextLink, Times: -1})
	h := cursortest.New(t)
	var laterSeen time.Time
	h.Run(alertSpec.Plugin, simSettings(sim, "crowd", map[string]any{"batch_size": 100}), 20*time.Second, func() bool {
		got := recordIDs(t, h.Published())
		for _, id := range later {
			if !slices.Contains(got, id) {
				return false
			}
		}
		if laterSeen.IsZero() {
			laterSeen = time.Now()
		}
		return time.Since(laterSeen) > 500*time.Millisecond // more polls: the gap is reported once
	})
	got := recordIDs(t, h.Published())
	assertUnique(t, got)
	read := 0
	for _, id := range got {
		if slices.Contains(crowd, id) {
			read++
		}
	}
	if read != 600 {
		t.Fatalf("read %d alerts of the crowded instant, want the 600 that $skip <= 500 reaches", read)
	}
	if n := h.Metric("gap_records_total"); n != 50 {
		t.Fatalf("gap_records_total = %d, want 50", n)
	}
	if n := h.Metric("gap_instants_total"); n != 1 {
		t.Fatalf("gap_instants_total = %d, want 1", n)
	}
	var degraded []string
	for _, u := range h.Statuses() {
		if u.Status == status.Degraded {
			degraded = append(degraded, u.Msg)
		}
	}
	if len(degraded) != 1 || !strings.Contains(degraded[0], "50") || !strings.Contains(degraded[0], "$skip") || strings.Contains(degraded[0], "retried") {
		t.Fatalf("want one DEGRADED that counts the 50 skipped alerts and names $skip, got %q", degraded)
	}
	if h.LastStatus().Status != status.Running {
		t.Fatalf("status after the gap: %+v", h.LastStatus())
	}
}

// TestCrowdedTimestampIsReadWholeThroughOpaqueNextLinks: when Graph does give nextLinks with an
// opaque $skiptoken, records on one instant are read however many there are: no gap.
func TestCrowdedTimestampIsReadWholeThroughOpaqueNextLinks(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 3, Alerts: 1, Incidents: 1})
	sim.Reset()
	want := putAlertsAt(sim, "crowd", 650, time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.0000000Z"))
	want = append(want, putAlertsAt(sim, "later", 5, time.Now().UTC().Add(-time.Minute).Format("2006-01-02T15:04:05.0000000Z"))...)
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "crowd-links", map[string]any{"batch_size": 100}), 20*time.Second,
		func() bool { return len(h.Published()) >= len(want) })
	got := recordIDs(t, h.Published())
	assertUnique(t, got)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %d alerts, want %d", len(got), len(want))
	}
	if n := h.Metric("gap_records_total"); n != 0 {
		t.Fatalf("gap_records_total = %d with nextLinks", n)
	}
	if h.SawStatus(status.Degraded) {
		t.Fatalf("DEGRADED without a gap: %+v", h.Statuses())
	}
}

func TestOverlapRereadsWithTheSameIDs(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 12, Alerts: 30, Incidents: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "overlap", nil), 20*time.Second, func() bool { return len(h.Published()) >= 30 })
	first := metaIDs(h.Published())

	h2 := h.Restart()
	h2.Run(alertSpec.Plugin, simSettings(sim, "overlap", map[string]any{"overlap": "72h"}), 20*time.Second,
		func() bool { return len(h2.Published()) >= 30 })
	for _, id := range metaIDs(h2.Published()) {
		if !slices.Contains(first, id) {
			t.Fatalf("a re-read document got a new _id %s", id)
		}
	}
}

func TestUnknownEnumMembersAreRequested(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 13, Alerts: 5, Incidents: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "enums", map[string]any{"include_unknown_enum_members": true}), 20*time.Second,
		func() bool { return len(h.Published()) >= 5 })
	for _, r := range sim.Requests() {
		if r.Path == alertSpec.Path && r.Header.Get("Prefer") != "include-unknown-enum-members" {
			t.Fatalf("request without the Prefer header: %v", r.Header)
		}
	}
}

func TestPartialAnswerIsPublished(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 10, Alerts: 10, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultPartial, Times: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "partial", nil), 10*time.Second, func() bool { return len(h.Published()) >= 10 })
}

func TestConfigProblemsAreAllReported(t *testing.T) {
	_, err := Configure(alertSpec, mustConfig(t, map[string]any{
		"batch_size": 5000,
		"interval":   "-1s",
		"cloud":      "mars",
		"namespace":  "Bad-NS",
	}))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"id:", "batch_size:", "interval:", "cloud:", "namespace:", "tenant_id", "client_id"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	_, err = Configure(alertSpec, mustConfig(t, map[string]any{"include_alerts": true}))
	if err == nil || !strings.Contains(err.Error(), "include_alerts") {
		t.Fatalf("include_alerts on an alert input not reported: %v", err)
	}
}

// TestOffsetNextLinksAreNotFollowed: with nextLinks that page by a growing $skip, the input
// re-queries by timestamp instead, so records updated while it pages cannot make it miss
// another record, and Graph's $skip ceiling of 500 is never reached.
func TestOffsetNextLinksAreNotFollowed(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 14, Alerts: 700, Incidents: 1, SkipNextLinks: true})
	before := sim.Alerts()
	h := cursortest.New(t)
	updated := false
	h.OnEvent = func(beat.Event) {
		if !updated {
			// An update while the input pages: the record moves to the end of the ordering.
			updated = true
			go sim.Tick()
		}
	}
	h.Run(alertSpec.Plugin, simSettings(sim, "offset-links", map[string]any{"batch_size": 50}), 30*time.Second,
		func() bool { return len(h.Published()) >= 700 && h.LastStatus().Status == status.Running })
	got := map[string]bool{}
	for _, id := range recordIDs(t, h.Published()) {
		got[id] = true
	}
	for _, a := range before {
		if id := fmt.Sprint(a["id"]); !got[id] {
			t.Fatalf("alert %s was never published", id)
		}
	}
	for _, r := range sim.Requests() {
		if r.Path == alertSpec.Path && strings.Contains(r.RawQuery, "$skip=") {
			t.Fatalf("followed an offset nextLink: %s", r.RawQuery)
		}
	}
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

func statusMentions(h *cursortest.Harness, s status.Status, text string) bool {
	for _, u := range h.Statuses() {
		if u.Status == s && strings.Contains(u.Msg, text) {
			return true
		}
	}
	return false
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
			sim := startSim(t, simulator.Config{Seed: 4, Alerts: 60, Incidents: 8})
			sim.AddFault(simulator.Fault{Path: incidentSpec.Path, ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1})
			target := middleIncidentWithAlerts(t, sim)
			f := tc.fault
			f.Path, f.ExactPath = incidentSpec.Path+"/"+target, true
			sim.AddFault(f)
			want := incidentDocs(sim)

			h := cursortest.New(t)
			h.Run(incidentSpec.Plugin, simSettings(sim, "alert-read-"+tc.name, map[string]any{"batch_size": 5}), 30*time.Second, func() bool {
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
			assertUnique(t, metaIDs(h.Published()))
			if !statusMentions(h, status.Degraded, "incident "+target) {
				t.Fatalf("no DEGRADED status names incident %s: %+v", target, h.Statuses())
			}
		})
	}
}

// TestStopDuringAlertReadPublishesNothingOfTheIncident: an input stopped while the client
// waits to retry one incident's alert read publishes nothing of that incident; the next run
// publishes it with its alerts.
func TestStopDuringAlertReadPublishesNothingOfTheIncident(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 4, Alerts: 60, Incidents: 8})
	expand500 := simulator.Fault{Path: incidentSpec.Path, ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1}
	sim.AddFault(expand500)
	target := middleIncidentWithAlerts(t, sim)
	targetPath := incidentSpec.Path + "/" + target
	sim.AddFault(simulator.Fault{Path: targetPath, ExactPath: true, Status: 503, RetryAfter: "1", Times: -1})
	want := incidentDocs(sim)
	settings := simSettings(sim, "stop-in-retry", map[string]any{"batch_size": 5})

	h := cursortest.New(t)
	h.Run(incidentSpec.Plugin, settings, 30*time.Second, func() bool {
		// The first try was answered: the client now waits a second before the next.
		return countRequests(sim, targetPath, "") >= 1
	})
	for _, ev := range h.Published() {
		if id, _ := ev.Fields.GetValue("record.id"); fmt.Sprint(id) == target {
			t.Fatalf("incident %s was published while its alerts were being read: %v", target, ev.Fields)
		}
	}
	var stored Cursor
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
	pos, _ := positionOf(stored)
	targetTS, _ := time.Parse(time.RFC3339Nano, targetUpdate)
	if !pos.ts.Before(targetTS) {
		t.Fatalf("the stored cursor %s is not before incident %s (%s)", stored.LastUpdate, target, targetUpdate)
	}

	sim.ClearFaults()
	sim.AddFault(expand500)
	h2 := h.Restart()
	h2.Run(incidentSpec.Plugin, settings, 30*time.Second, func() bool {
		got := publishedIncidentDocs(append(h.Published(), h2.Published()...))
		for k := range want {
			if !got[k] {
				return false
			}
		}
		return true
	})
}

// TestAlertUpdatedWhilePagingDoesNotHideAnother: Graph's $skiptoken may be an offset into the
// current ordering (the simulator's is). An alert of the first page updated before the second
// page is read moves to the end, and the alert first on the second page would be passed over
// if the nextLink were followed. Re-querying from the last timestamp loses nothing.
func TestAlertUpdatedWhilePagingDoesNotHideAnother(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 14, Alerts: 60, Incidents: 2})
	before := sim.Alerts()
	h := cursortest.New(t)
	updated := false
	h.OnEvent = func(ev beat.Event) {
		if updated {
			return
		}
		updated = true
		// Synchronously, so it happens before the input asks for the next page.
		id, _ := ev.Fields.GetValue("record.id")
		for _, a := range sim.Alerts() {
			if a["id"] == id {
				a["lastUpdateDateTime"] = time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z")
				sim.PutAlert(a)
			}
		}
	}
	h.Run(alertSpec.Plugin, simSettings(sim, "update-while-paging", map[string]any{"batch_size": 10}), 20*time.Second, func() bool {
		got := map[string]bool{}
		for _, id := range recordIDs(t, h.Published()) {
			got[id] = true
		}
		for _, a := range before {
			if !got[fmt.Sprint(a["id"])] {
				return false
			}
		}
		return true
	})
	if countRequests(sim, alertSpec.Path, "skiptoken") != 0 {
		t.Fatal("followed a $skiptoken nextLink outside a crowded instant")
	}
}

// TestRetryAfterAboveTheCapIsWaitedForAtMostTheCap: a Retry-After longer than the client waits
// within a call fails the poll; the input then waits what Graph asked, but never longer than
// its cap, and says so.
func TestRetryAfterAboveTheCapIsWaitedForAtMostTheCap(t *testing.T) {
	spec := alertSpec
	spec.maxRetryAfterWait = 500 * time.Millisecond
	sim := startSim(t, simulator.Config{Seed: 5, Alerts: 12, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Status: 429, RetryAfter: "3600"})
	h := cursortest.New(t)
	h.Run(spec.Plugin, simSettings(sim, "retry-after-cap", nil), 20*time.Second, func() bool { return len(h.Published()) >= 12 })
	if !statusMentions(h, status.Degraded, "Retry-After") || !statusMentions(h, status.Degraded, "500ms") {
		t.Fatalf("the status does not say that the Retry-After of 1h was capped at 500ms: %+v", h.Statuses())
	}
}

// TestPageCutMidStreamIsRetriedSoon: a page whose connection breaks halfway fails the poll; the
// input retries after a short backoff, not after its interval (here an hour).
func TestPageCutMidStreamIsRetriedSoon(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 5, Alerts: 30, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultCutPage})
	h := cursortest.New(t)
	h.Run(alertSpec.Plugin, simSettings(sim, "cut-page", map[string]any{"interval": "1h", "batch_size": 10}), 20*time.Second,
		func() bool { return len(h.Published()) >= 30 })
	assertUnique(t, metaIDs(h.Published()))
	if !h.SawStatus(status.Degraded) {
		t.Fatal("the cut page was not reported")
	}
}
