// Package msapi is the Microsoft API client shared by the Graph (alert, incident) and Defender
// for Endpoint (vulnerability) inputs: credentials, national clouds, the HTTP pipeline with
// retries and throttling, paging with host pinning, size caps and per-input metrics.
package msapi

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/transport/httpcommon"
	"github.com/elastic/elastic-agent-libs/transport/tlscommon"
	"software.sslmate.com/src/go-pkcs12"
)

// API selects the per-cloud default request_url and token scope.
type API int

const (
	Graph API = iota
	DefenderForEndpoint
)

func (a API) String() string {
	switch a {
	case Graph:
		return "Microsoft Graph"
	case DefenderForEndpoint:
		return "Microsoft Defender for Endpoint"
	}
	return fmt.Sprintf("API(%d)", int(a))
}

// Auth types.
const (
	AuthClientSecret     = "client_secret"
	AuthCertificate      = "certificate"
	AuthManagedIdentity  = "managed_identity"
	AuthWorkloadIdentity = "workload_identity"
)

var authTypes = []string{AuthClientSecret, AuthCertificate, AuthManagedIdentity, AuthWorkloadIdentity}

// Clouds.
const (
	CloudGlobal  = "global"
	CloudGCC     = "gcc"
	CloudGCCHigh = "gcc-high"
	CloudDoD     = "dod"
)

var cloudNames = []string{CloudGlobal, CloudGCC, CloudGCCHigh, CloudDoD}

type cloudEndpoints struct {
	login    string
	graph    string
	mde      string
	mdeScope string
	// Blob storage hosts the export files' SAS URLs may point at ("*." matches any account).
	storage []string
}

// Sources: Graph national-cloud deployments and the Defender for Endpoint US Government pages
// (Microsoft documents these per cloud in its national-cloud deployment pages). GCC keeps the worldwide login and Graph hosts.
var clouds = map[string]cloudEndpoints{
	CloudGlobal: {
		login:    "https://login.microsoftonline.com",
		graph:    "https://graph.microsoft.com",
		mde:      "https://api.security.microsoft.com",
		mdeScope: "https://securitycenter.onmicrosoft.com/windowsatpservice/.default",
		storage:  []string{commercialBlobHosts},
	},
	CloudGCC: {
		login:    "https://login.microsoftonline.com",
		graph:    "https://graph.microsoft.com",
		mde:      "https://api-gcc.securitycenter.microsoft.us",
		mdeScope: "https://api-gcc.securitycenter.microsoft.us/.default",
		// GCC's Defender for Endpoint API is a US Government host while GCC tenants otherwise
		// live in the commercial cloud: Microsoft does not say which storage serves its exports.
		storage: []string{commercialBlobHosts, governmentBlobHosts},
	},
	CloudGCCHigh: {
		login:    "https://login.microsoftonline.us",
		graph:    "https://graph.microsoft.us",
		mde:      "https://api-gov.securitycenter.microsoft.us",
		mdeScope: "https://api-gov.securitycenter.microsoft.us/.default",
		storage:  []string{governmentBlobHosts},
	},
	CloudDoD: {
		login:    "https://login.microsoftonline.us",
		graph:    "https://dod-graph.microsoft.us",
		mde:      "https://api-gov.securitycenter.microsoft.us",
		mdeScope: "https://api-gov.securitycenter.microsoft.us/.default",
		storage:  []string{governmentBlobHosts},
	},
}

const (
	commercialBlobHosts = "*.blob.core.windows.net"
	governmentBlobHosts = "*.blob.core.usgovcloudapi.net"
)

// Microsoft's own authority hosts know their instance metadata; anything else (a simulator, a
// private proxy) would make MSAL ask login.microsoftonline.com about it and fail.
var microsoftLoginHosts = []string{
	"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
	"login.partner.microsoftonline.cn", "login.microsoft.com", "login.windows.net", "login.usgovcloudapi.net",
}

