package simulator_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// fakeClock is a settable clock shared by a test and the simulator.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var baseTime = time.Date(2025, 3, 14, 9, 26, 53, 589793200, time.UTC)

func start(t *testing.T, cfg simulator.Config) (*simulator.Server, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: baseTime}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	s, err := simulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clock
}

func httpClient(t *testing.T, s *simulator.Server) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CAPEM()) {
		t.Fatal("CAPEM holds no certificate")
	}
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

func tokenRequest(t *testing.T, c *http.Client, endpoint string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := c.PostForm(endpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

func getToken(t *testing.T, s *simulator.Server, c *http.Client) string {
	t.Helper()
	status, body := tokenRequest(t, c, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
		"scope": {s.GraphScope()},
	})
	if status != 200 {
		t.Fatalf("token: %d %v", status, body)
	}
	return body["access_token"].(string)
}

type graphResponse struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (g graphResponse) values(t *testing.T) []map[string]any {
	t.Helper()
	list, ok := g.body["value"].([]any)
	if !ok {
		t.Fatalf("no value array in %s", truncate(g.raw))
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		out[i] = v.(map[string]any)
	}
	return out
}

func (g graphResponse) errorCode() string {
	e, _ := g.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func graphGet(t *testing.T, c *http.Client, token, rawURL string, header ...string) graphResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	g := graphResponse{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &g.body)
	return g
}

func TestAzidentityClientSecretCredential(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 1})
	c := httpClient(t, s)
	opts := func(disableDiscovery bool) *azidentity.ClientSecretCredentialOptions {
		// Retries off: a rejected credential must fail fast.
		return &azidentity.ClientSecretCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.URL() + "/"},
				Transport: c,
				Retry:     policy.RetryOptions{MaxRetries: -1},
			},
			DisableInstanceDiscovery: disableDiscovery,
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// MSAL sends instance discovery to login.microsoftonline.com for unknown
	// hosts, so clients of the simulator always disable it.
	cred, err := azidentity.NewClientSecretCredential(s.TenantID(), s.ClientID(), s.ClientSecret(), opts(true))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.GraphScope()}})
		if err != nil {
			t.Fatal(err)
		}
		if tok.Token == "" || time.Until(tok.ExpiresOn) < 50*time.Minute {
			t.Fatalf("unexpected token %+v", tok)
		}
		if g := graphGet(t, c, tok.Token, s.URL()+"/v1.0/security/alerts_v2?$top=1"); g.status != 200 {
			t.Fatalf("Graph with azidentity token: %d %s", g.status, truncate(g.raw))
		}
	}
	if got := s.TokensIssued(); got != 1 {
		t.Fatalf("TokensIssued = %d, want 1 (azidentity caches the token)", got)
	}

	var sawOpenID, sawToken bool
	for _, r := range s.Requests() {
		switch {
		case r.Path == "/"+s.TenantID()+"/v2.0/.well-known/openid-configuration":
			sawOpenID = true
		case r.Path == "/"+s.TenantID()+"/oauth2/v2.0/token" && r.Method == http.MethodPost:
			sawToken = true
		}
	}
	if !sawOpenID || !sawToken {
		t.Fatalf("expected openid configuration and token requests: %v %v", sawOpenID, sawToken)
	}

	for name, tc := range map[string]struct{ tenant, client, secret, want string }{
		"wrong secret": {s.TenantID(), s.ClientID(), "not-the-secret", "AADSTS7000215"},
		"wrong client": {s.TenantID(), "00000000-0000-0000-0000-000000000001", s.ClientSecret(), "AADSTS700016"},
		"wrong tenant": {"11111111-2222-3333-4444-555555555555", s.ClientID(), s.ClientSecret(), "AADSTS90002"},
	} {
		cred, err := azidentity.NewClientSecretCredential(tc.tenant, tc.client, tc.secret, opts(true))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.GraphScope()}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: want error with %s, got %v", name, tc.want, err)
		}
	}
}

func TestAzidentityClientCertificateCredential(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 1})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	cred, err := azidentity.NewClientCertificateCredential(s.TenantID(), s.ClientID(), []*x509.Certificate{cert}, key,
		&azidentity.ClientCertificateCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: s.URL() + "/"}, Transport: httpClient(t, s)},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.GraphScope()}})
	if err != nil {
		t.Fatal(err)
	}
	if g := graphGet(t, httpClient(t, s), tok.Token, s.URL()+"/v1.0/security/incidents?$top=1"); g.status != 200 {
		t.Fatalf("Graph with certificate token: %d", g.status)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 2})
	c := httpClient(t, s)
	endpoint := s.URL() + "/" + s.TenantID() + "/oauth2/v2.0/token"
	good := func() url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}, "scope": {s.GraphScope()}}
	}
	cases := []struct {
		name     string
		endpoint string
		mutate   func(url.Values)
		status   int
		errCode  string
		aadsts   float64
	}{
		{"wrong tenant", s.URL() + "/contoso-wrong/oauth2/v2.0/token", func(url.Values) {}, 400, "invalid_request", 90002},
		{"wrong client", endpoint, func(v url.Values) { v.Set("client_id", "nobody") }, 400, "unauthorized_client", 700016},
		{"wrong secret", endpoint, func(v url.Values) { v.Set("client_secret", "x") }, 401, "invalid_client", 7000215},
		{"no secret", endpoint, func(v url.Values) { v.Del("client_secret") }, 401, "invalid_client", 7000218},
		{"scope without .default", endpoint, func(v url.Values) { v.Set("scope", "https://graph.microsoft.com/SecurityAlert.Read.All") }, 400, "invalid_scope", 1002012},
		{"v1 resource parameter", endpoint, func(v url.Values) { v.Set("resource", "https://graph.microsoft.com") }, 400, "invalid_request", 901002},
		{"other grant", endpoint, func(v url.Values) { v.Set("grant_type", "password") }, 400, "unsupported_grant_type", 70003},
		{"malformed assertion", endpoint, func(v url.Values) {
			v.Del("client_secret")
			v.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			v.Set("client_assertion", "not-a-jwt")
		}, 401, "invalid_client", 50027},
	}
	for _, tc := range cases {
		form := good()
		tc.mutate(form)
		status, body := tokenRequest(t, c, tc.endpoint, form)
		codes, _ := body["error_codes"].([]any)
		desc, _ := body["error_description"].(string)
		if status != tc.status || body["error"] != tc.errCode || len(codes) != 1 || codes[0] != tc.aadsts || !strings.HasPrefix(desc, "AADSTS") {
			t.Errorf("%s: got %d %v", tc.name, status, body)
		}
		if strings.Contains(desc, s.ClientSecret()) {
			t.Errorf("%s: error description leaks the secret", tc.name)
		}
	}
	if status, body := tokenRequest(t, c, endpoint, good()); status != 200 || body["token_type"] != "Bearer" || body["expires_in"] != float64(3599) || body["ext_expires_in"] != float64(3599) {
		t.Fatalf("good request: %d %v", status, body)
	}
	if s.TokensIssued() != 1 {
		t.Fatalf("failed requests must not issue tokens: %d", s.TokensIssued())
	}
}

