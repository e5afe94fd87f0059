package simulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Entra ID's answer shapes for the client-credentials flow, enough for
// azidentity/MSAL: tenant discovery (openid-configuration), instance discovery
// and the v2.0 token endpoint.

const (
	tokenLifetime      = 3599 * time.Second
	simulatedTenantOrg = "Contoso (simulated)"
	jwtBearerAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

type tokenInfo struct {
	audience string
	expires  time.Time
	revoked  bool
}

type tokenStore struct {
	tenant, clientID string // what the tokens' tid and appid claims name

	mu     sync.Mutex
	tokens map[string]*tokenInfo
	issued int
}

func newTokenStore(tenant, clientID string) *tokenStore {
	return &tokenStore{tenant: tenant, clientID: clientID, tokens: map[string]*tokenInfo{}}
}

// issue mints an access token shaped as Entra ID's (a JWT: header, claims, signature) for an
// app of the simulated tenant. Resources that read the claims without checking the signature,
// as Azurite does with --oauth basic, accept it; the simulator itself knows its tokens by the
// whole string, so the signature part is random and nothing is signed.
func (ts *tokenStore) issue(audience string, now time.Time) string {
	issued := now.Unix()
	claims, _ := json.Marshal(map[string]any{
		"aud":   audience,
		"iss":   "https://sts.windows.net/" + ts.tenant + "/",
		"iat":   issued,
		"nbf":   issued,
		"exp":   issued + int64(tokenLifetime/time.Second),
		"tid":   ts.tenant,
		"appid": ts.clientID,
		"idtyp": "app",
		"ver":   "1.0",
	})
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"RS256"}`))
	sig := make([]byte, 64)
	_, _ = rand.Read(sig)
	tok := header + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + base64.RawURLEncoding.EncodeToString(sig)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	// Forget long-expired tokens so a simulator running for days stays small.
	for k, v := range ts.tokens {
		if now.Sub(v.expires) > 24*time.Hour {
			delete(ts.tokens, k)
		}
	}
	ts.tokens[tok] = &tokenInfo{audience: audience, expires: now.Add(tokenLifetime)}
	ts.issued++
	return tok
}

func (ts *tokenStore) lookup(tok string) (tokenInfo, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	info, ok := ts.tokens[tok]
	if !ok {
		return tokenInfo{}, false
	}
	return *info, true
}

func (ts *tokenStore) issuedCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.issued
}

func (ts *tokenStore) expireAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, info := range ts.tokens {
		info.revoked = true
	}
}

// tenantFromPath returns the first path segment ("/{tenant}/...").
func tenantFromPath(p string) string {
	seg, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return seg
}

func (s *Server) knownTenant(tenant string) bool { return strings.EqualFold(tenant, s.tenantID) }

func (s *Server) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	tenant := tenantFromPath(r.URL.Path)
	if !s.knownTenant(tenant) {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_tenant", 90002, tenantNotFound(tenant))
		return
	}
	base := baseURL(r) + "/" + s.tenantID
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     baseURL(r) + "/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"},
		"kerberos_endpoint":                     base + "/kerberos",
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   r.Host,
		"cloud_graph_host_name":                 r.Host,
		"msgraph_host":                          r.Host,
		"rbac_url":                              baseURL(r),
	})
}

// serveInstanceDiscovery answers MSAL's authority validation for clients that
// do not set DisableInstanceDiscovery.
func (s *Server) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	authz := r.URL.Query().Get("authorization_endpoint")
	u, err := url.Parse(authz)
	if authz == "" || err != nil || tenantFromPath(u.Path) == "" {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_instance", 50049, "AADSTS50049: Unknown or invalid instance.")
		return
	}
	tenant := tenantFromPath(u.Path)
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": baseURL(r) + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": r.Host,
			"preferred_cache":   r.Host,
			"aliases":           []string{r.Host},
		}},
	})
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	tenant := tenantFromPath(r.URL.Path)
	if r.Method != http.MethodPost {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 900561, "AADSTS900561: The endpoint only accepts POST requests. Received a "+r.Method+" request.")
		return
	}
	if !s.knownTenant(tenant) {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 90002, tenantNotFound(tenant))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	form := r.PostForm
	grant := form.Get("grant_type")
	if grant == "" {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	if grant != "client_credentials" {
		s.writeEntraError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "AADSTS70003: The app requested an unsupported grant type '"+grant+"'.")
		return
	}
	if form.Get("resource") != "" {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 901002, "AADSTS901002: The 'resource' request parameter is not supported.")
		return
	}

	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok {
		clientID, secret = firstNonEmpty(clientID, user), firstNonEmpty(secret, pass)
	}
	if clientID == "" {
		s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'client_id'.")
		return
	}
	if !strings.EqualFold(clientID, s.clientID) {
		s.writeEntraError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"AADSTS700016: Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clientID, simulatedTenantOrg))
		return
	}

	audience, status, errCode, code, msg := parseClientCredentialsScope(form.Get("scope"))
	if status != 0 {
		s.writeEntraError(w, status, errCode, code, msg)
		return
	}

	assertion := form.Get("client_assertion")
	switch {
	case assertion != "":
		if t := form.Get("client_assertion_type"); t != jwtBearerAssertion {
			s.writeEntraError(w, http.StatusBadRequest, "invalid_request", 50027, "AADSTS50027: JWT token is invalid or malformed: client_assertion_type must be '"+jwtBearerAssertion+"'.")
			return
		}
		if msg := checkAssertion(assertion, s.cfg.Now()); msg != "" {
			code := 50027
			if strings.HasPrefix(msg, "AADSTS700024") {
				code = 700024
			}
			s.writeEntraError(w, http.StatusUnauthorized, "invalid_client", code, msg)
			return
		}
	case secret == "":
		s.writeEntraError(w, http.StatusUnauthorized, "invalid_client", 7000218, "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	case secret != s.secret:
		s.writeEntraError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.clientID))
		return
	}

	tok := s.tokens.issue(audience, s.cfg.Now())
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(tokenLifetime / time.Second),
		"ext_expires_in": int(tokenLifetime / time.Second),
		"access_token":   tok,
	})
}

// parseClientCredentialsScope checks a client-credentials scope list: exactly
// one resource with "/.default" besides the OIDC scopes MSAL always adds.
func parseClientCredentialsScope(scope string) (audience string, status int, errCode string, code int, msg string) {
	if strings.TrimSpace(scope) == "" {
		return "", http.StatusBadRequest, "invalid_request", 900144, "AADSTS900144: The request body must contain the following parameter: 'scope'."
	}
	var resources []string
	for _, sc := range strings.Fields(scope) {
		switch strings.ToLower(sc) {
		case "openid", "profile", "offline_access", "email":
			continue
		}
		resources = append(resources, sc)
	}
	if len(resources) > 1 {
		return "", http.StatusBadRequest, "invalid_scope", 28000, "AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one resource. Scope " + scope + " is not valid."
	}
	if len(resources) == 0 || !strings.HasSuffix(resources[0], "/.default") {
		return "", http.StatusBadRequest, "invalid_scope", 1002012, "AADSTS1002012: The provided value for scope " + scope + " is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
	}
	return normalizeAudience(strings.TrimSuffix(resources[0], "/.default")), 0, "", 0, ""
}

func normalizeAudience(a string) string { return strings.ToLower(strings.TrimRight(a, "/")) }

// checkAssertion accepts any well-formed, unexpired JWT: the simulator has no
// registered certificate to verify signatures against, and workload identity
// assertions come from a foreign issuer anyway.
func checkAssertion(assertion string, now time.Time) string {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "AADSTS50027: JWT token is invalid or malformed."
	}
	var header, claims map[string]any
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[i], "="))
		if err != nil || json.Unmarshal(raw, dst) != nil {
			return "AADSTS50027: JWT token is invalid or malformed."
		}
	}
	if exp, ok := claims["exp"].(float64); ok && now.After(time.Unix(int64(exp), 0).Add(5*time.Minute)) {
		return "AADSTS700024: Client assertion is not within its valid time range."
	}
	return ""
}

func tenantNotFound(tenant string) string {
	return fmt.Sprintf("AADSTS90002: Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant)
}

func (s *Server) writeEntraError(w http.ResponseWriter, status int, errCode string, code int, description string) {
	now := s.cfg.Now().UTC()
	trace, corr := newRandomGUID(), newRandomGUID()
	writeJSON(w, status, map[string]any{
		"error":             errCode,
		"error_description": fmt.Sprintf("%s Trace ID: %s Correlation ID: %s Timestamp: %s", description, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{code},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", code),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newRandomGUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return formatGUID(b)
}

func formatGUID(b []byte) string {
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