const (
	DefaultTokenEndpoint     = "oauth2/v2.0/token"
	DefaultHTTPClientTimeout = 30 * time.Second
	DefaultMaxRetries        = 5
	DefaultMaxResponseBytes  = 64 << 20
	defaultRetryDelay        = time.Second
	// Retry-After beyond this is not waited for inside one call: the call fails as throttled
	// and the input's loop waits what the API asked, up to its own cap.
	defaultMaxRetryDelay = 2 * time.Minute
)

// Options configure one client. They are unpacked from an input's configuration and must be
// passed through Resolve before NewClient.
type Options struct {
	AuthType                string `config:"auth_type"`
	TenantID                string `config:"tenant_id"`
	AzureTenantID           string `config:"azure_tenant_id"`
	ClientID                string `config:"client_id"`
	ClientSecret            string `config:"client_secret"`
	Certificate             string `config:"certificate"`
	CertificatePassword     string `config:"certificate_password"`
	ManagedIdentityClientID string `config:"managed_identity_client_id"`
	FederatedTokenFile      string `config:"federated_token_file"`

	Cloud               string              `config:"cloud"`
	LoginURL            string              `config:"login_url"`
	TokenURL            string              `config:"token_url"`
	TokenEndpoint       string              `config:"token_endpoint"`
	OAuthEndpointParams map[string][]string `config:"oauth_endpoint_params"`
	RequestURL          string              `config:"request_url"`
	URL                 string              `config:"url"`
	TokenScopes         []string            `config:"token_scopes"`

	HTTPClientTimeout   time.Duration     `config:"http_client_timeout"`
	ProxyURL            string            `config:"proxy_url"`
	SSL                 *tlscommon.Config `config:"ssl"`
	EnableRequestTracer bool              `config:"enable_request_tracer"`
	MaxRetries          int               `config:"max_retries"`
	MaxResponseBytes    int64             `config:"max_response_bytes"`
	// DownloadHosts are the hosts export files may be downloaded from: names, or "*.suffix" for
	// any name below suffix. Empty: the configured cloud's blob storage hosts.
	DownloadHosts []string `config:"download_hosts"`

	// Backoff base and ceiling; not user options, tests shrink them.
	retryDelay    time.Duration
	maxRetryDelay time.Duration
}

// DefaultOptions returns the defaults to unpack a configuration into.
func DefaultOptions() Options {
	return Options{
		AuthType:          AuthClientSecret,
		Cloud:             CloudGlobal,
		TokenEndpoint:     DefaultTokenEndpoint,
		HTTPClientTimeout: DefaultHTTPClientTimeout,
		MaxRetries:        DefaultMaxRetries,
		MaxResponseBytes:  DefaultMaxResponseBytes,
		retryDelay:        defaultRetryDelay,
		maxRetryDelay:     defaultMaxRetryDelay,
	}
}

// SetRetryBackoff sets the first backoff step (doubling, with jitter, when an answer carries no
// Retry-After) and the longest wait accepted inside one call; a longer Retry-After ends the call
// as throttled. For tests and the simulator; users get 1s and 2m.
func (o *Options) SetRetryBackoff(base, max time.Duration) {
	o.retryDelay, o.maxRetryDelay = base, max
}

// Token form fields azidentity owns; letting oauth_endpoint_params override them would either
// break the flow or leak the secret into a second field.
var reservedTokenParams = []string{"client_id", "client_secret", "client_assertion", "client_assertion_type", "scope"}

var tenantIDPattern = regexp.MustCompile(`^[0-9A-Za-z.-]+$`)