func TestGraphRejectsMissingAndForeignTokens(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 3})
	c := httpClient(t, s)
	for _, path := range []string{"/v1.0/security/alerts_v2", "/v1.0/security/incidents?$expand=alerts", "/v1.0/security/incidents/1"} {
		g := graphGet(t, c, "", s.URL()+path)
		if g.status != 401 || g.errorCode() != "InvalidAuthenticationToken" || g.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without token: %d %s", path, g.status, truncate(g.raw))
		}
		if g := graphGet(t, c, "made-up", s.URL()+path); g.status != 401 || !strings.Contains(string(g.raw), "Access token has expired or is not yet valid.") {
			t.Errorf("%s with unknown token: %d %s", path, g.status, truncate(g.raw))
		}
	}
	status, body := tokenRequest(t, c, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
		"scope": {"https://api.securitycenter.microsoft.com/.default"},
	})
	if status != 200 {
		t.Fatalf("MDE token: %d %v", status, body)
	}
	if g := graphGet(t, c, body["access_token"].(string), s.URL()+"/v1.0/security/alerts_v2"); g.status != 401 || !strings.Contains(string(g.raw), "Invalid audience") {
		t.Fatalf("token for another resource accepted by Graph: %d %s", g.status, truncate(g.raw))
	}
	// The public Graph scope is accepted too, so configs written for the real cloud work.
	status, body = tokenRequest(t, c, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
		"scope": {"https://graph.microsoft.com/.default"},
	})
	if status != 200 {
		t.Fatalf("graph.microsoft.com token: %d %v", status, body)
	}
	if g := graphGet(t, c, body["access_token"].(string), s.URL()+"/v1.0/security/alerts_v2"); g.status != 200 {
		t.Fatalf("graph.microsoft.com audience rejected: %d", g.status)
	}
}

func alertAt(id, ts string) map[string]any {
	return map[string]any{"id": id, "lastUpdateDateTime": ts, "createdDateTime": "2025-03-01T00:00:00Z", "status": "new", "severity": "low", "serviceSource": "microsoftDefenderForEndpoint", "incidentId": "7"}
}

func ids(records []map[string]any) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i], _ = r["id"].(string)
	}
	return out
}

