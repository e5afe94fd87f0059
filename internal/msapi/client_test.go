package msapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func okPage(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": []map[string]string{{"id": "a1"}, {"id": "a2"}}})
}

func TestTokenAcquiredOnceAndSentAsBearer(t *testing.T) {
	e := newEnv(t, okPage, nil)
	ctx := context.Background()
	for range 2 {
		page, err := e.client.GetPage(ctx, "/v1.0/security/alerts_v2", url.Values{"$top": {"2"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Values) != 2 || !strings.Contains(string(page.Values[1]), `"a2"`) {
			t.Fatalf("unexpected page %+v", page)
		}
	}
	for _, h := range e.api.authHeaders() {
		if h != "Bearer tok-1" {
			t.Fatalf("Authorization = %q, want the cached token", h)
		}
	}
	if n := e.login.issued.Load(); n != 1 {
		t.Fatalf("issued %d tokens, want 1", n)
	}
	form := e.login.lastForm(t)
	if form.Get("grant_type") != "client_credentials" || form.Get("client_id") != testClient || form.Get("client_secret") != testSecret {
		t.Fatalf("token form = %v", form)
	}
	if !strings.Contains(form.Get("scope"), e.apiSrv.URL+"/.default") {
		t.Fatalf("scope %q does not name the API host", form.Get("scope"))
	}
	if got := e.api.urls[0]; got != "/v1.0/security/alerts_v2?$top=2" {
		t.Fatalf("request URI = %q", got)
	}
	if e.metrics.RequestsTotal.Get() != 2 || e.metrics.PagesTotal.Get() != 2 || e.metrics.BytesTotal.Get() == 0 {
		t.Fatalf("metrics requests=%d pages=%d bytes=%d", e.metrics.RequestsTotal.Get(), e.metrics.PagesTotal.Get(), e.metrics.BytesTotal.Get())
	}
}

func TestRetryAfterSecondsIsHonoured(t *testing.T) {
	var calls atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, graphError("TooManyRequests", "slow down"))
			return
		}
		okPage(w, r)
	}, nil)
	start := time.Now()
	if _, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("retried after %v, before Retry-After", waited)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d attempts, want 2", calls.Load())
	}
	if e.metrics.ThrottledTotal.Get() != 1 || e.metrics.RetriesTotal.Get() != 1 || e.metrics.RequestsTotal.Get() != 2 {
		t.Fatalf("metrics throttled=%d retries=%d requests=%d", e.metrics.ThrottledTotal.Get(), e.metrics.RetriesTotal.Get(), e.metrics.RequestsTotal.Get())
	}
}

func TestRetryAfterHTTPDateIsHonoured(t *testing.T) {
	var calls atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		okPage(w, r)
	}, nil)
	start := time.Now()
	if _, err := e.client.Get(context.Background(), "/v1.0/security/incidents", nil, nil); err != nil {
		t.Fatal(err)
	}
	// HTTP dates have one-second resolution.
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("retried after %v, before the Retry-After date", waited)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d attempts, want 2", calls.Load())
	}
}

func TestThrottledWithoutRetryAfterBacksOff(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	var times []time.Time
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		okPage(w, r)
	}, func(o *Options) { o.retryDelay = 50 * time.Millisecond })
	if _, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d attempts, want 3", calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	// Exponential: (2^1-1)*50ms then (2^2-1)*50ms, each with jitter 0.8..1.3.
	if d := times[1].Sub(times[0]); d < 40*time.Millisecond {
		t.Fatalf("first backoff %v too short", d)
	}
	if d := times[2].Sub(times[1]); d < 120*time.Millisecond {
		t.Fatalf("second backoff %v is not exponential", d)
	}
	if e.metrics.ThrottledTotal.Get() != 2 || e.metrics.RetriesTotal.Get() != 2 {
		t.Fatalf("metrics throttled=%d retries=%d", e.metrics.ThrottledTotal.Get(), e.metrics.RetriesTotal.Get())
	}
}

func TestServerErrorBurstThenSuccess(t *testing.T) {
	statuses := []int{500, 502, 503, 504}
	var calls atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		n := int(calls.Add(1))
		if n <= len(statuses) {
			w.WriteHeader(statuses[n-1])
			return
		}
		okPage(w, r)
	}, nil)
	if _, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 5 {
		t.Fatalf("%d attempts, want 5", calls.Load())
	}
}

