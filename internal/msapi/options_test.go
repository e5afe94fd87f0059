package msapi

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/elastic-agent-libs/config"
)

func resolved(t *testing.T, api API, mutate func(*Options)) Options {
	t.Helper()
	o := DefaultOptions()
	o.TenantID, o.ClientID, o.ClientSecret = testTenant, testClient, testSecret
	mutate(&o)
	if errs := o.Resolve(api); len(errs) > 0 {
		t.Fatalf("Resolve: %v", errs)
	}
	return o
}

func TestResolveCloudDefaults(t *testing.T) {
	const mdeGlobalScope = "https://securitycenter.onmicrosoft.com/windowsatpservice/.default"
	cases := []struct {
		cloud      string
		api        API
		login, url string
		scope      string
	}{
		{"global", Graph, "https://login.microsoftonline.com", "https://graph.microsoft.com", "https://graph.microsoft.com/.default"},
		{"gcc", Graph, "https://login.microsoftonline.com", "https://graph.microsoft.com", "https://graph.microsoft.com/.default"},
		{"gcc-high", Graph, "https://login.microsoftonline.us", "https://graph.microsoft.us", "https://graph.microsoft.us/.default"},
		{"dod", Graph, "https://login.microsoftonline.us", "https://dod-graph.microsoft.us", "https://dod-graph.microsoft.us/.default"},
		{"global", DefenderForEndpoint, "https://login.microsoftonline.com", "https://api.security.microsoft.com", mdeGlobalScope},
		{"gcc", DefenderForEndpoint, "https://login.microsoftonline.com", "https://api-gcc.securitycenter.microsoft.us", "https://api-gcc.securitycenter.microsoft.us/.default"},
		{"gcc-high", DefenderForEndpoint, "https://login.microsoftonline.us", "https://api-gov.securitycenter.microsoft.us", "https://api-gov.securitycenter.microsoft.us/.default"},
		{"dod", DefenderForEndpoint, "https://login.microsoftonline.us", "https://api-gov.securitycenter.microsoft.us", "https://api-gov.securitycenter.microsoft.us/.default"},
	}
	for _, c := range cases {
		t.Run(c.cloud+"/"+c.api.String(), func(t *testing.T) {
			o := resolved(t, c.api, func(o *Options) { o.Cloud = c.cloud })
			if o.LoginURL != c.login || o.RequestURL != c.url || !slices.Equal(o.TokenScopes, []string{c.scope}) {
				t.Fatalf("login=%s request_url=%s scopes=%v", o.LoginURL, o.RequestURL, o.TokenScopes)
			}
			if o.customLogin() {
				t.Fatal("a Microsoft login host counted as custom (instance discovery would be disabled)")
			}
		})
	}
}

func TestResolveOverridesKeepScopeOnRequestHost(t *testing.T) {
	o := resolved(t, Graph, func(o *Options) {
		o.Cloud = CloudGCCHigh
		o.RequestURL = "https://graph.example.test:8443/"
		o.LoginURL = "https://login.example.test"
	})
	if o.RequestURL != "https://graph.example.test:8443" || o.TokenScopes[0] != "https://graph.example.test:8443/.default" {
		t.Fatalf("request_url=%s scopes=%v", o.RequestURL, o.TokenScopes)
	}
	if !o.customLogin() {
		t.Fatal("custom login_url not detected")
	}
	o = resolved(t, DefenderForEndpoint, func(o *Options) { o.RequestURL = "https://eu.api.security.microsoft.com" })
	if o.TokenScopes[0] != "https://securitycenter.onmicrosoft.com/windowsatpservice/.default" {
		t.Fatalf("regional MDE host changed the scope: %v", o.TokenScopes)
	}
}

func TestResolveReportsEveryProblem(t *testing.T) {
	o := DefaultOptions()
	o.Cloud = "mars"
	o.RequestURL = "http://graph.microsoft.com"
	o.LoginURL = "ftp://login"
	o.TokenEndpoint = "oauth2/token"
	o.OAuthEndpointParams = map[string][]string{"resource": {"x"}, "client_secret": {"y"}}
	o.HTTPClientTimeout = -time.Second
	o.MaxRetries = -1
	o.MaxResponseBytes = 0
	o.ProxyURL = "::not a url"
	errs := o.Resolve(Graph)
	want := []string{
		`cloud: "mars" is not one of global, gcc, gcc-high, dod`,
		"tenant_id: required when auth_type is client_secret",
		"client_id: required when auth_type is client_secret",
		"client_secret: required when auth_type is client_secret",
		"request_url: must be an https URL",
		"login_url: must be an https URL",
		"token_endpoint: the v1 endpoint",
		"oauth_endpoint_params: resource",
		"oauth_endpoint_params: client_secret",
		"http_client_timeout:",
		"max_retries:",
		"max_response_bytes:",
		"proxy_url:",
	}
	var text []string
	for _, err := range errs {
		text = append(text, err.Error())
	}
	joined := strings.Join(text, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("missing %q in:\n%s", w, joined)
		}
	}
	if len(errs) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(errs), len(want), joined)
	}
}