func TestQuerySemantics(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 4})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	s.Reset()
	s.PutAlert(alertAt("a1", "2025-03-14T08:00:00.1234567Z"))
	s.PutAlert(alertAt("a2", "2025-03-14T08:00:00.1234568Z"))
	s.PutAlert(alertAt("a3", "2025-03-14T08:00:00.1234568Z"))
	s.PutAlert(alertAt("a0", "2025-03-14T07:00:00Z"))
	s.PutAlert(alertAt("a4", "2025-03-14T09:00:00.5Z"))
	base := s.URL() + "/v1.0/security/alerts_v2"

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"a0", "a1", "a2", "a3", "a4"}},
		{"$filter=lastUpdateDateTime ge 2025-03-14T08:00:00.1234568Z&$orderby=lastUpdateDateTime asc", []string{"a2", "a3", "a4"}},
		{"$filter=lastUpdateDateTime gt 2025-03-14T08:00:00.1234568Z", []string{"a4"}},
		{"$filter=lastUpdateDateTime ge 2025-03-14T08:00:00Z and lastUpdateDateTime lt 2025-03-14T09:00:00Z", []string{"a1", "a2", "a3"}},
		{"$filter=(lastUpdateDateTime gt 2025-03-14T10:00:00.1234567%2B02:00) AND status eq 'new'", []string{"a2", "a3", "a4"}},
		{"$filter=lastUpdateDateTime ge 2025-03-14T07:00:00Z&$orderby=lastUpdateDateTime desc", []string{"a4", "a3", "a2", "a1", "a0"}},
		{"$orderby=lastUpdateDateTime asc&$top=2", []string{"a0", "a1"}},
		{"$orderby=lastUpdateDateTime asc&$top=2&$skip=2", []string{"a2", "a3"}},
		{"$top=0", []string{}},
		{"$filter=severity eq 'high'", []string{}},
	} {
		g := graphGet(t, c, tok, base+"?"+strings.ReplaceAll(tc.query, " ", "%20"))
		if g.status != 200 {
			t.Errorf("%q: %d %s", tc.query, g.status, truncate(g.raw))
			continue
		}
		if got := ids(g.values(t)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.query, got, tc.want)
		}
		if ctx, _ := g.body["@odata.context"].(string); !strings.HasSuffix(ctx, "/v1.0/$metadata#security/alerts_v2") {
			t.Errorf("%q: @odata.context %q", tc.query, ctx)
		}
	}

	badAlerts := []string{
		"$top=1001", "$skip=501", "$top=-1", "$top=abc",
		"$filter=foo eq 'x'", "$filter=lastUpdateDateTime ge '2025-03-14T08:00:00Z'", "$filter=lastUpdateDateTime ge yesterday",
		"$filter=lastUpdateDateTime contains 2025", "$filter=lastUpdateDateTime ge", "$filter=(lastUpdateDateTime ge 2025-03-14T08:00:00Z",
		"$orderby=title asc", "$orderby=lastUpdateDateTime sideways", "$expand=alerts", "$search=x", "$apply=groupby", "$top=1&$top=2",
	}
	for _, q := range badAlerts {
		g := graphGet(t, c, tok, base+"?"+strings.ReplaceAll(q, " ", "%20"))
		if g.status != 400 || g.errorCode() != "BadRequest" {
			t.Errorf("%q: want 400 BadRequest, got %d %s", q, g.status, truncate(g.raw))
		}
	}
	if g := graphGet(t, c, tok, base+"?$top=1000&$skip=500"); g.status != 200 {
		t.Errorf("limits themselves must be accepted: %d", g.status)
	}
	incidents := s.URL() + "/v1.0/security/incidents"
	if g := graphGet(t, c, tok, incidents+"?$top=51"); g.status != 400 {
		t.Errorf("incidents $top=51: %d", g.status)
	}
	if g := graphGet(t, c, tok, incidents+"?$top=50&$expand=alerts"); g.status != 200 {
		t.Errorf("incidents $top=50: %d", g.status)
	}
	if g := graphGet(t, c, tok, incidents+"?$filter=serviceSource%20eq%20'x'"); g.status != 400 {
		t.Errorf("serviceSource is not filterable on incidents: %d", g.status)
	}
	// Without "$" Graph v1.0 still reads the options.
	if g := graphGet(t, c, tok, base+"?top=1&orderby=lastUpdateDateTime%20desc"); g.status != 200 || !reflect.DeepEqual(ids(g.values(t)), []string{"a4"}) {
		t.Errorf("dollarless options: %d %s", g.status, truncate(g.raw))
	}
}

// collect follows nextLinks and returns every record, checking each link.
func collect(t *testing.T, c *http.Client, tok, first string) (records []map[string]any, pages int) {
	t.Helper()
	next := first
	firstURL, _ := url.Parse(first)
	for next != "" {
		g := graphGet(t, c, tok, next)
		if g.status != 200 {
			t.Fatalf("page %d: %d %s", pages, g.status, truncate(g.raw))
		}
		pages++
		records = append(records, g.values(t)...)
		next, _ = g.body["@odata.nextLink"].(string)
		if next != "" {
			u, err := url.Parse(next)
			if err != nil || u.Scheme != "https" || u.Host != firstURL.Host || u.Path != firstURL.Path {
				t.Fatalf("nextLink %q does not stay on %s", next, firstURL.Host)
			}
		}
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
	return records, pages
}

func TestNextLinkPagingReturnsEveryRecordOnce(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 5, Alerts: 230, Incidents: 40})
	c := httpClient(t, s)
	tok := getToken(t, s, c)

	wantAlerts := map[string]bool{}
	for _, a := range s.Alerts() {
		wantAlerts[a["id"].(string)] = true
	}
	if len(wantAlerts) != 230 {
		t.Fatalf("generated %d alerts, want 230", len(wantAlerts))
	}
	since := baseTime.Add(-72 * time.Hour).Format("2006-01-02T15:04:05Z")
	alerts, pages := collect(t, c, tok, s.URL()+"/v1.0/security/alerts_v2?$filter=lastUpdateDateTime%20ge%20"+since+"&$orderby=lastUpdateDateTime%20asc&$top=7")
	if pages != (230+6)/7 {
		t.Errorf("pages = %d", pages)
	}
	seen := map[string]bool{}
	var prev string
	for _, a := range alerts {
		id := a["id"].(string)
		if seen[id] {
			t.Fatalf("alert %s returned twice", id)
		}
		seen[id] = true
		ts := a["lastUpdateDateTime"].(string)
		if ts < prev {
			t.Fatalf("not ordered by lastUpdateDateTime: %s after %s", ts, prev)
		}
		prev = ts
	}
	if !reflect.DeepEqual(seen, wantAlerts) {
		t.Fatalf("paging returned %d of %d alerts", len(seen), len(wantAlerts))
	}

	// Incidents with $expand=alerts: every alert appears under exactly one incident.
	incidents, _ := collect(t, c, tok, s.URL()+"/v1.0/security/incidents?$expand=alerts&$top=5")
	if len(incidents) != 40 {
		t.Fatalf("incidents = %d", len(incidents))
	}
	inIncidents := map[string]bool{}
	biggest := 0
	redirected := 0
	for _, inc := range incidents {
		list, ok := inc["alerts"].([]any)
		if !ok {
			t.Fatalf("incident %v has no alerts array", inc["id"])
		}
		biggest = max(biggest, len(list))
		if inc["status"] == "redirected" {
			redirected++
			if inc["redirectIncidentId"] == nil || len(list) != 0 {
				t.Errorf("redirected incident %v: %v alerts, redirect %v", inc["id"], len(list), inc["redirectIncidentId"])
			}
		}
		for _, a := range list {
			am := a.(map[string]any)
			if am["incidentId"] != inc["id"] || am["@odata.type"] != "#microsoft.graph.security.alert" {
				t.Fatalf("embedded alert %v does not belong to incident %v or lacks @odata.type", am["id"], inc["id"])
			}
			if inIncidents[am["id"].(string)] {
				t.Fatalf("alert %v in two incidents", am["id"])
			}
			inIncidents[am["id"].(string)] = true
		}
	}
	if !reflect.DeepEqual(inIncidents, wantAlerts) {
		t.Fatalf("expanded incidents hold %d of %d alerts", len(inIncidents), len(wantAlerts))
	}
	if biggest < 50 || redirected == 0 {
		t.Errorf("expected one large incident and some redirected ones: biggest %d, redirected %d", biggest, redirected)
	}
}