// Resolve applies aliases and per-cloud defaults and validates every option. It returns all
// problems at once, each naming the option and what is allowed.
func (o *Options) Resolve(api API) []error {
	var errs []error
	fail := func(option, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", option, fmt.Sprintf(format, args...)))
	}

	endpoints := o.resolveIdentity(fail)
	o.RequestURL = mergeAlias(o.RequestURL, o.URL, "request_url", "url", fail)
	o.URL = ""
	o.resolveRequestURL(api, endpoints, fail)

	if o.HTTPClientTimeout <= 0 {
		fail("http_client_timeout", "must be a positive duration such as 30s, got %v", o.HTTPClientTimeout)
	}
	if o.MaxRetries < 0 {
		fail("max_retries", "must be 0 or more, got %d", o.MaxRetries)
	}
	if o.MaxResponseBytes <= 0 {
		fail("max_response_bytes", "must be a positive number of bytes, got %d", o.MaxResponseBytes)
	}
	o.resolveDownloadHosts(endpoints, fail)
	if o.ProxyURL != "" {
		if _, err := httpcommon.NewProxyURIFromString(o.ProxyURL); err != nil {
			fail("proxy_url", "must be an http, https or socks5 URL: %v", redactErr(err, o.ProxyURL))
		} else if u, _ := url.Parse(o.ProxyURL); u == nil || u.Host == "" || !slices.Contains([]string{"http", "https", "socks5"}, u.Scheme) {
			fail("proxy_url", "must be an http, https or socks5 URL with a host")
		}
	}
	if o.SSL != nil {
		if err := o.SSL.Validate(); err != nil {
			fail("ssl", "%v", err)
		} else if _, err := tlscommon.LoadTLSConfig(o.SSL, logp.NewNopLogger()); err != nil {
			fail("ssl", "%v", err)
		}
	}
	if o.retryDelay == 0 {
		o.retryDelay = defaultRetryDelay
	}
	if o.maxRetryDelay == 0 {
		o.maxRetryDelay = defaultMaxRetryDelay
	}
	return errs
}

// ResolveCredential validates and completes only what NewTokenCredential needs (auth type,
// cloud, the credential options and the login host), for inputs whose Azure SDK clients
// authenticate themselves. Problems are returned as Resolve returns them.
func (o *Options) ResolveCredential() []error {
	var errs []error
	fail := func(option, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", option, fmt.Sprintf(format, args...)))
	}
	o.resolveIdentity(fail)
	o.setDefaults()
	return errs
}

// resolveIdentity resolves who authenticates where: auth type, cloud, credentials and login.
func (o *Options) resolveIdentity(fail func(string, string, ...any)) cloudEndpoints {
	if o.AuthType == "" {
		o.AuthType = AuthClientSecret
	}
	if !slices.Contains(authTypes, o.AuthType) {
		fail("auth_type", "%q is not one of %s", o.AuthType, strings.Join(authTypes, ", "))
	}
	if o.Cloud == "" {
		o.Cloud = CloudGlobal
	}
	endpoints, knownCloud := clouds[o.Cloud]
	if !knownCloud {
		fail("cloud", "%q is not one of %s", o.Cloud, strings.Join(cloudNames, ", "))
		endpoints = clouds[CloudGlobal]
	}

	o.TenantID = mergeAlias(o.TenantID, o.AzureTenantID, "tenant_id", "azure_tenant_id", fail)
	o.AzureTenantID = ""
	o.LoginURL = mergeAlias(o.LoginURL, o.TokenURL, "login_url", "token_url", fail)
	o.TokenURL = ""

	o.resolveCredentials(fail)
	o.resolveLogin(endpoints, fail)
	return endpoints
}

func mergeAlias(value, alias, name, aliasName string, fail func(string, string, ...any)) string {
	switch {
	case alias == "":
		return value
	case value == "":
		return alias
	case value != alias:
		fail(name, "set both %s and its alias %s to different values; keep one", name, aliasName)
	}
	return value
}

