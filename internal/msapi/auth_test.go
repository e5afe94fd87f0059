package msapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func invalidSecretAnswer(form url.Values) (int, string) {
	// Echo the secret back, as a careless proxy or a future error format might, to prove that
	// scrubbing does not depend on Entra's courtesy.
	return http.StatusUnauthorized, fmt.Sprintf(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided (%s). Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: tr-1\r\nCorrelation ID: co-1","error_codes":[7000215],"trace_id":"tr-1","correlation_id":"co-1"}`, form.Get("client_secret"))
}

func TestSecretNeverLoggedNorInErrors(t *testing.T) {
	var rotated atomic.Bool
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if rotated.Load() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		okPage(w, r)
	}, nil)
	ctx := context.Background()
	if _, err := e.client.GetPage(ctx, "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatal(err)
	}

	// The secret was rotated: the API refuses the cached token and the authority the secret.
	e.login.mu.Lock()
	e.login.tokenErr = invalidSecretAnswer
	e.login.mu.Unlock()
	rotated.Store(true)

	_, err := e.client.Get(ctx, "/v1.0/security/alerts_v2", nil, nil)
	var te *TokenError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want *TokenError", err)
	}
	tokenErr := e.client.Token(ctx)
	for _, text := range []string{err.Error(), tokenErr.Error(), Explain(err), fmt.Sprintf("%+v", te)} {
		if strings.Contains(text, testSecret) {
			t.Fatalf("secret in error text: %s", text)
		}
	}
	if te.AADSTS != "AADSTS7000215" || te.TraceID != "tr-1" || te.StatusCode != 401 || te.ErrorCode != "invalid_client" {
		t.Fatalf("TokenError = %+v", te)
	}
	if !IsAuth(err) || !strings.Contains(Explain(err), "Secret ID") {
		t.Fatalf("IsAuth=%v Explain=%q", IsAuth(err), Explain(err))
	}
	if e.api.count() != 2 {
		t.Fatalf("%d API calls, want 2 (the renewal failed, so no resend)", e.api.count())
	}

	logs := allLogText(e.logs)
	// The tracer must actually have run, or the absence of the secret proves nothing.
	for _, want := range []string{"HTTP request", "client_secret=" + redacted, "Authorization: " + redacted, "access_token\":\"" + redacted} {
		if !strings.Contains(logs, want) {
			t.Fatalf("trace lacks %q:\n%s", want, logs)
		}
	}
	for _, leak := range []string{testSecret, url.QueryEscape(testSecret), "Bearer tok-1", "tok-1\""} {
		if strings.Contains(logs, leak) {
			t.Fatalf("log leaks %q:\n%s", leak, logs)
		}
	}
}

func selfSignedPEM(t *testing.T) (string, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "defenderbeat-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	path := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return path, cert
}

func TestCertificateCredential(t *testing.T) {
	path, _ := selfSignedPEM(t)
	e := newEnv(t, okPage, func(o *Options) {
		o.AuthType, o.ClientSecret, o.Certificate = AuthCertificate, "", path
	})
	if _, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
		t.Fatal(err)
	}
	form := e.login.lastForm(t)
	if form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" || strings.Count(form.Get("client_assertion"), ".") != 2 {
		t.Fatalf("token form = %v, want a signed JWT assertion", form)
	}
	if form.Get("client_secret") != "" {
		t.Fatal("a client secret was sent for certificate auth")
	}
	if !strings.Contains(allLogText(e.logs), "client_assertion="+redacted) {
		t.Fatal("the assertion is not redacted in the trace")
	}
}

func TestWorkloadIdentityCredential(t *testing.T) {
	const federated = "header.federated-token.signature"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(federated), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, okPage, func(o *Options) {
		o.AuthType, o.ClientSecret, o.FederatedTokenFile = AuthWorkloadIdentity, "", tokenFile
	})
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	form := e.login.lastForm(t)
	if form.Get("client_assertion") != federated || form.Get("client_id") != testClient {
		t.Fatalf("token form = %v", form)
	}
}

func TestTokenEndpointAndParams(t *testing.T) {
	e := newEnv(t, okPage, func(o *Options) {
		o.TokenEndpoint = "custom/oauth2/v2.0/token"
		o.OAuthEndpointParams = map[string][]string{"grant_type": {"client_credentials"}, "x_extra": {"1"}}
	})
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	form := e.login.lastForm(t)
	if form.Get("x_extra") != "1" || form.Get("client_secret") != testSecret {
		t.Fatalf("token form = %v", form)
	}
	e.login.mu.Lock()
	path := e.login.paths[len(e.login.paths)-1]
	e.login.mu.Unlock()
	if path != "/"+testTenant+"/custom/oauth2/v2.0/token" {
		t.Fatalf("token POST went to %s", path)
	}
}