func TestSharedTimestampAcrossPages(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 6})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	s.Reset()
	const ts = "2025-03-14T08:00:00.1234567Z"
	for i := 0; i < 2500; i++ {
		s.PutAlert(alertAt(fmt.Sprintf("shared-%04d", i), ts))
	}
	// Beyond $skip's 500 limit, nextLinks keep working (they carry a skiptoken).
	records, pages := collect(t, c, tok, s.URL()+"/v1.0/security/alerts_v2?$filter=lastUpdateDateTime%20ge%20"+ts+"&$orderby=lastUpdateDateTime%20asc&$top=1000")
	if len(records) != 2500 || pages != 3 {
		t.Fatalf("got %d records in %d pages", len(records), pages)
	}
	got := ids(records)
	if !sort.StringsAreSorted(got) {
		t.Fatal("ties are not ordered by id")
	}
}

// TestSkipTokenIsAnOffset: like Graph's may be, a $skiptoken is a position in the current
// ordering, so a record updated between two pages moves to the end and the record that was
// first on the next page is never served. Clients are tested against this hazard.
func TestSkipTokenIsAnOffset(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 6})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	s.Reset()
	for i := range 6 {
		s.PutAlert(alertAt(fmt.Sprintf("a%d", i), fmt.Sprintf("2025-03-14T08:00:0%d.0000000Z", i)))
	}
	first := graphGet(t, c, tok, s.URL()+"/v1.0/security/alerts_v2?$filter=lastUpdateDateTime%20ge%202025-03-14T00:00:00Z&$orderby=lastUpdateDateTime%20asc&$top=3")
	next, _ := first.body["@odata.nextLink"].(string)
	if got := ids(first.values(t)); !reflect.DeepEqual(got, []string{"a0", "a1", "a2"}) || !strings.Contains(next, "$skiptoken=") {
		t.Fatalf("first page %v, nextLink %q", got, next)
	}
	s.PutAlert(alertAt("a1", "2025-03-14T09:00:00.0000000Z")) // updated while the client pages
	if got := ids(graphGet(t, c, tok, next).values(t)); !reflect.DeepEqual(got, []string{"a4", "a5", "a1"}) {
		t.Fatalf("second page %v: want a3 shifted out of reach", got)
	}
}

// TestCrowdedTimestampFault: the preset adds records on one instant (more than $skip can
// reach) and strips nextLinks; its data change needs no request to happen.
func TestCrowdedTimestampFault(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 6, Alerts: 20, Incidents: 2})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	faults, err := simulator.ParseFaults("crowded")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range faults {
		s.AddFault(f)
	}
	stamp := clock.Now().Add(-time.Minute).UTC().Format("2006-01-02T15:04:05.0000000Z")
	g := graphGet(t, c, tok, s.URL()+"/v1.0/security/alerts_v2?$count=true&$top=1000&$filter=lastUpdateDateTime%20eq%20"+stamp)
	if g.status != 200 || g.body["@odata.count"] != float64(2000) || g.body["@odata.nextLink"] != nil {
		t.Fatalf("crowded instant: %d, count %v, nextLink %v", g.status, g.body["@odata.count"], g.body["@odata.nextLink"])
	}
	if n := len(s.Alerts()); n != 2020 {
		t.Fatalf("%d alerts, want the 20 generated and 2000 crowded", n)
	}
}

func TestEntitiesAndEmbeddedAlerts(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 7})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	s.Reset()
	s.PutAlert(alertAt("x1", "2025-03-14T08:00:00Z"))
	s.PutIncident(map[string]any{"id": "7", "lastUpdateDateTime": "2025-03-14T08:00:01Z", "status": "active"})
	s.PutIncident(map[string]any{"id": "8", "lastUpdateDateTime": "2025-03-14T08:00:02Z", "alerts": []any{map[string]any{"id": "embedded-1"}}})

	g := graphGet(t, c, tok, s.URL()+"/v1.0/security/alerts_v2/x1")
	if g.status != 200 || g.body["id"] != "x1" || !strings.HasSuffix(g.body["@odata.context"].(string), "/$entity") {
		t.Fatalf("alert entity: %d %s", g.status, truncate(g.raw))
	}
	g = graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents/7?$expand=alerts")
	alerts, _ := g.body["alerts"].([]any)
	if g.status != 200 || len(alerts) != 1 || alerts[0].(map[string]any)["id"] != "x1" {
		t.Fatalf("incident entity with alerts: %d %s", g.status, truncate(g.raw))
	}
	if g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents/7"); g.body["alerts"] != nil {
		t.Fatal("alerts embedded without $expand")
	}
	if g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents/404"); g.status != 404 || g.errorCode() != "NotFound" {
		t.Fatalf("missing incident: %d", g.status)
	}
	g = graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents?$expand=alerts&$orderby=lastUpdateDateTime%20desc")
	vals := g.values(t)
	if len(vals) != 2 || vals[0]["id"] != "8" || len(vals[0]["alerts"].([]any)) != 1 || vals[0]["alerts"].([]any)[0].(map[string]any)["id"] != "embedded-1" {
		t.Fatalf("incident with explicit alerts: %s", truncate(g.raw))
	}
	if !strings.Contains(g.body["@odata.context"].(string), "incidents(alerts())") {
		t.Fatalf("context of an expanded list: %v", g.body["@odata.context"])
	}
}

