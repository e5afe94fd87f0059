package simulator

import (
	"sync"
	"time"
)

// callLimit is one of Microsoft's documented per-tenant quotas of an API,
// e.g. 5 calls per minute.
type callLimit struct {
	calls  int
	window time.Duration
}

var (
	exportLimits = []callLimit{{5, time.Minute}, {20, time.Hour}}
	deltaLimits  = []callLimit{{30, time.Minute}, {1000, time.Hour}}
)

// callLimits keeps, per API, the times of the calls it accepted within the
// longest window; rejected calls do not count, as with MDE.
type callLimits struct {
	mu    sync.Mutex
	calls map[string][]time.Time
}

func newCallLimits() *callLimits { return &callLimits{calls: map[string][]time.Time{}} }

// allow records a call at now when every limit leaves room for it; otherwise
// it returns how long until one does (the Retry-After).
func (cl *callLimits) allow(api string, limits []callLimit, now time.Time) (bool, time.Duration) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var longest time.Duration
	for _, l := range limits {
		longest = max(longest, l.window)
	}
	past := cl.calls[api]
	keep := 0
	for keep < len(past) && !past[keep].After(now.Add(-longest)) {
		keep++
	}
	past = past[keep:]
	var wait time.Duration
	for _, l := range limits {
		inWindow := 0
		for i := len(past) - 1; i >= 0 && past[i].After(now.Add(-l.window)); i-- {
			inWindow++
		}
		if inWindow >= l.calls {
			// The oldest call of the window that must leave it for one more to fit.
			oldest := past[len(past)-inWindow+(inWindow-l.calls)]
			wait = max(wait, oldest.Add(l.window).Sub(now))
		}
	}
	if wait > 0 {
		cl.calls[api] = past
		return false, wait
	}
	cl.calls[api] = append(past, now)
	return true, 0
}
