package inputkit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

func TestCommonResolve(t *testing.T) {
	if errs := (Common{ID: "a", Namespace: "prod"}).Resolve(); len(errs) != 0 {
		t.Fatalf("valid options reported: %v", errs)
	}
	errs := (Common{Namespace: "Bad-NS"}).Resolve()
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "id:") || !strings.HasPrefix(errs[1].Error(), "namespace:") {
		t.Fatalf("problems = %v", errs)
	}
	err := Report("defender-alert", "", errs)
	if err == nil || !strings.Contains(err.Error(), `input "(no id)" (type defender-alert): 2 problem(s)`) {
		t.Fatalf("report = %v", err)
	}
	if Report("defender-alert", "a", nil) != nil {
		t.Fatal("no problems must report nil")
	}
}

func TestDecorate(t *testing.T) {
	ev := beat.Event{Fields: mapstr.M{"tags": []string{"x"}, "event": mapstr.M{"kind": "alert"}}}
	Decorate(&ev, "alert", "prod")
	if _, err := ev.Fields.GetValue("tags"); err == nil {
		t.Fatal("tags kept: libbeat adds the configured ones")
	}
	if v, _ := ev.Fields.GetValue("event.dataset"); v != "m365_defender.alert" {
		t.Fatalf("event.dataset = %v", v)
	}
	if v, _ := ev.Fields.GetValue("event.kind"); v != "alert" {
		t.Fatal("event.kind lost")
	}
	want := mapstr.M{"type": "logs", "dataset": "m365_defender.alert", "namespace": "prod"}
	if got := ev.Fields["data_stream"]; got.(mapstr.M).String() != want.String() {
		t.Fatalf("data_stream = %v", got)
	}
}

func TestRetryWait(t *testing.T) {
	tm := Timings{FirstRetry: time.Second, MaxRetryAfter: time.Minute}
	interval := 10 * time.Second
	plain := errors.New("connection reset")
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 5: interval, 60: interval} {
		if got, _ := tm.retryWait(plain, n, interval); got != want {
			t.Errorf("failure %d: wait %s, want %s (doubling from FirstRetry up to the interval)", n, got, want)
		}
	}
	if got, _ := tm.retryWait(&msapi.APIError{StatusCode: 401}, 1, interval); got != interval {
		t.Errorf("auth failure: wait %s, want the interval", got)
	}
	if got, why := tm.retryWait(&msapi.APIError{StatusCode: 429, RetryAfter: 30 * time.Second}, 1, interval); got != 30*time.Second || why != "" {
		t.Errorf("Retry-After 30s: wait %s (%q), want 30s", got, why)
	}
	got, why := tm.retryWait(&msapi.APIError{StatusCode: 429, RetryAfter: time.Hour}, 1, interval)
	if got != time.Minute || !strings.Contains(why, "at most 1m0s") {
		t.Errorf("Retry-After 1h: wait %s (%q), want the 1m cap, said", got, why)
	}
}

func TestRetryWaitBoundsAndDeferred(t *testing.T) {
	tm := Timings{FirstRetry: 30 * time.Second, MaxRetry: 10 * time.Minute, MaxRetryAfter: time.Hour}
	interval := 4 * time.Hour
	if got, _ := tm.retryWait(errors.New("cut"), 10, interval); got != 10*time.Minute {
		t.Errorf("10th failure: wait %s, want MaxRetry 10m", got)
	}
	deferred := &Deferred{Err: errors.New("file too large"), Meanwhile: "the delta is read"}
	if got, _ := tm.retryWait(fmt.Errorf("run: %w", deferred), 1, interval); got != interval {
		t.Errorf("deferred failure: wait %s, want the interval", got)
	}
	if got := tm.CapRetryAfter(2*time.Hour, logp.NewNopLogger()); got != time.Hour {
		t.Errorf("CapRetryAfter(2h) = %s, want 1h", got)
	}
	if got := tm.CapRetryAfter(time.Minute, logp.NewNopLogger()); got != time.Minute {
		t.Errorf("CapRetryAfter(1m) = %s, want 1m", got)
	}
}