func TestFaults(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 8})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	alerts := s.URL() + "/v1.0/security/alerts_v2?$top=3"

	t.Run("status with Retry-After, consumed in order", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Status: 429, RetryAfter: "1", Times: 2})
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Status: 503})
		for i, want := range []int{429, 429, 503, 200} {
			g := graphGet(t, c, tok, alerts)
			if g.status != want {
				t.Fatalf("request %d: %d, want %d", i, g.status, want)
			}
			if want == 429 && (g.header.Get("Retry-After") != "1" || g.errorCode() != "TooManyRequests") {
				t.Fatalf("429 without Retry-After or Graph error: %v %s", g.header, g.raw)
			}
		}
	})
	t.Run("query and exact path matching, forever", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/incidents", ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1})
		for i := 0; i < 3; i++ {
			if g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents?%24expand=alerts&$top=2"); g.status != 500 || g.errorCode() != "InternalServerError" {
				t.Fatalf("expand listing: %d", g.status)
			}
		}
		if g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents?$top=2"); g.status != 200 {
			t.Fatalf("listing without expand: %d", g.status)
		}
		id := s.Incidents()[0]["id"].(string)
		if g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents/"+id+"?$expand=alerts"); g.status != 200 {
			t.Fatalf("per-incident expand must not match an exact-path fault: %d", g.status)
		}
		s.ClearFaults()
		if g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents?$expand=alerts&$top=2"); g.status != 200 {
			t.Fatalf("after ClearFaults: %d", g.status)
		}
	})
	t.Run("403 names the permission", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/incidents", Status: 403})
		g := graphGet(t, c, tok, s.URL()+"/v1.0/security/incidents")
		if g.status != 403 || !strings.Contains(string(g.raw), "SecurityIncident.Read.All") {
			t.Fatalf("403: %d %s", g.status, g.raw)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Kind: simulator.FaultMalformedJSON})
		g := graphGet(t, c, tok, alerts)
		var v any
		if g.status != 200 || json.Unmarshal(g.raw, &v) == nil {
			t.Fatalf("want 200 with broken JSON, got %d %s", g.status, truncate(g.raw))
		}
	})
	t.Run("foreign nextLink", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Kind: simulator.FaultForeignNextLink})
		g := graphGet(t, c, tok, alerts)
		link, _ := g.body["@odata.nextLink"].(string)
		if g.status != 200 || len(g.values(t)) != 3 || !strings.HasPrefix(link, "https://evil.example.test/") {
			t.Fatalf("foreign link page: %d %q", g.status, link)
		}
	})
	t.Run("no nextLink", func(t *testing.T) {
		if g := graphGet(t, c, tok, alerts); g.body["@odata.nextLink"] == nil {
			t.Fatalf("the unspoiled page has no nextLink to remove: %s", truncate(g.raw))
		}
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Kind: simulator.FaultNoNextLink})
		g := graphGet(t, c, tok, alerts)
		if _, has := g.body["@odata.nextLink"]; g.status != 200 || has || len(g.values(t)) != 3 {
			t.Fatalf("page without nextLink: %d %s", g.status, truncate(g.raw))
		}
	})
	t.Run("huge body", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Kind: simulator.FaultHugeBody, HugeBytes: 3 << 20})
		g := graphGet(t, c, tok, alerts)
		if g.status != 200 || len(g.raw) != 3<<20 || !json.Valid(g.raw) {
			t.Fatalf("huge body: %d, %d bytes, valid %v", g.status, len(g.raw), json.Valid(g.raw))
		}
	})
	t.Run("partial content", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/", Kind: simulator.FaultPartial})
		g := graphGet(t, c, tok, alerts)
		if g.status != 206 || g.header.Get("Warning") != "Microsoft/DefenderATP/500/1234" || len(g.values(t)) != 3 {
			t.Fatalf("partial: %d %q", g.status, g.header.Get("Warning"))
		}
	})
	t.Run("dropped connection", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Kind: simulator.FaultDropConnection})
		req, _ := http.NewRequest(http.MethodGet, alerts, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		// A fresh connection: Go's transport silently retries idempotent
		// requests that fail on a reused one.
		resp, err := httpClient(t, s).Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("request on a dropped connection succeeded: %d", resp.StatusCode)
		}
		if g := graphGet(t, c, tok, alerts); g.status != 200 {
			t.Fatalf("after the drop: %d", g.status)
		}
	})
	t.Run("page cut halfway", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Kind: simulator.FaultCutPage})
		req, _ := http.NewRequest(http.MethodGet, s.URL()+"/v1.0/security/alerts_v2?$top=10", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil {
			t.Fatalf("cut page: HTTP %d, read error %v, %d bytes", resp.StatusCode, err, len(body))
		}
		// The first half of the records arrived whole before the cut.
		if n := strings.Count(string(body), `"lastUpdateDateTime"`); n != 5 {
			t.Fatalf("%d records before the cut, want 5: %s", n, truncate(body))
		}
		if g := graphGet(t, c, tok, alerts); g.status != 200 {
			t.Fatalf("after the cut: %d", g.status)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Kind: simulator.FaultSlowBody, Trickle: 600 * time.Millisecond})
		req, _ := http.NewRequest(http.MethodGet, alerts, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body []byte
		var pieces int
		var longestGap time.Duration
		last := time.Now()
		buf := make([]byte, 64<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				pieces++
				longestGap = max(longestGap, time.Since(last))
				last = time.Now()
				body = append(body, buf[:n]...)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		var page struct{ Value []any }
		if resp.StatusCode != 200 || json.Unmarshal(body, &page) != nil || len(page.Value) != 3 {
			t.Fatalf("slow page: %d %s", resp.StatusCode, truncate(body))
		}
		if took := time.Since(start); took < 500*time.Millisecond || pieces < 5 {
			t.Fatalf("the body came in %d pieces over %v; want it spread over 600ms", pieces, took)
		}
		if longestGap >= 600*time.Millisecond {
			t.Fatalf("the body stalled for %v: a trickle must never look idle", longestGap)
		}
		if g := graphGet(t, c, tok, alerts); g.status != 200 || len(g.values(t)) != 3 {
			t.Fatalf("after the slow page: %d", g.status)
		}
	})
	t.Run("token endpoint with tenant placeholder", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/{tenant}/oauth2/v2.0/token", Status: 500})
		status, body := tokenRequest(t, c, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()}, "scope": {s.GraphScope()},
		})
		if status != 500 || body["error"] != "temporarily_unavailable" {
			t.Fatalf("token fault: %d %v", status, body)
		}
		getToken(t, s, c)
	})
}