func TestRetriesExhaustedGiveAPIError(t *testing.T) {
	var calls atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("request-id", "rid-503")
		writeJSON(w, http.StatusServiceUnavailable, graphError("ServiceUnavailable", "try later"))
	}, func(o *Options) { o.MaxRetries = 2 })
	_, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if ae.StatusCode != 503 || ae.Code != "ServiceUnavailable" || ae.RequestID != "rid-503" || ae.ClientRequestID == "" {
		t.Fatalf("APIError = %+v", ae)
	}
	if !strings.Contains(err.Error(), "rid-503") || !strings.Contains(err.Error(), "try later") {
		t.Fatalf("error text lacks the service's details: %v", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d attempts, want 1 + max_retries", calls.Load())
	}
	if e.metrics.ErrorsTotal.Get() != 1 {
		t.Fatalf("errors_total = %d", e.metrics.ErrorsTotal.Get())
	}
	if IsAuth(err) || IsThrottled(err) {
		t.Fatal("503 classified as auth or throttling")
	}
}

func TestThrottledBeyondRetries(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600") // beyond maxRetryDelay: not waited for
		w.WriteHeader(http.StatusTooManyRequests)
	}, nil)
	start := time.Now()
	_, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
	if !IsThrottled(err) {
		t.Fatalf("err = %v, want throttled", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("waited for an hour-long Retry-After inside one call")
	}
	var ae *APIError
	if errors.As(err, &ae); ae.RetryAfter < 59*time.Minute {
		t.Fatalf("RetryAfter = %v", ae.RetryAfter)
	}
}

func TestUnauthorizedRenewsTokenOnceThenExplains(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusUnauthorized, graphError("InvalidAuthenticationToken", "Access token validation failure. Invalid audience."))
	}, nil)
	_, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Fatalf("err = %v, want 401 APIError", err)
	}
	if !IsAuth(err) {
		t.Fatal("IsAuth(401) = false")
	}
	if hint := Explain(err); !strings.Contains(hint, "tenant_id") || !strings.Contains(hint, "cloud") {
		t.Fatalf("Explain = %q", hint)
	}
	got := e.api.authHeaders()
	if len(got) != 2 || got[0] != "Bearer tok-1" || got[1] != "Bearer tok-2" {
		t.Fatalf("Authorization headers %v: want one retry with a fresh token", got)
	}
}

func TestUnauthorizedRecoversWithFreshToken(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer tok-1" { // revoked
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		okPage(w, r)
	}, nil)
	if _, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatalf("GetPage after revoked token: %v", err)
	}
}

func TestForbiddenNamesThePermission(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, graphError("Forbidden", "Missing application roles."))
	}, nil)
	for path, perm := range map[string]string{
		"/v1.0/security/alerts_v2": "SecurityAlert.Read.All",
		"/v1.0/security/incidents": "SecurityIncident.Read.All",
	} {
		_, err := e.client.Get(context.Background(), path, nil, nil)
		if !IsAuth(err) {
			t.Fatalf("%s: IsAuth(%v) = false", path, err)
		}
		if hint := Explain(err); !strings.Contains(hint, perm) || !strings.Contains(hint, "admin consent") {
			t.Fatalf("%s: Explain = %q", path, hint)
		}
	}
}

func TestNextLinkToForeignHostIsRefused(t *testing.T) {
	var foreignHits atomic.Int64
	foreign := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
		okPage(w, r)
	}))
	var e *testEnv
	e = newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"value":           []any{map[string]string{"id": "x"}},
			"@odata.nextLink": foreign.URL + "/v1.0/security/alerts_v2?$skiptoken=abc",
		})
	}, nil)
	ctx := context.Background()
	page, err := e.client.GetPage(ctx, "/v1.0/security/alerts_v2", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	apiHost := e.apiSrv.URL[len("https://"):]
	for _, next := range []string{
		page.NextLink,
		"http://" + apiHost + "/v1.0/security/alerts_v2", // same host, other scheme
		"//" + foreign.URL[len("https://"):] + "/x",      // scheme-relative
	} {
		_, err = e.client.GetPage(ctx, next, nil, nil)
		var fhe *ForeignHostError
		if !errors.As(err, &fhe) {
			t.Fatalf("following %s: err = %v, want *ForeignHostError", next, err)
		}
		if !strings.Contains(err.Error(), "refusing") {
			t.Fatalf("unclear error: %v", err)
		}
	}
	if foreignHits.Load() != 0 {
		t.Fatal("a request reached the foreign host")
	}
	if e.api.count() != 1 {
		t.Fatalf("%d API requests, want 1", e.api.count())
	}

	// A nextLink on the API host itself is followed.
	same := e.apiSrv.URL + "/v1.0/security/alerts_v2?$skiptoken=abc"
	if _, err := e.client.GetPage(ctx, same, nil, nil); err != nil {
		t.Fatalf("same-host nextLink: %v", err)
	}
	if got := e.api.urls[1]; got != "/v1.0/security/alerts_v2?$skiptoken=abc" {
		t.Fatalf("followed %q", got)
	}
}

