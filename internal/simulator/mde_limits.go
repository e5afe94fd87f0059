package simulator

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// CallLimit is one of Microsoft's documented quotas of an API: at most Calls
// requests in any Window.
type CallLimit struct {
	Calls  int
	Window time.Duration
}

var (
	exportLimits = []CallLimit{{5, time.Minute}, {20, time.Hour}}
	deltaLimits  = []CallLimit{{30, time.Minute}, {1000, time.Hour}}
)

// Microsoft's per-application, per-tenant limits of the two APIs as a whole:
// Graph's "security detections and incidents" service limit, and the Defender
// for Endpoint API's. Config.GraphLimits and MDEConfig.APILimits enforce them,
// or scaled-down versions, when set.
var (
	GraphSecurityLimits = []CallLimit{{150, time.Minute}}
	MDEAPILimits        = []CallLimit{{100, time.Minute}, {1500, time.Hour}}
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
func (cl *callLimits) allow(api string, limits []CallLimit, now time.Time) (bool, time.Duration) {
	if len(limits) == 0 {
		return true, 0
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var longest time.Duration
	for _, l := range limits {
		longest = max(longest, l.Window)
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
		for i := len(past) - 1; i >= 0 && past[i].After(now.Add(-l.Window)); i-- {
			inWindow++
		}
		if inWindow >= l.Calls {
			// The oldest call of the window that must leave it for one more to fit.
			oldest := past[len(past)-inWindow+(inWindow-l.Calls)]
			wait = max(wait, oldest.Add(l.Window).Sub(now))
		}
	}
	if wait > 0 {
		cl.calls[api] = past
		return false, wait
	}
	cl.calls[api] = append(past, now)
	return true, 0
}

// setRetryAfter tells how long to wait in whole seconds, as Graph and MDE do;
// a wait under a second still says 1.
func setRetryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
}