func TestParseFaults(t *testing.T) {
	faults, err := simulator.ParseFaults(" 429, 500 ,expand500,malformed,partial,401,drop,huge,foreignlink,token500")
	if err != nil {
		t.Fatal(err)
	}
	if len(faults) != 10 {
		t.Fatalf("got %d faults", len(faults))
	}
	if f := faults[0]; f.Status != 429 || f.RetryAfter == "" || f.Times != 2 {
		t.Errorf("429 preset: %+v", f)
	}
	if f := faults[2]; f.Times != -1 || f.Query != "$expand=alerts" || !f.ExactPath {
		t.Errorf("expand500 preset: %+v", f)
	}
	if f, _ := simulator.ParseFaults(""); len(f) != 0 {
		t.Error("empty spec must give no faults")
	}
	_, err = simulator.ParseFaults("429,teapot")
	if err == nil || !strings.Contains(err.Error(), "teapot") || !strings.Contains(err.Error(), "expand500") {
		t.Fatalf("unknown name must be reported with the valid names: %v", err)
	}
	for name := range simulator.FaultNames() {
		if _, err := simulator.ParseFaults(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestExpireTokens(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 9})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	alerts := s.URL() + "/v1.0/security/alerts_v2?$top=1"
	if g := graphGet(t, c, tok, alerts); g.status != 200 {
		t.Fatal(g.status)
	}
	s.ExpireTokens()
	if g := graphGet(t, c, tok, alerts); g.status != 401 || !strings.Contains(string(g.raw), "Access token has expired") {
		t.Fatalf("revoked token: %d %s", g.status, g.raw)
	}
	fresh := getToken(t, s, c)
	if g := graphGet(t, c, fresh, alerts); g.status != 200 {
		t.Fatalf("fresh token: %d", g.status)
	}
	clock.Advance(3600 * time.Second)
	if g := graphGet(t, c, fresh, alerts); g.status != 401 {
		t.Fatalf("token past its lifetime: %d", g.status)
	}
	if s.TokensIssued() != 2 {
		t.Fatalf("TokensIssued = %d", s.TokensIssued())
	}
}

func TestTickUpdatesRecordsSeenByGeFilter(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 10})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	before := len(s.Alerts())
	cursor := clock.Now().Format("2006-01-02T15:04:05.0000000Z")
	query := func(collection string) []map[string]any {
		records, _ := collect(t, c, tok, s.URL()+"/v1.0/security/"+collection+"?$filter=lastUpdateDateTime%20ge%20"+cursor+"&$orderby=lastUpdateDateTime%20asc")
		return records
	}
	if n := len(query("alerts_v2")); n != 0 {
		t.Fatalf("%d alerts newer than the start", n)
	}
	clock.Advance(90 * time.Second)
	s.Tick()
	stamp := clock.Now().UTC().Format("2006-01-02T15:04:05.0000000Z")
	changed := query("alerts_v2")
	if len(changed) < 2 {
		t.Fatalf("Tick changed %d alerts", len(changed))
	}
	for _, a := range changed {
		if a["lastUpdateDateTime"] != stamp {
			t.Fatalf("changed alert has lastUpdateDateTime %v, want %s", a["lastUpdateDateTime"], stamp)
		}
	}
	if after := len(s.Alerts()); after <= before {
		t.Fatalf("no new alerts: %d -> %d", before, after)
	}
	incidents := query("incidents")
	if len(incidents) == 0 {
		t.Fatal("no incident updated by Tick")
	}
	for _, inc := range incidents {
		for _, key := range []string{"displayName", "status", "severity", "createdDateTime"} {
			if inc[key] == nil {
				t.Fatalf("updated incident %v lacks %s", inc["id"], key)
			}
		}
	}
}

