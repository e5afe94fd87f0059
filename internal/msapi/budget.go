package msapi

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/elastic/elastic-agent-libs/logp"
)

// CallLimit is one of Microsoft's quotas of an API: at most Calls requests in any Window.
type CallLimit struct {
	Calls  int
	Window time.Duration
}

// budgetLimits are the quotas Microsoft documents per application and tenant: Graph's
// "security detections and incidents" service limit (150 requests a minute), and the Defender
// for Endpoint API's 100 calls a minute and 1,500 an hour.
var budgetLimits = map[API][]CallLimit{
	Graph:               {{150, time.Minute}},
	DefenderForEndpoint: {{100, time.Minute}, {1500, time.Hour}},
}

// budgetSlack widens every window a little: Microsoft counts a request when it arrives, which
// may be later than when it was sent, so two requests sent a window apart can arrive within one.
const budgetSlack = 20 // a twentieth of the window: 3 s a minute, 3 min an hour

// Budget spaces calls to stay within a set of CallLimits. The budget of an API (or of one of its
// endpoints) for one application registration in one tenant is shared by every client of that
// registration in the process: two inputs on one registration draw from it together instead of
// each spacing only its own calls.
type Budget struct {
	mu     sync.Mutex
	limits []CallLimit
	calls  []time.Time // accepted calls within the longest window, oldest first
	now    func() time.Time
}

// NewBudget is a budget of its own, for a limit one input sets itself (CVE lookups per minute).
func NewBudget(now func() time.Time, limits ...CallLimit) *Budget { return newBudget(limits, now) }

func newBudget(limits []CallLimit, now func() time.Time) *Budget {
	var widened []CallLimit
	for _, l := range limits {
		if l.Calls > 0 && l.Window > 0 {
			widened = append(widened, CallLimit{Calls: l.Calls, Window: l.Window + l.Window/budgetSlack})
		}
	}
	return &Budget{limits: widened, now: now}
}

// delay is how long until one more call fits every limit; zero when it fits now.
func (b *Budget) delay(now time.Time) time.Duration {
	var longest time.Duration
	for _, l := range b.limits {
		longest = max(longest, l.Window)
	}
	keep := 0
	for keep < len(b.calls) && now.Sub(b.calls[keep]) >= longest {
		keep++
	}
	b.calls = b.calls[keep:]
	var wait time.Duration
	for _, l := range b.limits {
		// The calls within a window are a suffix of the log.
		in := len(b.calls) - sort.Search(len(b.calls), func(i int) bool { return now.Sub(b.calls[i]) < l.Window })
		if in >= l.Calls {
			oldest := b.calls[len(b.calls)-l.Calls]
			wait = max(wait, oldest.Add(l.Window).Sub(now))
		}
	}
	return wait
}

// Take blocks until one more call fits, then counts it. It returns how long it waited.
func (b *Budget) Take(ctx context.Context) (time.Duration, error) {
	return b.TakeLogged(ctx, nil)
}

// TakeLogged is Take, telling waiting (when not nil) how long it is about to wait each time.
func (b *Budget) TakeLogged(ctx context.Context, waiting func(time.Duration)) (time.Duration, error) {
	var waited time.Duration
	for {
		b.mu.Lock()
		now := b.now()
		d := b.delay(now)
		if d <= 0 {
			b.calls = append(b.calls, now)
			b.mu.Unlock()
			return waited, nil
		}
		b.mu.Unlock()
		if waiting != nil {
			waiting(d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return waited, ctx.Err()
		case <-t.C:
			waited += d
		}
	}
}

// budgetKey names an application registration in a tenant of a cloud, for one API. The secret
// is no part of it: Microsoft counts per application, whichever secret it signs in with.
type budgetKey struct {
	api       API
	endpoint  string // "" for the API as a whole
	authority string
	tenant    string
	app       string
}

func budgetKeyOf(o Options, api API, endpoint string) budgetKey {
	app := strings.ToLower(o.ClientID)
	if o.AuthType == AuthManagedIdentity {
		// A managed identity is its own application; the system-assigned one has no client id.
		app = "managed-identity:" + strings.ToLower(o.ManagedIdentityClientID)
	}
	return budgetKey{api: api, endpoint: endpoint, authority: strings.ToLower(strings.TrimRight(o.LoginURL, "/")), tenant: strings.ToLower(o.TenantID), app: app}
}

var budgets = struct {
	sync.Mutex
	byKey     map[budgetKey]*Budget
	overrides map[API][]CallLimit
}{byKey: map[budgetKey]*Budget{}, overrides: map[API][]CallLimit{}}

// budgetFor returns the process-wide budget of a registration for an API. Budgets are a few
// timestamps each and live as long as the process, so an input that restarts finds the calls
// it and its siblings made in the last window.
func budgetFor(o Options, api API) *Budget {
	budgets.Lock()
	limits, ok := budgets.overrides[api]
	budgets.Unlock()
	if !ok {
		limits = budgetLimits[api]
	}
	return SharedBudget(o, api, "", limits...)
}

// SharedBudget is the budget of one endpoint of an API that has limits of its own (Defender for
// Endpoint's export: 5 calls a minute, 20 an hour), shared by the registration's inputs like the
// API's budget. The first caller's limits make it.
func SharedBudget(o Options, api API, endpoint string, limits ...CallLimit) *Budget {
	key := budgetKeyOf(o, api, endpoint)
	budgets.Lock()
	defer budgets.Unlock()
	if b, ok := budgets.byKey[key]; ok {
		return b
	}
	b := newBudget(limits, time.Now)
	budgets.byKey[key] = b
	return b
}

// OverrideBudgetLimits replaces an API's documented limits for the budgets created from now on,
// and returns what restores them. Tests scale the limits down with it to see them enforced in
// seconds; nothing else calls it.
func OverrideBudgetLimits(api API, limits ...CallLimit) (restore func()) {
	budgets.Lock()
	defer budgets.Unlock()
	prev, had := budgets.overrides[api]
	budgets.overrides[api] = limits
	return func() {
		budgets.Lock()
		defer budgets.Unlock()
		if had {
			budgets.overrides[api] = prev
		} else {
			delete(budgets.overrides, api)
		}
	}
}

// budgetPolicy makes every attempt of a request, retries included, wait for the registration's
// budget: Microsoft counts each one. Waiting is normal operation, seen in the metrics.
type budgetPolicy struct {
	budget  *Budget
	metrics *Metrics
	log     *logp.Logger
	api     API
}

func (p *budgetPolicy) Do(req *policy.Request) (*http.Response, error) {
	waited, err := p.budget.Take(req.Raw().Context())
	if waited > 0 {
		p.metrics.BudgetWaitsTotal.Inc()
		p.metrics.addBudgetWait(waited)
		p.log.Debugw("Waited for the application's request budget.", "api", p.api.String(), "wait", waited.String())
	}
	if err != nil {
		return nil, err
	}
	return req.Next()
}
