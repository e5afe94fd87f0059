package graphinput

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/elastic/elastic-agent-libs/logp"

	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

var (
	alertFilterable    = []string{"assignedTo", "classification", "determination", "createdDateTime", "lastUpdateDateTime", "severity", "serviceSource", "status"}
	incidentFilterable = []string{"assignedTo", "classification", "createdDateTime", "determination", "lastUpdateDateTime", "severity", "status"}
)

func filteringAlertSpec() Spec {
	s := alertSpec
	s.Filterable = alertFilterable
	return s
}

func TestCheckFilter(t *testing.T) {
	for _, ok := range []string{
		"severity in ('high','medium') and serviceSource eq 'microsoftDefenderForEndpoint'",
		"(status ne 'resolved' or assignedTo eq null) and createdDateTime ge 2026-01-01T00:00:00Z",
		"not (classification eq 'falsePositive') and determination ne 'other'",
		"assignedTo eq 'o''brien@contoso.com'",
		"SEVERITY eq 'high'",
	} {
		if err := checkFilter(ok, alertFilterable); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"title eq 'x'":                               `property "title"`,
		"severity eq 'high":                          "quote at position 13 is never closed",
		"(severity eq 'high'":                        "1 '(' never closed",
		"severity eq 'high')":                        "')' at position 19 closes no '('",
		"startswith(status,'new')":                   "function startswith()",
		"lastUpdateDateTime ge 2026-01-01T00:00:00Z": "own cursor",
		"evidence/any(e: e/verdict eq 'malicious')":  "evidence/any",
	} {
		err := checkFilter(bad, alertFilterable)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one mentioning %s", bad, err, want)
		}
	}
	if err := checkFilter("serviceSource eq 'microsoftSentinel'", incidentFilterable); err == nil {
		t.Error("serviceSource accepted for incidents, which Graph does not filter by it")
	}
}

func TestFilterOptionsMakeOneClause(t *testing.T) {
	c, err := Configure(filteringAlertSpec(), mustConfig(t, map[string]any{
		"id": "a", "tenant_id": "t", "client_id": "c", "client_secret": "s",
		"severities":      []string{"High", "medium", "high"},
		"service_sources": []string{"microsoftDefenderForEndpoint"},
		"filter":          "status ne 'resolved'",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := "(severity eq 'high' or severity eq 'medium') and (serviceSource eq 'microsoftDefenderForEndpoint') and (status ne 'resolved')"
	if c.filter != want {
		t.Fatalf("clause %q, want %q", c.filter, want)
	}

	_, err = Configure(filteringAlertSpec(), mustConfig(t, map[string]any{
		"id": "a", "tenant_id": "t", "client_id": "c", "client_secret": "s",
		"severities":      []string{"critical"},
		"service_sources": []string{"defender"},
		"filter":          "title eq 'x'",
	}))
	for _, want := range []string{`severities: "critical" not among unknown, informational`, `service_sources: "defender" not among`, `filter: property "title" cannot be used in $filter (Graph allows assignedTo,`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\ndoes not say %q", err, want)
		}
	}

	incidents := filteringAlertSpec()
	incidents.Path, incidents.Filterable = "/v1.0/security/incidents", incidentFilterable
	_, err = Configure(incidents, mustConfig(t, map[string]any{
		"id": "i", "tenant_id": "t", "client_id": "c", "client_secret": "s", "service_sources": []string{"microsoftSentinel"},
	}))
	if err == nil || !strings.Contains(err.Error(), "service_sources: /v1.0/security/incidents cannot be filtered by serviceSource") {
		t.Fatalf("service_sources on incidents: %v", err)
	}
}

// alertsMatching are the ids of the simulator's alerts for which keep holds.
func alertsMatching(sim *simulator.Server, keep func(map[string]any) bool) map[string]bool {
	out := map[string]bool{}
	for _, a := range sim.Alerts() {
		if keep(a) {
			out[fmt.Sprint(a["id"])] = true
		}
	}
	return out
}

// The filter is applied by Graph: the input publishes exactly the matching alerts, and the
// tenant never served another one.
func TestFilteredRecordsAreNeverRequested(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 21, Alerts: 300, Incidents: 10})
	want := alertsMatching(sim, func(a map[string]any) bool {
		return (a["severity"] == "high" || a["severity"] == "medium") && a["serviceSource"] == "microsoftDefenderForEndpoint"
	})
	if len(want) == 0 || len(want) == len(sim.Alerts()) {
		t.Fatalf("%d of %d alerts match: the test needs some on each side", len(want), len(sim.Alerts()))
	}
	h := cursortest.New(t)
	settings := simSettings(sim, "filtered", map[string]any{
		"batch_size": 10, "severities": []string{"high", "medium"}, "service_sources": []string{"microsoftDefenderForEndpoint"},
	})
	h.Run(filteringAlertSpec().Dataset().Plugin, settings, 20*time.Second, func() bool { return h.Count() >= len(want) })
	time.Sleep(300 * time.Millisecond) // more polls: nothing else may come

	got := recordIDs(t, h.Published())
	assertUnique(t, got)
	if !maps.Equal(want, setOf(got)) {
		t.Fatalf("published %d alerts, want the %d matching", len(got), len(want))
	}
	for id := range sim.Served("alerts_v2") {
		if !want[id] {
			t.Fatalf("the tenant served alert %s, which the filter excludes", id)
		}
	}
	for _, r := range sim.Requests() {
		if r.Path != alertSpec.Path {
			continue
		}
		q, _ := url.ParseQuery(r.RawQuery)
		if f := q.Get("$filter"); !strings.HasSuffix(f, " and (severity eq 'high' or severity eq 'medium') and (serviceSource eq 'microsoftDefenderForEndpoint')") {
			t.Fatalf("a request without the filter: $filter=%q", f)
		}
	}
}