func (o *Options) resolveCredentials(fail func(string, string, ...any)) {
	required := func(option, value string) {
		if value == "" {
			fail(option, "required when auth_type is %s", o.AuthType)
		}
	}
	fromEnv := func(value, env string) string {
		if value == "" {
			return os.Getenv(env)
		}
		return value
	}
	switch o.AuthType {
	case AuthClientSecret:
		required("tenant_id", o.TenantID)
		required("client_id", o.ClientID)
		required("client_secret", o.ClientSecret)
	case AuthCertificate:
		required("tenant_id", o.TenantID)
		required("client_id", o.ClientID)
		required("certificate", o.Certificate)
		if o.Certificate != "" {
			if _, _, err := o.loadCertificate(); err != nil {
				fail("certificate", "%v", err)
			}
		}
	case AuthManagedIdentity:
		// The tenant is the identity's home tenant; nothing else is required.
	case AuthWorkloadIdentity:
		// AKS workload identity injects these variables; explicit options win.
		o.TenantID = fromEnv(o.TenantID, "AZURE_TENANT_ID")
		o.ClientID = fromEnv(o.ClientID, "AZURE_CLIENT_ID")
		o.FederatedTokenFile = fromEnv(o.FederatedTokenFile, "AZURE_FEDERATED_TOKEN_FILE")
		if o.TenantID == "" {
			fail("tenant_id", "required when auth_type is %s (or set AZURE_TENANT_ID)", o.AuthType)
		}
		if o.ClientID == "" {
			fail("client_id", "required when auth_type is %s (or set AZURE_CLIENT_ID)", o.AuthType)
		}
		if o.FederatedTokenFile == "" {
			fail("federated_token_file", "required when auth_type is %s (or set AZURE_FEDERATED_TOKEN_FILE)", o.AuthType)
		} else if _, err := os.Stat(o.FederatedTokenFile); err != nil {
			fail("federated_token_file", "cannot read %q: %v", o.FederatedTokenFile, unwrapPathErr(err))
		}
	}
	if o.TenantID != "" && !tenantIDPattern.MatchString(o.TenantID) {
		fail("tenant_id", "%q is not a tenant id or domain (letters, digits, '-' and '.' only)", o.TenantID)
	}
}

// loadCertificate accepts a PEM or PFX file path, or inline PEM as libbeat's ssl options do.
func (o *Options) loadCertificate() ([]*x509.Certificate, crypto.PrivateKey, error) {
	var data []byte
	if tlscommon.IsPEMString(o.Certificate) {
		data = []byte(o.Certificate)
	} else {
		b, err := os.ReadFile(o.Certificate)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read %q: %v", o.Certificate, unwrapPathErr(err))
		}
		data = b
	}
	certs, key, err := azidentity.ParseCertificates(data, []byte(o.CertificatePassword))
	if err == nil {
		return certs, key, nil
	}
	// azidentity reads only legacy (3DES/RC2) PFX files; OpenSSL 3 and current Windows export
	// AES-encrypted ones by default, which a user should not have to convert.
	if key, leaf, chain, pfxErr := pkcs12.DecodeChain(data, o.CertificatePassword); pfxErr == nil {
		return append([]*x509.Certificate{leaf}, chain...), key, nil
	}
	return nil, nil, fmt.Errorf("not a PEM or PFX file with a certificate and its private key (check certificate_password): %v", err)
}

func (o *Options) resolveLogin(endpoints cloudEndpoints, fail func(string, string, ...any)) {
	if o.TokenEndpoint == "" {
		o.TokenEndpoint = DefaultTokenEndpoint
	}
	o.TokenEndpoint = strings.Trim(o.TokenEndpoint, "/")
	switch {
	case strings.Contains(o.TokenEndpoint, "://") || strings.ContainsAny(o.TokenEndpoint, "?#") || slices.Contains(strings.Split(o.TokenEndpoint, "/"), ".."):
		fail("token_endpoint", "must be a path below the tenant such as %s, got %q", DefaultTokenEndpoint, o.TokenEndpoint)
	case o.TokenEndpoint == "oauth2/token":
		// The v1 endpoint wants resource= instead of scope and mints tokens for the wrong
		// audience (elastic/beats#36555, #41926).
		fail("token_endpoint", "the v1 endpoint oauth2/token is not supported: use %s (scopes come from token_scopes)", DefaultTokenEndpoint)
	}

	if o.LoginURL == "" {
		o.LoginURL = endpoints.login
	} else if login, ok := o.parseLoginURL(fail); ok {
		o.LoginURL = login
	}

	for key := range o.OAuthEndpointParams {
		switch {
		case key == "resource":
			fail("oauth_endpoint_params", "resource is a v1 parameter the v2 token endpoint rejects (AADSTS901002); set token_scopes instead")
		case key == "grant_type":
			if v := o.OAuthEndpointParams[key]; len(v) != 1 || v[0] != "client_credentials" {
				fail("oauth_endpoint_params", "grant_type can only be client_credentials")
			}
		case slices.Contains(reservedTokenParams, key):
			fail("oauth_endpoint_params", "%s is set by the credential and cannot be overridden", key)
		}
	}
}

