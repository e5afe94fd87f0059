package simulator_test

import (
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// Filters with `in`, and/or and parentheses select like Graph's, and the simulator remembers
// which records it served, so tests can prove a filtered-out record was never asked for.
func TestFilterInAndServedRecords(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 4})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	s.Reset()
	put := func(id, severity, source string) {
		a := alertAt(id, "2025-03-14T08:00:00Z")
		a["severity"], a["serviceSource"] = severity, source
		s.PutAlert(a)
	}
	put("a1", "high", "microsoftDefenderForEndpoint")
	put("a2", "low", "microsoftDefenderForEndpoint")
	put("a3", "medium", "microsoftDefenderForOffice365")
	put("a4", "medium", "microsoftDefenderForEndpoint")
	base := s.URL() + "/v1.0/security/alerts_v2?$filter="
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"severity in ('high','medium')", []string{"a1", "a3", "a4"}},
		{"severity in ('high', 'medium') and serviceSource eq 'microsoftDefenderForEndpoint'", []string{"a1", "a4"}},
		{"(severity eq 'low' or serviceSource ne 'microsoftDefenderForEndpoint') and lastUpdateDateTime ge 2025-03-14T00:00:00Z", []string{"a2", "a3"}},
		{"severity in ('informational')", []string{}},
	} {
		g := graphGet(t, c, tok, base+strings.ReplaceAll(tc.filter, " ", "%20"))
		if g.status != 200 {
			t.Fatalf("%q: %d %s", tc.filter, g.status, truncate(g.raw))
		}
		if got := ids(g.values(t)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.filter, got, tc.want)
		}
	}
	for _, bad := range []string{"severity in ('high'", "severity in 'high'", "severity in ('high' 'low')", "lastUpdateDateTime in ('x')"} {
		if g := graphGet(t, c, tok, base+strings.ReplaceAll(bad, " ", "%20")); g.status != 400 {
			t.Errorf("%q: want 400, got %d", bad, g.status)
		}
	}
	served := s.Served("alerts_v2")
	if want := map[string]int{"a1": 2, "a2": 1, "a3": 2, "a4": 2}; !reflect.DeepEqual(served, want) {
		t.Fatalf("served %v, want %v", served, want)
	}
	if len(s.Served("incidents")) != 0 {
		t.Fatal("incidents counted as served without being asked for")
	}
}

// With GraphLimits the security API answers 429 with a Retry-After beyond them, like Graph;
// refused requests do not count.
func TestGraphLimitsAnswer429WithRetryAfter(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 5, GraphLimits: []simulator.CallLimit{{Calls: 3, Window: time.Minute}}})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	url := s.URL() + "/v1.0/security/alerts_v2?$top=1"
	for i := range 3 {
		if g := graphGet(t, c, tok, url); g.status != 200 {
			t.Fatalf("request %d within the limit: %d", i, g.status)
		}
	}
	g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents")
	if g.status != http.StatusTooManyRequests || g.errorCode() != "TooManyRequests" {
		t.Fatalf("fourth request in a minute: %d %s", g.status, truncate(g.raw))
	}
	if secs, err := strconv.Atoi(g.header.Get("Retry-After")); err != nil || secs < 1 || secs > 60 {
		t.Fatalf("Retry-After %q", g.header.Get("Retry-After"))
	}
}

// MDEConfig.APILimits limits the Defender for Endpoint API as a whole, whatever the endpoint.
func TestMDEAPILimits(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 6, MDE: simulator.MDEConfig{DisableThrottling: true, APILimits: []simulator.CallLimit{{Calls: 2, Window: time.Hour}}}})
	c := httpClient(t, s)
	status, body := tokenRequest(t, c, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
		"scope": {s.MDEScope()},
	})
	if status != 200 {
		t.Fatalf("token: %d %v", status, body)
	}
	tok := body["access_token"].(string)
	delta := s.URL() + "/api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	for i, u := range []string{delta, s.URL() + "/api/machines/SoftwareVulnerabilitiesExport"} {
		if g := graphGet(t, c, tok, u); g.status != 200 {
			t.Fatalf("call %d within the limit: %d %s", i, g.status, truncate(g.raw))
		}
	}
	g := graphGet(t, c, tok, delta)
	if g.status != http.StatusTooManyRequests || g.header.Get("Retry-After") == "" {
		t.Fatalf("third call in an hour: %d, Retry-After %q", g.status, g.header.Get("Retry-After"))
	}
}
