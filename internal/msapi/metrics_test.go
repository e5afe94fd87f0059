package msapi

import (
	"testing"
	"time"

	"github.com/elastic/elastic-agent-libs/monitoring"
)

func TestMetricsRegistered(t *testing.T) {
	reg := monitoring.NewRegistry()
	m := NewMetrics(reg)
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	if m.Lag() != 0 {
		t.Fatal("lag before any cursor")
	}
	m.AddEvents(3)
	m.AddEvents(2)
	m.SetCursor(now.Add(-90 * time.Second))

	snap := monitoring.CollectFlatSnapshot(reg, monitoring.Full, false)
	if snap.Ints["events_total"] != 5 {
		t.Fatalf("events_total = %v", snap.Ints["events_total"])
	}
	if snap.Strings["cursor_timestamp"] != "2025-06-01T11:58:30Z" {
		t.Fatalf("cursor_timestamp = %q", snap.Strings["cursor_timestamp"])
	}
	if snap.Floats["lag_seconds"] != 90 {
		t.Fatalf("lag_seconds = %v", snap.Floats["lag_seconds"])
	}
	now = now.Add(time.Minute) // a stalled input's lag keeps growing
	if snap := monitoring.CollectFlatSnapshot(reg, monitoring.Full, false); snap.Floats["lag_seconds"] != 150 {
		t.Fatalf("lag_seconds after a minute = %v", snap.Floats["lag_seconds"])
	}
	for _, name := range []string{"requests_total", "pages_total", "throttled_total", "retries_total", "errors_total", "partial_total", "bytes_total"} {
		if _, ok := snap.Ints[name]; !ok {
			t.Errorf("%s not registered", name)
		}
	}
	// nil registry: usable, and not polluting the process-wide default registry.
	NewMetrics(nil).AddEvents(1)
	if monitoring.Default.Get("events_total") != nil {
		t.Fatal("nil registry registered into monitoring.Default")
	}
}