// parseLoginURL accepts the login host (https://login.microsoftonline.com) or, as token_url is
// often written, the full token URL https://host/<tenant>/<token_endpoint>.
func (o *Options) parseLoginURL(fail func(string, string, ...any)) (string, bool) {
	u, err := url.Parse(o.LoginURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		fail("login_url", "must be an https URL such as https://login.microsoftonline.com")
		return "", false
	}
	host := u.Scheme + "://" + u.Host
	path := strings.Trim(u.Path, "/")
	if path == "" {
		return host, true
	}
	tenant, endpoint, _ := strings.Cut(path, "/")
	if endpoint == "" || (o.TenantID != "" && !strings.EqualFold(tenant, o.TenantID)) {
		fail("login_url", "must be the login host (https://%s) or the full token URL https://%s/<tenant_id>/%s", u.Host, u.Host, DefaultTokenEndpoint)
		return "", false
	}
	o.TokenEndpoint = endpoint
	return host, true
}

func (o *Options) resolveRequestURL(api API, endpoints cloudEndpoints, fail func(string, string, ...any)) {
	defaultBase, defaultScope := endpoints.graph, ""
	if api == DefenderForEndpoint {
		defaultBase, defaultScope = endpoints.mde, endpoints.mdeScope
	}
	if o.RequestURL == "" {
		o.RequestURL = defaultBase
	}
	u, err := url.Parse(o.RequestURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		fail("request_url", "must be an https URL such as %s", defaultBase)
		return
	}
	o.RequestURL = strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/")
	if len(o.TokenScopes) == 0 {
		if defaultScope == "" {
			// A Graph token's audience is the Graph host the requests go to.
			defaultScope = u.Scheme + "://" + u.Host + "/.default"
		}
		o.TokenScopes = []string{defaultScope}
	}
	for i, s := range o.TokenScopes {
		if strings.TrimSpace(s) == "" {
			fail("token_scopes", "entry %d is empty", i)
		}
	}
	if o.AuthType == AuthManagedIdentity && len(o.TokenScopes) != 1 {
		fail("token_scopes", "managed identity accepts exactly one scope, got %d", len(o.TokenScopes))
	}
}

func (o *Options) resolveDownloadHosts(endpoints cloudEndpoints, fail func(string, string, ...any)) {
	if len(o.DownloadHosts) == 0 {
		o.DownloadHosts = append([]string(nil), endpoints.storage...)
		return
	}
	for i, h := range o.DownloadHosts {
		h = strings.ToLower(strings.TrimSpace(h))
		o.DownloadHosts[i] = h
		name := strings.TrimPrefix(h, "*.")
		if name == "" || strings.ContainsAny(name, "*/:@?#[] ") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
			fail("download_hosts", "entry %q must be a host name such as %s or a pattern such as %s (no scheme, port or path)", h, "myaccount.blob.core.windows.net", commercialBlobHosts)
		}
	}
}

// customLogin reports whether the authority is not one of Microsoft's, in which case MSAL must
// not ask Microsoft for instance metadata about it.
func (o *Options) customLogin() bool {
	u, err := url.Parse(o.LoginURL)
	if err != nil {
		return true
	}
	return !slices.Contains(microsoftLoginHosts, strings.ToLower(u.Host))
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
