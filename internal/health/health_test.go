package health

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/logp/logptest"
	"github.com/elastic/elastic-agent-libs/monitoring"
	"go.uber.org/zap/zapcore"
)

type recorder []string

func (r *recorder) UpdateStatus(s status.Status, msg string) { *r = append(*r, Name(s)+":"+msg) }

func TestStatusChangesAreLoggedOnceAndPassedOn(t *testing.T) {
	log, logs := logptest.NewTestingLoggerWithObserver(t, "")
	reg := NewRegistry(log)
	rep := reg.Register("alerts", "defender-alert")
	var agent recorder
	rep.SetNext(&agent)

	rep.UpdateStatus(status.Running, "")
	rep.UpdateStatus(status.Degraded, "HTTP 500, retrying in 2s")
	rep.UpdateStatus(status.Degraded, "HTTP 500, retrying in 4s") // same state: recorded, not logged
	rep.UpdateStatus(status.Failed, "HTTP 403")
	rep.UpdateStatus(status.Running, "")

	var changes []string
	for _, e := range logs.FilterMessage("Input status changed.").All() {
		changes = append(changes, e.ContextMap()["status"].(string))
		if e.ContextMap()["status"] == Failed && e.Level != zapcore.ErrorLevel {
			t.Errorf("FAILED logged at %s", e.Level)
		}
	}
	if got := strings.Join(changes, ","); got != "HEALTHY,DEGRADED,FAILED,HEALTHY" {
		t.Fatalf("logged changes %s, want each change once", got)
	}
	if len(agent) != 5 {
		t.Fatalf("Elastic Agent's reporter got %d updates, want all 5: %v", len(agent), agent)
	}
}

func TestReasonAndSinceFollowTheState(t *testing.T) {
	reg := NewRegistry(logp.NewNopLogger())
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	reg.now = func() time.Time { return now }
	rep := reg.Register("alerts", "defender-alert")
	rep.UpdateStatus(status.Degraded, "first")
	now = now.Add(time.Minute)
	rep.UpdateStatus(status.Degraded, "second")
	got := reg.Snapshot()[0]
	if got.Status != Degraded || got.Reason != "second" || !got.Since.Equal(now.Add(-time.Minute)) {
		t.Fatalf("got %+v: the reason is the latest, since is when the state began", got)
	}
	rep.Unregister()
	if len(reg.Snapshot()) != 0 {
		t.Fatal("a stopped input is still listed")
	}
}

func TestEndpointAnswers503OnlyWhenAnInputFailed(t *testing.T) {
	reg := NewRegistry(logp.NewNopLogger())
	metrics := monitoring.NewRegistry()
	monitoring.NewString(metrics.GetOrCreateRegistry("alerts"), "id").Set("alerts")
	// A cursor input's own metrics are in its source's registry.
	inputReg := metrics.GetOrCreateRegistry("alerts::tenant-t1")
	monitoring.NewString(inputReg, "id").Set("alerts::tenant-t1")
	monitoring.NewString(inputReg, "input").Set("defender-alert")
	monitoring.NewString(inputReg, "last_success_time").Set("2026-01-02T03:04:05Z")
	monitoring.NewString(inputReg, "cursor_timestamp").Set("2026-01-02T03:00:00Z")
	monitoring.NewFunc(inputReg, "lag_seconds", func(_ monitoring.Mode, v monitoring.Visitor) { v.OnFloat(245) })

	alerts := reg.Register("alerts", "defender-alert")
	incidents := reg.Register("incidents", "defender-incident")
	srv := httptest.NewServer(Handler(reg, metrics))
	defer srv.Close()

	read := func() (int, Report) {
		t.Helper()
		resp, err := http.Get(srv.URL + Path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep Report
		if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, rep
	}

	alerts.UpdateStatus(status.Running, "")
	incidents.UpdateStatus(status.Running, "")
	if code, rep := read(); code != 200 || rep.Status != Healthy {
		t.Fatalf("all healthy: %d %+v", code, rep)
	}
	incidents.UpdateStatus(status.Degraded, "HTTP 206")
	code, rep := read()
	if code != 200 || rep.Status != Degraded {
		t.Fatalf("one degraded: %d %+v, want 200 DEGRADED", code, rep)
	}
	a := rep.Inputs[0]
	if a.ID != "alerts" || a.LastSuccess != "2026-01-02T03:04:05Z" || a.CursorTime != "2026-01-02T03:00:00Z" || a.LagSeconds == nil || *a.LagSeconds != 245 {
		t.Fatalf("alerts entry lacks its metrics: %+v", a)
	}
	alerts.UpdateStatus(status.Failed, "HTTP 403")
	if code, rep := read(); code != 503 || rep.Status != Failed || rep.Inputs[0].Reason != "HTTP 403" {
		t.Fatalf("one failed: %d %+v, want 503 FAILED with the reason", code, rep)
	}
}