func TestResolvePerAuthType(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Options)
		want   []string
	}{
		"bad auth_type":          {func(o *Options) { o.AuthType = "password" }, []string{`auth_type: "password" is not one of client_secret, certificate, managed_identity, workload_identity`}},
		"certificate missing":    {func(o *Options) { o.AuthType = AuthCertificate }, []string{"certificate: required when auth_type is certificate"}},
		"certificate unreadable": {func(o *Options) { o.AuthType, o.Certificate = AuthCertificate, "/nonexistent/cert.pem" }, []string{`certificate: cannot read "/nonexistent/cert.pem"`}},
		"workload missing file":  {func(o *Options) { o.AuthType = AuthWorkloadIdentity }, []string{"federated_token_file: required when auth_type is workload_identity"}},
		"managed identity two scopes": {func(o *Options) {
			o.AuthType, o.TenantID, o.ClientSecret = AuthManagedIdentity, "", ""
			o.TokenScopes = []string{"a/.default", "b/.default"}
		}, []string{"token_scopes: managed identity accepts exactly one scope"}},
		"bad tenant": {func(o *Options) { o.TenantID = "contoso/../x" }, []string{"tenant_id:"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Setenv("AZURE_FEDERATED_TOKEN_FILE", "")
			o := DefaultOptions()
			o.TenantID, o.ClientID, o.ClientSecret = testTenant, testClient, testSecret
			c.mutate(&o)
			errs := o.Resolve(Graph)
			if len(errs) != len(c.want) {
				t.Fatalf("errors %v, want %v", errs, c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Fatalf("error %q does not contain %q", errs[i], w)
				}
			}
		})
	}
	// Managed identity needs neither tenant nor secret.
	o := DefaultOptions()
	o.AuthType = AuthManagedIdentity
	if errs := o.Resolve(Graph); len(errs) != 0 {
		t.Fatalf("managed identity: %v", errs)
	}
}

func TestResolveAliases(t *testing.T) {
	o := DefaultOptions()
	o.AzureTenantID, o.ClientID, o.ClientSecret = testTenant, testClient, testSecret
	o.URL = "https://us.api.security.microsoft.com"
	o.TokenURL = "https://login.microsoftonline.com/" + testTenant + "/oauth2/v2.0/token"
	if errs := o.Resolve(DefenderForEndpoint); len(errs) > 0 {
		t.Fatal(errs)
	}
	if o.TenantID != testTenant || o.RequestURL != "https://us.api.security.microsoft.com" || o.LoginURL != "https://login.microsoftonline.com" || o.TokenEndpoint != DefaultTokenEndpoint {
		t.Fatalf("aliases not applied: %+v", o)
	}
	if o.AzureTenantID != "" || o.URL != "" || o.TokenURL != "" {
		t.Fatal("alias fields should be folded into the canonical ones")
	}

	o = DefaultOptions()
	o.TenantID, o.AzureTenantID, o.ClientID, o.ClientSecret = "a", "b", testClient, testSecret
	o.RequestURL, o.URL = "https://x.test", "https://y.test"
	errs := o.Resolve(Graph)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "tenant_id: set both tenant_id and its alias azure_tenant_id") ||
		!strings.Contains(errs[1].Error(), "request_url: set both request_url and its alias url") {
		t.Fatalf("conflicting aliases: %v", errs)
	}
}

