package msapi

import (
	"sync/atomic"
	"time"

	"github.com/elastic/elastic-agent-libs/monitoring"
)

// Metrics are one input's counters, shown under /inputs/ when the registry is the input's.
type Metrics struct {
	RequestsTotal  *monitoring.Uint // HTTP attempts, retries included
	PagesTotal     *monitoring.Uint // pages decoded by GetPage
	ThrottledTotal *monitoring.Uint // 429 answers
	RetriesTotal   *monitoring.Uint // attempts after the first
	ErrorsTotal    *monitoring.Uint // calls that returned an error
	PartialTotal   *monitoring.Uint // 206 answers
	BytesTotal     *monitoring.Uint // response body bytes read
	EventsTotal    *monitoring.Uint // documents published (AddEvents)
	// Waits for the application registration's request budget, shared with the other inputs
	// on it (budget.go): normal operation, not errors.
	BudgetWaitsTotal       *monitoring.Uint
	BudgetWaitSecondsTotal *monitoring.Float
	CursorTimestamp        *monitoring.String

	cursorUnixNano atomic.Int64
	now            func() time.Time
}

// NewMetrics registers the metrics in reg. A nil reg gives private, unregistered variables (tests,
// `test credentials`), never the process-wide default registry.
func NewMetrics(reg *monitoring.Registry) *Metrics {
	if reg == nil {
		reg = monitoring.NewRegistry()
	}
	m := &Metrics{
		RequestsTotal:          monitoring.NewUint(reg, "requests_total"),
		PagesTotal:             monitoring.NewUint(reg, "pages_total"),
		ThrottledTotal:         monitoring.NewUint(reg, "throttled_total"),
		RetriesTotal:           monitoring.NewUint(reg, "retries_total"),
		ErrorsTotal:            monitoring.NewUint(reg, "errors_total"),
		PartialTotal:           monitoring.NewUint(reg, "partial_total"),
		BytesTotal:             monitoring.NewUint(reg, "bytes_total"),
		EventsTotal:            monitoring.NewUint(reg, "events_total"),
		BudgetWaitsTotal:       monitoring.NewUint(reg, "budget_waits_total"),
		BudgetWaitSecondsTotal: monitoring.NewFloat(reg, "budget_wait_seconds_total"),
		CursorTimestamp:        monitoring.NewString(reg, "cursor_timestamp"),
		now:                    time.Now,
	}
	// Computed when read, so a stalled input shows a growing lag instead of the last value.
	monitoring.NewFunc(reg, "lag_seconds", func(_ monitoring.Mode, v monitoring.Visitor) {
		v.OnFloat(m.Lag().Seconds())
	})
	return m
}

// AddEvents counts published documents.
func (m *Metrics) AddEvents(n int) {
	if m != nil && n > 0 {
		m.EventsTotal.Add(uint64(n))
	}
}

func (m *Metrics) addBudgetWait(d time.Duration) {
	m.BudgetWaitSecondsTotal.Add(d.Seconds())
}

// SetCursor records the input's cursor (the newest record it has published), which drives
// lag_seconds.
func (m *Metrics) SetCursor(t time.Time) {
	if m == nil || t.IsZero() {
		return
	}
	m.cursorUnixNano.Store(t.UnixNano())
	m.CursorTimestamp.Set(t.UTC().Format(time.RFC3339Nano))
}

// Lag is how far the cursor is behind now; zero before any cursor is known.
func (m *Metrics) Lag() time.Duration {
	if m == nil {
		return 0
	}
	ns := m.cursorUnixNano.Load()
	if ns == 0 {
		return 0
	}
	lag := m.now().Sub(time.Unix(0, ns))
	if lag < 0 {
		return 0
	}
	return lag
}
