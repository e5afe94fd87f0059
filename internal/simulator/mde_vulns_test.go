package simulator_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

func TestMDEVulnerabilityByID(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 31, MDE: simulator.MDEConfig{DisableThrottling: true}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())

	if g := graphGet(t, c, "", s.URL()+"/api/vulnerabilities/CVE-2024-10001"); g.status != 401 {
		t.Fatalf("without a token: %d", g.status)
	}
	found, missing := 0, 0
	for n := 10000; n < 10100; n++ {
		id := "CVE-2024-" + strconv.Itoa(n)
		g := graphGet(t, c, tok, s.URL()+"/api/vulnerabilities/"+id)
		want, known := s.Vulnerability(id)
		switch {
		case !known:
			missing++
			if g.status != 404 || g.errorCode() != "NotFound" {
				t.Fatalf("%s unknown to the simulator: %d %s", id, g.status, g.raw)
			}
			continue
		case g.status != 200:
			t.Fatalf("%s: %d %s", id, g.status, g.raw)
		}
		found++
		if ctx, _ := g.body["@odata.context"].(string); !strings.HasSuffix(ctx, "/api/$metadata#Vulnerabilities/$entity") {
			t.Fatalf("@odata.context %q", ctx)
		}
		delete(g.body, "@odata.context")
		if !reflect.DeepEqual(g.body, want) {
			t.Fatalf("%s: served %v, Vulnerability() says %v", id, g.body, want)
		}
		if g.body["id"] != id || g.body["description"] == "" {
			t.Fatalf("%s: %v", id, g.body)
		}
		for _, k := range []string{"publishedOn", "updatedOn"} {
			if _, err := time.Parse(time.RFC3339, g.body[k].(string)); err != nil {
				t.Fatalf("%s %s: %v", id, k, err)
			}
		}
		if epss := g.body["epss"].(float64); epss < 0 || epss > 1 {
			t.Fatalf("%s epss %v", id, epss)
		}
		// The same id always gets the same details.
		again := graphGet(t, c, tok, s.URL()+"/api/Vulnerabilities/"+strings.ToLower(id))
		delete(again.body, "@odata.context")
		if again.status != 200 || !reflect.DeepEqual(again.body, want) {
			t.Fatalf("%s asked again (other casing): %d %v", id, again.status, again.body)
		}
	}
	if found < 70 || missing < 3 {
		t.Fatalf("%d found, %d unknown of 100: want most found and some 404", found, missing)
	}
	if n := s.VulnerabilityLookups(); n != 100+found {
		t.Fatalf("VulnerabilityLookups %d, want %d", n, 100+found)
	}
	if g := graphGet(t, c, tok, s.URL()+"/api/vulnerabilities/not-a-cve"); g.status != 404 {
		t.Fatalf("malformed id: %d", g.status)
	}
}

func TestMDEVulnerabilityThrottling(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 32})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	for i := range 100 {
		if g := graphGet(t, c, tok, s.URL()+"/api/vulnerabilities/CVE-2023-"+strconv.Itoa(20000+i)); g.status != 200 && g.status != 404 {
			t.Fatalf("call %d: %d", i, g.status)
		}
	}
	g := graphGet(t, c, tok, s.URL()+"/api/vulnerabilities/CVE-2023-30000")
	if n, err := strconv.Atoi(g.header.Get("Retry-After")); g.status != 429 || err != nil || n < 1 || n > 60 {
		t.Fatalf("101st call in a minute: %d Retry-After %q", g.status, g.header.Get("Retry-After"))
	}
	if s.VulnerabilityLookups() != 100 {
		t.Fatalf("a throttled call counted as a lookup: %d", s.VulnerabilityLookups())
	}
	clock.Advance(61 * time.Second)
	if g := graphGet(t, c, tok, s.URL()+"/api/vulnerabilities/CVE-2023-30000"); g.status == 429 {
		t.Fatal("still throttled a minute later")
	}
}