func TestChangeEveryKeepsDataComing(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 11, ChangeEvery: 20 * time.Millisecond, Now: time.Now})
	before := len(s.Alerts())
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Alerts()) == before {
		if time.Now().After(deadline) {
			t.Fatal("ChangeEvery produced no new alerts")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeterministicForSeed(t *testing.T) {
	a, _ := start(t, simulator.Config{Seed: 42})
	b, _ := start(t, simulator.Config{Seed: 42})
	other, _ := start(t, simulator.Config{Seed: 43})
	if a.TenantID() != b.TenantID() || a.ClientID() != b.ClientID() || a.ClientSecret() != b.ClientSecret() {
		t.Fatal("credentials differ for one seed")
	}
	if a.TenantID() == other.TenantID() || a.ClientSecret() == other.ClientSecret() {
		t.Fatal("credentials equal for different seeds")
	}
	if !reflect.DeepEqual(a.Alerts(), b.Alerts()) || !reflect.DeepEqual(a.Incidents(), b.Incidents()) {
		t.Fatal("data differs for one seed")
	}
	if reflect.DeepEqual(a.Alerts(), other.Alerts()) {
		t.Fatal("data equal for different seeds")
	}
	a.Tick()
	b.Tick()
	if !reflect.DeepEqual(a.Alerts(), b.Alerts()) || !reflect.DeepEqual(a.Incidents(), b.Incidents()) {
		t.Fatal("ticks differ for one seed")
	}
	if s, _ := start(t, simulator.Config{TenantID: "t", ClientID: "c", ClientSecret: "s"}); s.TenantID() != "t" || s.ClientID() != "c" || s.ClientSecret() != "s" {
		t.Fatal("explicit credentials ignored")
	}
}

func TestGeneratedDataIsVaried(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 12, Alerts: 400, Incidents: 60})
	sources, severities, statuses, evidence := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	timestamps := map[string]int{}
	window := baseTime.Add(-48 * time.Hour)
	for _, a := range s.Alerts() {
		sources[a["serviceSource"].(string)] = true
		severities[a["severity"].(string)] = true
		statuses[a["status"].(string)] = true
		ts := a["lastUpdateDateTime"].(string)
		timestamps[ts]++
		parsed, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || len(ts) != len("2025-03-14T09:26:53.5897932Z") || parsed.Before(window) || parsed.After(baseTime) {
			t.Fatalf("lastUpdateDateTime %q not a 7-digit time in the last 48h", ts)
		}
		for _, e := range a["evidence"].([]any) {
			evidence[e.(map[string]any)["@odata.type"].(string)] = true
		}
	}
	for _, want := range []string{"microsoftDefenderForEndpoint", "microsoftDefenderForOffice365", "microsoftDefenderForIdentity", "microsoftDefenderForCloudApps", "microsoftDefenderForCloud", "microsoftSentinel"} {
		if !sources[want] {
			t.Errorf("no alert from %s", want)
		}
	}
	for _, want := range []string{"informational", "low", "medium", "high", "unknownFutureValue"} {
		if !severities[want] {
			t.Errorf("no alert with severity %s", want)
		}
	}
	for _, want := range []string{"new", "inProgress", "resolved"} {
		if !statuses[want] {
			t.Errorf("no alert with status %s", want)
		}
	}
	for _, kind := range []string{"deviceEvidence", "fileEvidence", "processEvidence", "userEvidence", "ipEvidence", "urlEvidence", "mailboxEvidence", "analyzedMessageEvidence", "cloudApplicationEvidence", "registryKeyEvidence", "registryValueEvidence", "mailClusterEvidence", "oauthApplicationEvidence", "azureResourceEvidence", "securityGroupEvidence"} {
		if !evidence["#microsoft.graph.security."+kind] {
			t.Errorf("no %s", kind)
		}
	}
	shared := 0
	for _, n := range timestamps {
		if n > 1 {
			shared++
		}
	}
	if shared == 0 {
		t.Error("no alerts share a lastUpdateDateTime")
	}
}

func TestUnknownEnumMembersNeedPreferHeader(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 13})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	s.Reset()
	rec := alertAt("s1", "2025-03-14T08:00:00Z")
	rec["serviceSource"] = "microsoftSentinel"
	s.PutAlert(rec)
	url := s.URL() + "/v1.0/security/alerts_v2/s1"
	if g := graphGet(t, c, tok, url); g.body["serviceSource"] != "unknownFutureValue" {
		t.Fatalf("without Prefer: %v", g.body["serviceSource"])
	}
	if g := graphGet(t, c, tok, url, "Prefer", "include-unknown-enum-members"); g.body["serviceSource"] != "microsoftSentinel" {
		t.Fatalf("with Prefer: %v", g.body["serviceSource"])
	}
}

func TestRequestLogRedactsCredentials(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 14})
	c := httpClient(t, s)
	tok := getToken(t, s, c)
	graphGet(t, c, tok, s.URL()+"/v1.0/security/alerts_v2?$top=1000")
	reqs := s.Requests()
	last := reqs[len(reqs)-1]
	if last.RawQuery != "$top=1000" || last.Status != 200 || last.Path != "/v1.0/security/alerts_v2" {
		t.Fatalf("last request %+v", last)
	}
	if got := last.Header["Authorization"]; len(got) != 1 || got[0] != "Bearer <present>" {
		t.Fatalf("Authorization recorded as %v", got)
	}
	for _, r := range reqs {
		for _, v := range r.Header {
			for _, x := range v {
				if strings.Contains(x, tok) || strings.Contains(x, s.ClientSecret()) {
					t.Fatal("a credential reached the request log")
				}
			}
		}
	}
}

