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
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
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

var (
	alertSpec = Spec{
		InputType: "defender-alert", Name: "alert", Path: "/v1.0/security/alerts_v2",
		Permission: "SecurityAlert.Read.All", DefaultInterval: time.Minute, MaxBatch: 1000,
		Transform: testAlertTransform, Timings: fastTimings,
	}
)

// fastRetries keeps the client's backoff short so that retry tests take seconds, not minutes.
// fastTimings shorten the client's retry backoff and the loop's first retry.
var fastTimings = inputkit.Timings{FirstRetry: 100 * time.Millisecond, ClientRetry: [2]time.Duration{50 * time.Millisecond, 1500 * time.Millisecond}}

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

	h.Run(alertSpec.Dataset().Plugin, settings, 20*time.Second, func() bool { return len(h.Published()) >= 120 })
	first := h.Published()
	if len(first) != 120 {
		t.Fatalf("first run published %d documents, want the 120 alerts", len(first))
	}
	assertUnique(t, metaIDs(first))
	if cursortest.CountRequests(sim, alertSpec.Path, "$top=25") == 0 {
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
	h2.Run(alertSpec.Dataset().Plugin, settings, 20*time.Second, func() bool { return len(h2.Published()) > 0 && h2.LastStatus().Status == status.Running })
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
			h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "same-ts", map[string]any{"batch_size": 10}), 20*time.Second,
				func() bool { return len(h.Published()) >= len(want) })
			time.Sleep(300 * time.Millisecond) // more intervals: nothing may come twice
			got := recordIDs(t, h.Published())
			assertUnique(t, got)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("got %d records %v, want %d %v", len(got), got, len(want), want)
			}
			if !withNextLink && cursortest.CountRequests(sim, alertSpec.Path, "$skip=") == 0 {
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
	h.Run(alertSpec.Dataset().Plugin, settings, 20*time.Second, func() bool {
		if len(h.Published()) >= 40 {
			h.Ack(15)
			return true
		}
		return false
	})
	first := h.Published()

	h2 := h.Restart()
	h2.Run(alertSpec.Dataset().Plugin, settings, 20*time.Second, func() bool { return len(h2.Published()) >= 25 })
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
			h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "retry", nil), 30*time.Second, func() bool { return len(h.Published()) >= 12 })
			if f.RetryAfter == "1" && time.Since(start) < 2*time.Second {
				t.Fatalf("Retry-After: 1 twice was not honoured (done in %s)", time.Since(start))
			}
			cursortest.AssertUniqueIDs(t, h.Published())
			if n := cursortest.CountRequests(sim, alertSpec.Path, ""); n < f.Times+1 {
				t.Fatalf("%d requests, want the %d failures retried", n, f.Times)
			}
		})
	}
}

func TestExpiredTokenIsRefreshed(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 9, Alerts: 10, Incidents: 1})
	h := cursortest.New(t)
	settings := simSettings(sim, "expiry", nil)
	h.Run(alertSpec.Dataset().Plugin, settings, 20*time.Second, func() bool { return len(h.Published()) >= 10 })
	issued := sim.TokensIssued()
	sim.ExpireTokens()
	sim.Tick()
	h.Run(alertSpec.Dataset().Plugin, settings, 20*time.Second, func() bool { return len(h.Published()) > 10 })
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
	}{{"unauthorized", 401, status.Failed}, {"forbidden", 403, status.Failed}} {
		t.Run(tc.name, func(t *testing.T) {
			sim.ClearFaults()
			sim.AddFault(simulator.Fault{Path: alertSpec.Path, Status: tc.status, Times: -1})
			h := cursortest.New(t)
			h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "auth-"+tc.name, nil), 10*time.Second, func() bool { return h.SawStatus(tc.want) })
			if n := len(h.Published()); n != 0 {
				t.Fatalf("%d documents published for a %d", n, tc.status)
			}
			if msg := h.LastStatus().Msg; !strings.Contains(msg, "SecurityAlert.Read.All") {
				t.Fatalf("status message does not name the permission: %q", msg)
			}
			// Once the permission is granted the same input collects everything.
			sim.ClearFaults()
			h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "auth-"+tc.name, nil), 10*time.Second, func() bool { return len(h.Published()) >= 5 })
		})
	}
}

func TestPartialAnswerIsDegraded(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 3, Alerts: 5, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultPartial, Times: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "partial", nil), 10*time.Second,
		func() bool { return h.SawStatus(status.Degraded) && len(h.Published()) >= 5 })
	if !h.StatusMentions(status.Degraded, "HTTP 206") {
		t.Fatalf("the partial answer is not the reason: %+v", h.Statuses())
	}
}