// A changed filter is no reason to lose records: what the new filter admits before the stored
// cursor is read on the next start, from the earlier of the cursor and initial_interval ago.
func TestChangedFilterReadsBack(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 22, Alerts: 150, Incidents: 5})
	high := alertsMatching(sim, func(a map[string]any) bool { return a["severity"] == "high" })
	all := alertsMatching(sim, func(map[string]any) bool { return true })
	h := cursortest.New(t)
	h.Run(filteringAlertSpec().Dataset().Plugin, simSettings(sim, "changing", map[string]any{"severities": []string{"high"}}), 20*time.Second,
		func() bool { return h.Count() >= len(high) })
	var stored Cursor
	key := fmt.Sprintf("%s::changing::tenant-%s", alertSpec.InputType, sim.TenantID())
	if !h.StoredCursor(key, &stored) || stored.Filter != "(severity eq 'high')" {
		t.Fatalf("stored cursor %+v: want the filter recorded", stored)
	}
	if !maps.Equal(setOf(recordIDs(t, h.Published())), high) {
		t.Fatal("the first run did not publish exactly the high-severity alerts")
	}

	h2 := h.Restart()
	h2.Run(filteringAlertSpec().Dataset().Plugin, simSettings(sim, "changing", nil), 20*time.Second, func() bool {
		return len(setOf(append(recordIDs(t, h.Published()), recordIDs(t, h2.Published())...))) >= len(all)
	})
	if !h2.StoredCursor(key, &stored) || stored.Filter != "" {
		t.Fatalf("cursor after the change %+v: want no filter", stored)
	}
}

// A filter added to an input that read everything narrows what comes next and reads nothing
// again: the cursor already stands after every record the filter admits.
func TestFilterAddedToAnUnfilteredCursorReadsNothingAgain(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 24, Alerts: 60, Incidents: 3})
	all := alertsMatching(sim, func(map[string]any) bool { return true })
	h := cursortest.New(t)
	h.Run(filteringAlertSpec().Dataset().Plugin, simSettings(sim, "narrowing", nil), 20*time.Second,
		func() bool { return h.Count() >= len(all) })
	servedBefore := sim.Served("alerts_v2")
	polls := func() int {
		n := 0
		for _, r := range sim.Requests() {
			if strings.HasSuffix(r.Path, "/alerts_v2") {
				n++
			}
		}
		return n
	}
	pollsBefore := polls()

	h2 := h.Restart()
	h2.Run(filteringAlertSpec().Dataset().Plugin, simSettings(sim, "narrowing", map[string]any{"severities": []string{"high"}}), 20*time.Second,
		func() bool { return polls() > pollsBefore+1 })
	if n := h2.Count(); n != 0 {
		t.Fatalf("%d documents read again after a filter was added", n)
	}
	if after := sim.Served("alerts_v2"); !maps.Equal(after, servedBefore) {
		t.Fatal("records were requested again after a filter was added")
	}
}

func setOf(ids []string) map[string]bool {
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// `test credentials` sends the filter, so Graph judges the grammar the start-up check leaves to it.
func TestProbeSendsTheFilter(t *testing.T) {
	sim := startSim(t, simulator.Config{Seed: 23, Alerts: 5, Incidents: 1})
	probe := filteringAlertSpec().Dataset().Probe
	ok := mustConfig(t, simSettings(sim, "probe", map[string]any{"filter": "status ne 'resolved'"}))
	if err := probe(context.Background(), ok, logp.NewNopLogger()); err != nil {
		t.Fatalf("a filter Graph takes: %v", err)
	}
	bad := mustConfig(t, simSettings(sim, "probe", map[string]any{"filter": "severity gt 'high'"}))
	err := probe(context.Background(), bad, logp.NewNopLogger())
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("a filter Graph refuses: %v", err)
	}
}
