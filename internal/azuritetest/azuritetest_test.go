package azuritetest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

func TestStartServesBlobAPI(t *testing.T) {
	a := Start(t)
	resp, err := http.Get(a.BlobEndpoint() + "?comp=list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Server"), "Azurite") {
		t.Fatalf("not Azurite: %v", resp.Header)
	}
	a.Stop()
	if _, err := http.Get(a.BlobEndpoint() + "?comp=list"); err == nil {
		t.Fatal("Azurite still answers after Stop")
	}
}

// testToken is a JWT-shaped bearer token with claims; Azurite's --oauth basic reads them
// without checking the signature.
func testToken(claims map[string]any) string {
	raw, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"typ":"JWT","alg":"RS256"}`)) + "." + enc(raw) + "." + enc([]byte("not-signed"))
}

// listContainers asks for the account's container list with a bearer token (none when empty)
// and returns the status and body.
func listContainers(t *testing.T, c *http.Client, base, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/?comp=list", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-ms-version", "2025-01-05")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestOAuthChecksTheTokensClaims: an Azurite started with OAuth serves https under the
// account's Azure host name and lets in a bearer token whose claims a storage account accepts,
// and refuses one for another audience, from another issuer, or expired: the claims the tests
// rely on are really checked.
func TestOAuthChecksTheTokensClaims(t *testing.T) {
	a := StartOAuth(t)
	if !strings.HasPrefix(a.BlobEndpoint(), "https://127.0.0.1:") {
		t.Fatalf("endpoint %s", a.BlobEndpoint())
	}
	now := time.Now().Unix()
	good := map[string]any{"aud": "https://storage.azure.com", "iss": "https://sts.windows.net/tenant/", "iat": now - 60, "nbf": now - 60, "exp": now + 3600}
	with := func(k string, v any) map[string]any {
		c := maps.Clone(good)
		c[k] = v
		return c
	}
	c := a.AccountHostClient()
	base := "https://" + AccountHost
	if status, body := listContainers(t, c, base, testToken(good)); status != http.StatusOK {
		t.Fatalf("a good token: %d %s", status, body)
	}
	for name, tc := range map[string]struct {
		claims map[string]any
		detail string
	}{
		"audience Graph": {with("aud", "https://graph.microsoft.com"), "Invalid token audience"},
		"foreign issuer": {with("iss", "https://issuer.example.test/"), "Invalid token issuer"},
		"expired":        {with("exp", now-60), "The token is expired"},
		"not yet valid":  {with("nbf", now+600), "Lifetime validation failed"},
	} {
		status, body := listContainers(t, c, base, testToken(tc.claims))
		if status != http.StatusForbidden || !strings.Contains(body, "AuthenticationFailed") || !strings.Contains(body, tc.detail) {
			t.Errorf("%s: %d %s", name, status, body)
		}
	}
	if status, body := listContainers(t, c, base, ""); status != http.StatusForbidden {
		t.Errorf("no token: %d %s", status, body)
	}
	// The account key keeps working, over https at 127.0.0.1.
	svc, err := service.NewClientFromConnectionString(a.ConnectionString(), &service.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: a.HTTPClient()}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.GetProperties(t.Context(), nil); err != nil {
		t.Fatalf("account key over https: %v", err)
	}
	// Only the account's host leads to Azurite.
	if _, err := c.Get("https://other.blob.core.windows.net/?comp=list"); err == nil || !strings.Contains(err.Error(), "not the account's host") {
		t.Fatalf("another host: %v", err)
	}
	// Without the certificate's trust there is no connection.
	if _, err := http.Get(a.BlobEndpoint() + "?comp=list"); err == nil {
		t.Fatal("the test certificate is trusted by default")
	}
}