func TestForeignNextLinkIsRejected(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 6, Alerts: 1, Incidents: 1})
	// nextLinks are followed only through records that share one instant.
	sim.Reset()
	putAlertsAt(sim, "same", 30, time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04:05.0000000Z"))
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultForeignNextLink, Times: -1})
	h := cursortest.New(t)
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "foreign", map[string]any{"batch_size": 10}), 10*time.Second,
		func() bool { return h.SawStatus(status.Degraded) })
	if msg := h.LastStatus().Msg; !strings.Contains(msg, "evil.example.test") {
		t.Fatalf("status does not name the foreign host: %q", msg)
	}
}

func TestMalformedPageDoesNotStallOrCrash(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 8, Alerts: 10, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultMalformedJSON, Times: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "bad-page", nil), 20*time.Second,
		func() bool { return h.SawStatus(status.Degraded) && len(h.Published()) >= 10 })
	cursortest.AssertUniqueIDs(t, h.Published())
	if h.LastStatus().Status != status.Running {
		t.Fatalf("status after recovery: %+v", h.LastStatus())
	}
}

func TestOversizedRecordIsReportedThenRetried(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 8, Alerts: 10, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultHugeBody, HugeBytes: 2 << 20, Times: 1})
	h := cursortest.New(t)
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "huge-record", map[string]any{"max_response_bytes": 1 << 20}), 20*time.Second,
		func() bool { return h.SawStatus(status.Degraded) && len(h.Published()) >= 10 })
	cursortest.AssertUniqueIDs(t, h.Published())
	if msg := fmt.Sprint(h.Published()); strings.Contains(msg, "AAAAAAAA") {
		t.Fatal("part of the oversized record was published")
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
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "crowd", map[string]any{"batch_size": 100}), 20*time.Second, func() bool {
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
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "crowd-links", map[string]any{"batch_size": 100}), 20*time.Second,
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
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "overlap", nil), 20*time.Second, func() bool { return len(h.Published()) >= 30 })
	first := metaIDs(h.Published())

	h2 := h.Restart()
	h2.Run(alertSpec.Dataset().Plugin, simSettings(sim, "overlap", map[string]any{"overlap": "72h"}), 20*time.Second,
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
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "enums", map[string]any{"include_unknown_enum_members": true}), 20*time.Second,
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
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "partial", nil), 10*time.Second, func() bool { return len(h.Published()) >= 10 })
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
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "offset-links", map[string]any{"batch_size": 50}), 30*time.Second,
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
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "update-while-paging", map[string]any{"batch_size": 10}), 20*time.Second, func() bool {
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
	if cursortest.CountRequests(sim, alertSpec.Path, "skiptoken") != 0 {
		t.Fatal("followed a $skiptoken nextLink outside a crowded instant")
	}
}

// TestRetryAfterAboveTheCapIsWaitedForAtMostTheCap: a Retry-After longer than the client waits
// within a call fails the poll; the input then waits what Graph asked, but never longer than
// its cap, and says so.
func TestRetryAfterAboveTheCapIsWaitedForAtMostTheCap(t *testing.T) {
	spec := alertSpec
	spec.Timings.MaxRetryAfter = 500 * time.Millisecond
	sim := startSim(t, simulator.Config{Seed: 5, Alerts: 12, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Status: 429, RetryAfter: "3600"})
	h := cursortest.New(t)
	h.Run(spec.Dataset().Plugin, simSettings(sim, "retry-after-cap", nil), 20*time.Second, func() bool { return len(h.Published()) >= 12 })
	if !h.StatusMentions(status.Degraded, "Retry-After") || !h.StatusMentions(status.Degraded, "500ms") {
		t.Fatalf("the status does not say that the Retry-After of 1h was capped at 500ms: %+v", h.Statuses())
	}
}

// TestPageCutMidStreamIsRetriedSoon: a page whose connection breaks halfway fails the poll; the
// input retries after a short backoff, not after its interval (here an hour).
func TestPageCutMidStreamIsRetriedSoon(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 5, Alerts: 30, Incidents: 1})
	sim.AddFault(simulator.Fault{Path: alertSpec.Path, Kind: simulator.FaultCutPage})
	h := cursortest.New(t)
	h.Run(alertSpec.Dataset().Plugin, simSettings(sim, "cut-page", map[string]any{"interval": "1h", "batch_size": 10}), 20*time.Second,
		func() bool { return len(h.Published()) >= 30 })
	cursortest.AssertUniqueIDs(t, h.Published())
	if !h.SawStatus(status.Degraded) {
		t.Fatal("the cut page was not reported")
	}
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