func TestServerLifecycle(t *testing.T) {
	s, err := simulator.Start(simulator.Config{Seed: 15})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.URL())
	if u.Scheme != "https" || u.Hostname() != "127.0.0.1" {
		t.Fatalf("URL %s", s.URL())
	}
	// The certificate must also be valid for localhost.
	c := httpClient(t, s)
	if resp, err := c.Get("https://localhost:" + u.Port() + "/" + s.TenantID() + "/v2.0/.well-known/openid-configuration"); err != nil {
		t.Fatalf("localhost: %v", err)
	} else {
		var cfg map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&cfg)
		resp.Body.Close()
		if !strings.HasPrefix(cfg["token_endpoint"].(string), "https://localhost:"+u.Port()+"/") {
			t.Fatalf("openid configuration must name the host the client used: %v", cfg["token_endpoint"])
		}
	}
	caFile := s.CAFile()
	if pem, err := os.ReadFile(caFile); err != nil || !bytes.Equal(pem, s.CAPEM()) {
		t.Fatalf("CA file does not hold CAPEM: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(s.URL() + "/"); err == nil {
		t.Fatal("server still answers after Close")
	}
	if _, err := os.Stat(caFile); !os.IsNotExist(err) {
		t.Fatalf("CA file left behind: %v", err)
	}
}

// TestMoreIncidentsThanAlerts: every incident groups at least one alert (its times come from
// them), so asking for more incidents than alerts gives as many incidents as alerts.
func TestMoreIncidentsThanAlerts(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 3, Alerts: 10, Incidents: 50})
	incidents := s.Incidents()
	if len(incidents) == 0 || len(incidents) > 10 {
		t.Fatalf("%d incidents for 10 alerts, want 1 to 10", len(incidents))
	}
	for _, inc := range incidents {
		if ts, _ := inc["lastUpdateDateTime"].(string); ts == "" {
			t.Errorf("incident %v has no lastUpdateDateTime", inc["id"])
		}
	}
}

// jwtClaims decodes the claims of a JWT-shaped token, failing the test unless it has three
// base64url parts with a JSON header and claims.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] == "" {
		t.Fatalf("token %q is not header.claims.signature", truncate([]byte(tok)))
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(raw, dst) != nil {
			t.Fatalf("token part %d is not base64url JSON: %v", i, err)
		}
	}
	if header["typ"] != "JWT" || header["alg"] == nil {
		t.Fatalf("token header %v", header)
	}
	return claims
}

// TestAccessTokensAreJWTs: tokens carry Entra ID's claims (what Azure Storage, and Azurite in
// its OAuth mode, read from them): the requested resource as aud, the tenant's v1 issuer, and
// a lifetime equal to expires_in; the storage scope is granted, and a storage token opens
// neither Graph nor Defender for Endpoint.
func TestAccessTokensAreJWTs(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 9})
	c := httpClient(t, s)
	seen := map[string]bool{}
	for scope, aud := range map[string]string{
		"https://storage.azure.com/.default":                                "https://storage.azure.com",
		"https://devstoreaccount1.blob.core.windows.net/.default":           "https://devstoreaccount1.blob.core.windows.net",
		"https://contoso.blob.core.usgovcloudapi.net/.default":              "https://contoso.blob.core.usgovcloudapi.net",
		"https://graph.microsoft.com/.default":                              "https://graph.microsoft.com",
		"https://securitycenter.onmicrosoft.com/windowsatpservice/.default": "https://securitycenter.onmicrosoft.com/windowsatpservice",
	} {
		status, body := tokenRequest(t, c, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
			"scope": {scope + " openid offline_access profile"},
		})
		if status != 200 {
			t.Fatalf("%s: %d %v", scope, status, body)
		}
		tok := body["access_token"].(string)
		if seen[tok] {
			t.Fatal("the same token issued twice")
		}
		seen[tok] = true
		claims := jwtClaims(t, tok)
		if claims["aud"] != aud || claims["iss"] != "https://sts.windows.net/"+s.TenantID()+"/" || claims["tid"] != s.TenantID() || claims["appid"] != s.ClientID() {
			t.Errorf("%s: claims %v", scope, claims)
		}
		iat, nbf, exp := claims["iat"].(float64), claims["nbf"].(float64), claims["exp"].(float64)
		if iat != float64(baseTime.Unix()) || nbf != iat || exp-iat != body["expires_in"].(float64) {
			t.Errorf("%s: iat %v nbf %v exp %v, issued at %d for %v s", scope, iat, nbf, exp, baseTime.Unix(), body["expires_in"])
		}
	}

	storage := mdeToken(t, s, c, "https://storage.azure.com/.default")
	if g := graphGet(t, c, storage, s.URL()+"/v1.0/security/alerts_v2"); g.status != 401 || !strings.Contains(string(g.raw), "Invalid audience") {
		t.Errorf("Graph took a storage token: %d %s", g.status, truncate(g.raw))
	}
	if g := graphGet(t, c, storage, s.URL()+"/api/machines/SoftwareVulnerabilitiesExport"); g.status != 401 || g.errorCode() != "Unauthorized" {
		t.Errorf("Defender for Endpoint took a storage token: %d %s", g.status, truncate(g.raw))
	}
	// A token is known by the whole string: the same claims under another signature are refused.
	graph := mdeToken(t, s, c, "https://graph.microsoft.com/.default")
	forgedGraph := graph[:strings.LastIndex(graph, ".")+1] + "AAAA"
	if g := graphGet(t, c, forgedGraph, s.URL()+"/v1.0/security/alerts_v2"); g.status != 401 {
		t.Errorf("a re-signed Graph token opened Graph: %d", g.status)
	}
	if g := graphGet(t, c, graph, s.URL()+"/v1.0/security/alerts_v2"); g.status != 200 {
		t.Errorf("the Graph token itself: %d %s", g.status, truncate(g.raw))
	}
}
