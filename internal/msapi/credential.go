package msapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/elastic/elastic-agent-libs/logp"
)

// renewableCredential lets a 401 from the API force a brand-new token. azidentity (MSAL) serves
// tokens from its cache until they near expiry, so a token the API has stopped accepting
// (revoked, rotated secret, wrong audience after a fix) would otherwise be re-sent for up to an
// hour. Building a fresh credential drops that cache.
type renewableCredential struct {
	build    func() (azcore.TokenCredential, error)
	authType string
	sc       scrubber

	mu    sync.Mutex
	cur   azcore.TokenCredential
	stale bool
	// fetch lets one caller at a time ask for a token: the inputs sharing the credential then
	// find the token the first one obtained in the cache instead of each asking the authority.
	fetch sync.Mutex
}

func (c *renewableCredential) GetToken(ctx context.Context, tro policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	if c.cur == nil || c.stale {
		cred, err := c.build()
		if err != nil {
			c.mu.Unlock()
			return azcore.AccessToken{}, newTokenError(c.authType, err, c.sc)
		}
		c.cur, c.stale = cred, false
	}
	cur := c.cur
	c.mu.Unlock()

	c.fetch.Lock()
	tk, err := cur.GetToken(ctx, tro)
	c.fetch.Unlock()
	if err != nil {
		return azcore.AccessToken{}, newTokenError(c.authType, err, c.sc)
	}
	return tk, nil
}

func (c *renewableCredential) renew() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

// NewTokenCredential is the credential NewClient authenticates with, for Azure SDK clients that
// take an azcore.TokenCredential themselves (Event Hubs, Blob storage): the same auth types,
// authority, token_endpoint handling and secret-free errors. o must have passed
// ResolveCredential (or Resolve). log may be nil.
func NewTokenCredential(o Options, log *logp.Logger) (azcore.TokenCredential, error) {
	if o.LoginURL == "" {
		return nil, errors.New("msapi: options must be resolved with ResolveCredential before NewTokenCredential")
	}
	if log == nil {
		log = logp.NewNopLogger()
	}
	o.setDefaults()
	return sharedCredential(o, log.Named("msapi"), newScrubber(o.ClientSecret, o.CertificatePassword, proxyPassword(o.ProxyURL)))
}

func newRenewableCredential(o Options, log *logp.Logger, sc scrubber) (*renewableCredential, error) {
	// IMDS and the App Service identity endpoint are local: never through a proxy.
	credHTTP, err := newHTTPClient(o, log, o.AuthType != AuthManagedIdentity, refuseRedirects)
	if err != nil {
		return nil, err
	}
	credOpts := azcore.ClientOptions{
		Transport:       &limitedTransport{client: credHTTP, limit: maxTokenBody, idle: o.HTTPClientTimeout},
		Retry:           retryOptions(o, o.HTTPClientTimeout),
		Telemetry:       policy.TelemetryOptions{ApplicationID: "defenderbeat"},
		PerCallPolicies: []policy.Policy{newTokenRequestPolicy(o)},
	}
	if o.EnableRequestTracer {
		credOpts.PerRetryPolicies = []policy.Policy{newTracer(log, sc, true)}
	}
	return &renewableCredential{build: credentialBuilder(o, credOpts), authType: o.AuthType, sc: sc}, nil
}

// credentialBuilder returns the constructor of the azidentity credential for o.AuthType.
func credentialBuilder(o Options, co azcore.ClientOptions) func() (azcore.TokenCredential, error) {
	disableDiscovery := o.customLogin()
	co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: o.LoginURL + "/"}
	switch o.AuthType {
	case AuthCertificate:
		return func() (azcore.TokenCredential, error) {
			certs, key, err := o.loadCertificate()
			if err != nil {
				return nil, err
			}
			return azidentity.NewClientCertificateCredential(o.TenantID, o.ClientID, certs, key, &azidentity.ClientCertificateCredentialOptions{
				ClientOptions:            co,
				DisableInstanceDiscovery: disableDiscovery,
				// Subject name/issuer authentication needs the chain; sending it is harmless otherwise.
				SendCertificateChain: true,
			})
		}
	case AuthManagedIdentity:
		return func() (azcore.TokenCredential, error) {
			mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
			if o.ManagedIdentityClientID != "" {
				mo.ID = azidentity.ClientID(o.ManagedIdentityClientID)
			}
			return azidentity.NewManagedIdentityCredential(mo)
		}
	case AuthWorkloadIdentity:
		return func() (azcore.TokenCredential, error) {
			return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
				ClientOptions:            co,
				ClientID:                 o.ClientID,
				TenantID:                 o.TenantID,
				TokenFilePath:            o.FederatedTokenFile,
				DisableInstanceDiscovery: disableDiscovery,
			})
		}
	default:
		return func() (azcore.TokenCredential, error) {
			return azidentity.NewClientSecretCredential(o.TenantID, o.ClientID, o.ClientSecret, &azidentity.ClientSecretCredentialOptions{
				ClientOptions:            co,
				DisableInstanceDiscovery: disableDiscovery,
			})
		}
	}
}

// tokenRequestPolicy applies token_endpoint and oauth_endpoint_params to the token POSTs MSAL
// sends to the authority (MSAL itself only knows the endpoint from OpenID discovery).
type tokenRequestPolicy struct {
	login    *url.URL
	endpoint string
	params   map[string][]string
}

func newTokenRequestPolicy(o Options) policy.Policy {
	login, _ := url.Parse(o.LoginURL)
	p := &tokenRequestPolicy{login: login, endpoint: o.TokenEndpoint, params: map[string][]string{}}
	for k, v := range o.OAuthEndpointParams {
		if k != "grant_type" { // validated to be client_credentials, which MSAL sends anyway
			p.params[k] = v
		}
	}
	return p
}

func (p *tokenRequestPolicy) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	if r.Method != http.MethodPost || p.login == nil || !sameOrigin(r.URL, p.login) || !strings.HasSuffix(r.URL.Path, "/token") {
		return req.Next()
	}
	if p.endpoint != DefaultTokenEndpoint {
		tenant, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		r.URL.Path = "/" + tenant + "/" + p.endpoint
		r.URL.RawPath = ""
	}
	if len(p.params) > 0 && req.Body() != nil {
		body, err := io.ReadAll(req.Body())
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		for k, v := range p.params {
			form[k] = v
		}
		if err := req.SetBody(streaming.NopCloser(bytes.NewReader([]byte(form.Encode()))), "application/x-www-form-urlencoded"); err != nil {
			return nil, err
		}
	}
	return req.Next()
}