func TestUntrustedServerIsRejected(t *testing.T) {
	e := newEnv(t, okPage, func(o *Options) {
		// A CA that did not sign the servers' certificate.
		path, _ := selfSignedPEM(t)
		o.SSL.CAs = []string{path}
	})
	_, err := e.client.Get(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
	if err == nil {
		t.Fatal("connected to a server signed by an untrusted CA")
	}
	if e.api.count() != 0 {
		t.Fatal("a request reached the untrusted server")
	}
}

func TestExplainEntraCodes(t *testing.T) {
	for code, want := range map[string]string{
		"AADSTS700016":  "client_id",
		"AADSTS90002":   "tenant_id",
		"AADSTS900382":  "cloud",
		"AADSTS7000222": "expired",
	} {
		err := &TokenError{AuthType: AuthClientSecret, AADSTS: code, Description: code + ": something"}
		if hint := Explain(err); !strings.Contains(hint, want) || !strings.Contains(hint, code) {
			t.Errorf("Explain(%s) = %q", code, hint)
		}
	}
	mde := &APIError{StatusCode: 403, Method: "GET", URL: "https://api.security.microsoft.com/api/machines/SoftwareVulnerabilitiesExport"}
	if hint := Explain(mde); !strings.Contains(hint, "Vulnerability.Read.All") {
		t.Errorf("Explain(MDE 403) = %q", hint)
	}
	if hint := Explain(fmt.Errorf("wrapped: %w", &APIError{StatusCode: 403, Download: true})); !strings.Contains(hint, "SAS") {
		t.Errorf("Explain(download 403) = %q", hint)
	}
}

func TestManagedIdentityCredential(t *testing.T) {
	var gotHeader, gotClientID, gotResource atomic.Value
	identity := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader.Store(r.Header.Get("X-IDENTITY-HEADER"))
		gotClientID.Store(r.URL.Query().Get("client_id"))
		gotResource.Store(r.URL.Query().Get("resource"))
		writeJSON(w, http.StatusOK, map[string]string{
			"access_token": "mi-token",
			"expires_on":   fmt.Sprint(time.Now().Add(time.Hour).Unix()),
			"resource":     r.URL.Query().Get("resource"),
			"token_type":   "Bearer",
		})
	}))
	// App Service's managed identity endpoint is configured through these variables.
	t.Setenv("IDENTITY_ENDPOINT", identity.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "identity-header-value")

	e := newEnv(t, okPage, func(o *Options) {
		o.AuthType, o.TenantID, o.ClientSecret = AuthManagedIdentity, "", ""
		o.ManagedIdentityClientID = "user-assigned-id"
		o.ProxyURL = "http://127.0.0.1:1" // must not be used for the identity endpoint
	})
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gotHeader.Load() != "identity-header-value" || gotClientID.Load() != "user-assigned-id" || gotResource.Load() != e.apiSrv.URL {
		t.Fatalf("identity request header=%v client_id=%v resource=%v", gotHeader.Load(), gotClientID.Load(), gotResource.Load())
	}
}

// TestCertificateCredentialFromPFX signs the assertion with a key from a PFX file, in the legacy
// encryption azidentity reads and in the AES encryption OpenSSL 3 and Windows write by default.
// testdata/app-*.pfx were made with openssl (password test-password); see testdata/README.md.
func TestCertificateCredentialFromPFX(t *testing.T) {
	for _, file := range []string{"app-legacy.pfx", "app-aes.pfx"} {
		t.Run(file, func(t *testing.T) {
			e := newEnv(t, okPage, func(o *Options) {
				o.AuthType, o.ClientSecret = AuthCertificate, ""
				o.Certificate, o.CertificatePassword = filepath.Join("testdata", file), "test-password"
			})
			if _, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil); err != nil {
				t.Fatal(err)
			}
			if form := e.login.lastForm(t); strings.Count(form.Get("client_assertion"), ".") != 2 {
				t.Fatalf("token form = %v, want a signed JWT assertion", form)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		o := Options{Certificate: filepath.Join("testdata", "app-aes.pfx"), CertificatePassword: "nope"}
		if _, _, err := o.loadCertificate(); err == nil || !strings.Contains(err.Error(), "certificate_password") {
			t.Fatalf("err = %v", err)
		}
	})
}