func TestBodyLargerThanCapFails(t *testing.T) {
	big := `{"value":["` + strings.Repeat("x", 4096) + `"]}`
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				}
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, big[:2000])
				w.(http.Flusher).Flush()
				io.WriteString(w, big[2000:])
			}, func(o *Options) { o.MaxResponseBytes = 1024 })
			_, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("err = %v, want ErrBodyTooLarge", err)
			}
			if !strings.Contains(err.Error(), "max_response_bytes") || !strings.Contains(err.Error(), "1024") {
				t.Fatalf("error does not mention the cap: %v", err)
			}
			if e.api.count() != 1 {
				t.Fatalf("%d attempts: an oversized body must not be retried", e.api.count())
			}
		})
	}
}

func TestPartialContentIsFlagged(t *testing.T) {
	const warning = "Microsoft/MDATP/504/10000"
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Warning", warning)
		writeJSON(w, http.StatusPartialContent, map[string]any{"value": []any{map[string]string{"id": "p"}}})
	}, nil)
	page, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !page.Partial || page.Warning != warning || len(page.Values) != 1 {
		t.Fatalf("page = %+v", page)
	}
	if e.metrics.PartialTotal.Get() != 1 {
		t.Fatalf("partial_total = %d", e.metrics.PartialTotal.Get())
	}
	warned := e.logs.FilterMessageSnippet("HTTP 206").All()
	if len(warned) != 1 || warned[0].Level.String() != "warn" {
		t.Fatalf("want one warning log line, got %v", warned)
	}
}

func TestMalformedPage(t *testing.T) {
	for name, body := range map[string]string{
		"not json": `<html>gateway error</html>`,
		"no value": `{"error":"nope"}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, body)
			}, nil)
			_, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
			if err == nil || !strings.Contains(err.Error(), "malformed page") || !strings.Contains(err.Error(), "HTTP 200") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestQueryKeepsODataDollar(t *testing.T) {
	e := newEnv(t, okPage, nil)
	q := url.Values{
		"$filter":  {"lastUpdateDateTime ge 2025-01-01T00:00:00Z"},
		"$orderby": {"lastUpdateDateTime asc"},
	}
	if _, err := e.client.GetPage(context.Background(), "v1.0/security/alerts_v2", q, nil); err != nil {
		t.Fatal(err)
	}
	want := "/v1.0/security/alerts_v2?$filter=lastUpdateDateTime%20ge%202025-01-01T00%3A00%3A00Z&$orderby=lastUpdateDateTime%20asc"
	if got := e.api.urls[0]; got != want {
		t.Fatalf("request URI\n got %s\nwant %s", got, want)
	}
}

func TestHeadersArePassed(t *testing.T) {
	var prefer atomic.Value
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		prefer.Store(r.Header.Get("Prefer"))
		okPage(w, r)
	}, nil)
	h := http.Header{"Prefer": {"include-unknown-enum-members"}}
	if _, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, h); err != nil {
		t.Fatal(err)
	}
	if prefer.Load() != "include-unknown-enum-members" {
		t.Fatalf("Prefer = %v", prefer.Load())
	}
}

func TestContextCancelStopsRetrying(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}, func(o *Options) { o.maxRetryDelay = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.client.Get(ctx, "/v1.0/security/alerts_v2", nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("cancellation did not interrupt the Retry-After wait")
	}
}

func TestPerTryTimeout(t *testing.T) {
	var calls atomic.Int64
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // hang the first attempt
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		okPage(w, r)
	}, func(o *Options) { o.HTTPClientTimeout = time.Second })
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatalf("second attempt should succeed: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d attempts", calls.Load())
	}
}

// connectProxy is a minimal HTTPS (CONNECT) proxy that counts the tunnels it opens.
func connectProxy(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var tunnels atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		tunnels.Add(1)
		w.WriteHeader(http.StatusOK)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		go func() { io.Copy(upstream, conn); upstream.Close() }()
		go func() { io.Copy(conn, upstream); conn.Close() }()
	}))
	t.Cleanup(srv.Close)
	return srv, &tunnels
}

func TestProxyURLIsUsed(t *testing.T) {
	proxy, tunnels := connectProxy(t)
	e := newEnv(t, okPage, func(o *Options) { o.ProxyURL = proxy.URL })
	if _, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatal(err)
	}
	// At least one tunnel to the login server and one to the API (net/http may open a second
	// connection to a host when a request starts before the previous body was fully read).
	if tunnels.Load() < 2 {
		t.Fatalf("%d CONNECT tunnels, want one to the login server and one to the API", tunnels.Load())
	}
}

func TestProxyStillVerifiesTLS(t *testing.T) {
	proxy, _ := connectProxy(t)
	e := newEnv(t, okPage, func(o *Options) {
		o.ProxyURL = proxy.URL
		path, _ := selfSignedPEM(t)
		o.SSL.CAs = []string{path}
	})
	if _, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err == nil {
		t.Fatal("trusted an unknown CA through the proxy")
	}
	if e.api.count() != 0 {
		t.Fatal("a request reached the API through an unverified tunnel")
	}
}
