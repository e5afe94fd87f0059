package msapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBudgetHoldsEveryWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBudget([]CallLimit{{3, 20 * time.Second}, {5, 200 * time.Second}}, func() time.Time { return now })
	// The windows are widened by a twentieth: 21 s and 210 s.
	for i := range 3 {
		if d := b.delay(now); d != 0 {
			t.Fatalf("call %d: delay %s", i, d)
		}
		b.calls = append(b.calls, now)
		now = now.Add(time.Second)
	}
	if d := b.delay(now); d != 18*time.Second {
		t.Fatalf("fourth call 3 s after the first: delay %s, want 18s (21 s after the first)", d)
	}
	now = now.Add(18 * time.Second)
	b.calls = append(b.calls, now)
	now = now.Add(30 * time.Second)
	b.calls = append(b.calls, now)
	// Five calls between 0 s and 51 s: the sixth waits for the first to leave the 210 s window.
	if d := b.delay(now); d != 210*time.Second-51*time.Second {
		t.Fatalf("sixth call: delay %s, want %s", d, 210*time.Second-51*time.Second)
	}
}

// The budget stays exact (never more than the limit in any window) and small (one window's calls)
// when it allows thousands of calls per window, as CVE lookups may.
func TestBudgetHoldsAtHighRates(t *testing.T) {
	const perWindow, window = 2000, 100 * time.Millisecond
	b := NewBudget(time.Now, CallLimit{perWindow, window})
	start := time.Now()
	for range 5 * perWindow {
		if _, err := b.Take(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if elapsed := time.Since(start); elapsed < 4*window {
		t.Fatalf("%d calls at %d per %s took %s", 5*perWindow, perWindow, window, elapsed)
	}
	if len(b.calls) > perWindow {
		t.Fatalf("the budget remembers %d calls, more than one window's %d", len(b.calls), perWindow)
	}
}

func TestBudgetTakeStopsWithItsContext(t *testing.T) {
	b := newBudget([]CallLimit{{1, time.Hour}}, time.Now)
	if _, err := b.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Take(ctx); err == nil {
		t.Fatal("a call beyond the budget went through")
	}
}

// Two clients of one registration (two inputs) draw from one budget: together they stay within
// it, and the waiting shows in their metrics, not as errors.
func TestClientsOfOneRegistrationShareOneBudget(t *testing.T) {
	const calls, window = 4, 400 * time.Millisecond
	defer OverrideBudgetLimits(Graph, CallLimit{calls, window})()

	var mu sync.Mutex
	var arrivals []time.Time
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		okPage(w, r)
	}, nil)
	second, m2 := e.sibling(t, func(*Options) {})

	var wg sync.WaitGroup
	for _, c := range []*Client{e.client, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				if _, err := c.GetPage(context.Background(), "/v1.0/security/alerts_v2", url.Values{"$top": {"2"}}, nil); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
	for i := calls; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-calls]); gap < window {
			t.Fatalf("requests %d and %d arrived %s apart: more than %d within %s", i-calls, i, gap, calls, window)
		}
	}
	waits := e.metrics.BudgetWaitsTotal.Get() + m2.BudgetWaitsTotal.Get()
	if waits == 0 || e.metrics.BudgetWaitSecondsTotal.Get()+m2.BudgetWaitSecondsTotal.Get() <= 0 {
		t.Fatalf("budget waits %d: the clients did not wait for the shared budget", waits)
	}
	if e.metrics.ErrorsTotal.Get()+m2.ErrorsTotal.Get() != 0 {
		t.Fatal("waiting for the budget counted as an error")
	}
}

// One registration is one credential (one token for both clients); a changed secret is another
// credential, and the same application's budget.
func TestCredentialSharedPerRegistrationAndSecret(t *testing.T) {
	e := newEnv(t, okPage, nil)
	same, _ := e.sibling(t, func(*Options) {})
	rotated, _ := e.sibling(t, func(o *Options) { o.ClientSecret = testSecret + "-rotated" })
	other, _ := e.sibling(t, func(o *Options) { o.ClientID = "client-5678" })

	if same.cred != e.client.cred {
		t.Fatal("two clients of one registration built two credentials")
	}
	if rotated.cred == e.client.cred || other.cred == e.client.cred {
		t.Fatal("a client with another secret or application got the first credential")
	}
	if budgetFor(rotated.opts, Graph) != budgetFor(e.opts, Graph) {
		t.Fatal("a rotated secret got a budget of its own: Microsoft counts per application")
	}
	if budgetFor(other.opts, Graph) == budgetFor(e.opts, Graph) || budgetFor(e.opts, DefenderForEndpoint) == budgetFor(e.opts, Graph) {
		t.Fatal("another application, or another API, shares the budget")
	}
	for _, c := range []*Client{e.client, same} {
		if _, err := c.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.login.issued.Load(); n != 1 {
		t.Fatalf("%d tokens issued for two clients of one registration, want 1", n)
	}
	if _, err := rotated.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatal(err)
	}
	if form := e.login.lastForm(t); form.Get("client_secret") != testSecret+"-rotated" {
		t.Fatal("the client given a new secret signed in with the old one")
	}
	if key := credentialKeyOf(e.opts); slices.Contains([]string{fmt.Sprintf("%x", key[:]), string(key[:])}, testSecret) {
		t.Fatal("the key holds the secret")
	}
}

// sibling is another client on the env's servers: another input, with mutate applied.
func (e *testEnv) sibling(t *testing.T, mutate func(*Options)) (*Client, *Metrics) {
	t.Helper()
	o := baseOptions(e.login.srv.URL, e.apiSrv.URL, e.ca)
	mutate(&o)
	if errs := o.Resolve(Graph); len(errs) > 0 {
		t.Fatal(errs)
	}
	m := NewMetrics(nil)
	c, err := NewClient(o, Graph, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return c, m
}