func TestUnpackFromConfig(t *testing.T) {
	cfg := config.MustNewConfigFrom(map[string]any{
		"tenant_id":             testTenant,
		"client_id":             testClient,
		"client_secret":         testSecret,
		"cloud":                 "gcc-high",
		"http_client_timeout":   "45s",
		"max_retries":           2,
		"max_response_bytes":    1024,
		"enable_request_tracer": true,
		"token_scopes":          []string{"https://graph.microsoft.us/.default"},
		"oauth_endpoint_params": map[string]any{"grant_type": "client_credentials", "extra": []string{"1", "2"}},
		"ssl":                   map[string]any{"verification_mode": "full"},
		"proxy_url":             "http://proxy.example:3128",
	})
	o := DefaultOptions()
	if err := cfg.Unpack(&o); err != nil {
		t.Fatal(err)
	}
	if errs := o.Resolve(Graph); len(errs) > 0 {
		t.Fatal(errs)
	}
	if o.HTTPClientTimeout != 45*time.Second || o.MaxRetries != 2 || o.MaxResponseBytes != 1024 || !o.EnableRequestTracer ||
		o.SSL == nil || o.ProxyURL == "" || o.RequestURL != "https://graph.microsoft.us" || o.LoginURL != "https://login.microsoftonline.us" {
		t.Fatalf("unpacked %+v", o)
	}
	if !slices.Equal(o.OAuthEndpointParams["grant_type"], []string{"client_credentials"}) || len(o.OAuthEndpointParams["extra"]) != 2 {
		t.Fatalf("oauth_endpoint_params = %v", o.OAuthEndpointParams)
	}
	if o.retryDelay != defaultRetryDelay {
		t.Fatal("unpacking lost the internal retry defaults")
	}
}

// TestDownloadHostsPerCloud: export files are fetched only from the configured cloud's blob
// storage unless download_hosts says otherwise; a pattern matches names below it, nothing more.
func TestDownloadHostsPerCloud(t *testing.T) {
	cases := []struct {
		cloud    string
		hosts    []string
		allowed  []string
		refused  []string
		resolved []string
	}{
		{cloud: "global",
			allowed:  []string{"tvmexportstrstgeus.blob.core.windows.net", "X.Blob.Core.Windows.Net"},
			refused:  []string{"blob.core.windows.net", "evilblob.core.windows.net", "a.blob.core.windows.net.evil.test", "a.blob.core.usgovcloudapi.net", "127.0.0.1"},
			resolved: []string{"*.blob.core.windows.net"}},
		{cloud: "gcc",
			allowed:  []string{"a.blob.core.windows.net", "a.blob.core.usgovcloudapi.net"},
			refused:  []string{"a.blob.core.chinacloudapi.cn"},
			resolved: []string{"*.blob.core.windows.net", "*.blob.core.usgovcloudapi.net"}},
		{cloud: "gcc-high", allowed: []string{"a.blob.core.usgovcloudapi.net"}, refused: []string{"a.blob.core.windows.net"}},
		{cloud: "dod", allowed: []string{"a.blob.core.usgovcloudapi.net"}, refused: []string{"a.blob.core.windows.net"}},
		{cloud: "global", hosts: []string{" 127.0.0.1 ", "Files.Example.Test"},
			allowed:  []string{"127.0.0.1", "files.example.test"},
			refused:  []string{"a.blob.core.windows.net", "x.files.example.test"},
			resolved: []string{"127.0.0.1", "files.example.test"}},
	}
	for _, c := range cases {
		t.Run(c.cloud+strings.Join(c.hosts, ","), func(t *testing.T) {
			o := resolved(t, DefenderForEndpoint, func(o *Options) { o.Cloud, o.DownloadHosts = c.cloud, c.hosts })
			if c.resolved != nil && !slices.Equal(o.DownloadHosts, c.resolved) {
				t.Fatalf("download_hosts resolved to %v, want %v", o.DownloadHosts, c.resolved)
			}
			client := &Client{opts: o}
			for _, h := range c.allowed {
				if err := client.checkDownloadURL(&url.URL{Scheme: "https", Host: h + ":443", Path: "/f"}); err != nil {
					t.Errorf("%s refused: %v", h, err)
				}
			}
			for _, h := range c.refused {
				if err := client.checkDownloadURL(&url.URL{Scheme: "https", Host: h, Path: "/f"}); err == nil {
					t.Errorf("%s allowed", h)
				}
			}
		})
	}
	for _, bad := range []string{"https://a.blob.core.windows.net", "a.example.test:443", "*", "a/b", "*.", "a*.example.test"} {
		o := DefaultOptions()
		o.TenantID, o.ClientID, o.ClientSecret = testTenant, testClient, testSecret
		o.DownloadHosts = []string{bad}
		errs := o.Resolve(DefenderForEndpoint)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "download_hosts") {
			t.Errorf("download_hosts %q: %v, want one error naming the option", bad, errs)
		}
	}
}
