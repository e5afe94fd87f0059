package msapi

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/logp/logptest"
	"github.com/elastic/elastic-agent-libs/transport/tlscommon"
	"go.uber.org/zap/zaptest/observer"
)

const (
	testTenant = "contoso-tenant"
	testClient = "client-1234"
	// Distinctive so that any leak is found by a plain substring search.
	testSecret = "Sup3rS3cret~Value.0xDEADBEEF"
)

// tlsServer starts an httptest TLS server on 127.0.0.1. Every httptest TLS server presents the
// same self-signed certificate, so one CA file trusts them all.
func tlsServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	// Handshakes refused on purpose (untrusted-CA tests) would otherwise clutter the output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func caFile(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeLogin is an Entra ID authority as MSAL talks to it: OpenID discovery, then the v2 token
// endpoint.
type fakeLogin struct {
	srv *httptest.Server

	mu       sync.Mutex
	forms    []url.Values
	paths    []string
	issued   atomic.Int64
	tokenErr func(form url.Values) (int, string) // optional failure
}

func newFakeLogin(t *testing.T) *fakeLogin {
	f := &fakeLogin{}
	f.srv = tlsServer(t, http.HandlerFunc(f.serve))
	return f
}

func (f *fakeLogin) serve(w http.ResponseWriter, r *http.Request) {
	base := f.srv.URL
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	tenant := parts[0]
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/v2.0/.well-known/openid-configuration"):
		json.NewEncoder(w).Encode(map[string]string{
			"token_endpoint":         base + "/" + tenant + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/" + tenant + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/" + tenant + "/v2.0",
		})
	case r.Method == http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.forms = append(f.forms, r.PostForm)
		f.paths = append(f.paths, r.URL.Path)
		tokenErr := f.tokenErr
		f.mu.Unlock()
		if tokenErr != nil {
			if status, body := tokenErr(r.PostForm); status != 0 {
				w.WriteHeader(status)
				fmt.Fprint(w, body)
				return
			}
		}
		n := f.issued.Add(1)
		json.NewEncoder(w).Encode(map[string]any{
			"token_type":   "Bearer",
			"expires_in":   3600,
			"access_token": fmt.Sprintf("tok-%d", n),
		})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeLogin) lastForm(t *testing.T) url.Values {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.forms) == 0 {
		t.Fatal("no token request reached the login server")
	}
	return f.forms[len(f.forms)-1]
}

// apiRecorder wraps a handler and remembers what reached it.
type apiRecorder struct {
	mu      sync.Mutex
	auth    []string
	urls    []string
	handler http.HandlerFunc
}

func (a *apiRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.auth = append(a.auth, r.Header.Get("Authorization"))
	a.urls = append(a.urls, r.URL.RequestURI())
	a.mu.Unlock()
	a.handler(w, r)
}

func (a *apiRecorder) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.auth)
}

func (a *apiRecorder) authHeaders() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auth...)
}

type testEnv struct {
	login   *fakeLogin
	api     *apiRecorder
	apiSrv  *httptest.Server
	ca      string
	client  *Client
	opts    Options
	metrics *Metrics
	logs    *observer.ObservedLogs
}

func baseOptions(login, requestURL, ca string) Options {
	o := DefaultOptions()
	o.TenantID = testTenant
	o.ClientID = testClient
	o.ClientSecret = testSecret
	o.LoginURL = login
	o.RequestURL = requestURL
	o.SSL = &tlscommon.Config{CAs: []string{ca}}
	o.EnableRequestTracer = true
	o.SetRetryBackoff(10*time.Millisecond, 5*time.Second)
	o.DownloadHosts = []string{"127.0.0.1"} // httptest servers
	return o
}

func newEnv(t *testing.T, handler http.HandlerFunc, mutate func(*Options)) *testEnv {
	t.Helper()
	e := &testEnv{login: newFakeLogin(t), api: &apiRecorder{handler: handler}}
	e.apiSrv = tlsServer(t, e.api)
	e.ca = caFile(t, e.apiSrv)
	o := baseOptions(e.login.srv.URL, e.apiSrv.URL, e.ca)
	if mutate != nil {
		mutate(&o)
	}
	if errs := o.Resolve(Graph); len(errs) > 0 {
		t.Fatalf("Resolve: %v", errs)
	}
	var log *logp.Logger
	log, e.logs = logptest.NewTestingLoggerWithObserver(t, "test")
	e.metrics = NewMetrics(nil)
	c, err := NewClient(o, Graph, log, e.metrics)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	e.client, e.opts = c, o
	return e
}

// allLogText renders every captured entry, message and fields, for leak searches.
func allLogText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		b.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func graphError(code, message string) map[string]any {
	return map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"innerError": map[string]string{"request-id": "req-42", "date": "2025-01-01T00:00:00"},
	}}
}
