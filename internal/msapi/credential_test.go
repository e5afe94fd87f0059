package msapi

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// NewTokenCredential serves Azure SDK clients (Event Hubs, Blob storage) that ask for tokens of
// their own scopes: it authenticates like NewClient and fails without the secret in its error.
func TestNewTokenCredential(t *testing.T) {
	login := newFakeLogin(t)
	o := DefaultOptions()
	o.TenantID, o.ClientID, o.ClientSecret = testTenant, testClient, testSecret
	o.LoginURL = login.srv.URL
	o.SSL = baseOptions("", "", caFile(t, login.srv)).SSL
	if errs := o.ResolveCredential(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if o.RequestURL != "" || len(o.TokenScopes) != 0 {
		t.Fatalf("ResolveCredential filled API options: %q %v", o.RequestURL, o.TokenScopes)
	}
	cred, err := NewTokenCredential(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	const scope = "https://eventhubs.azure.net/.default"
	tk, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil || tk.Token == "" {
		t.Fatalf("token %q, %v", tk.Token, err)
	}
	if form := login.lastForm(t); !strings.Contains(form.Get("scope"), scope) || form.Get("client_secret") != testSecret {
		t.Fatalf("token form = %v", form)
	}

	login.mu.Lock()
	login.tokenErr = func(url.Values) (int, string) {
		return 401, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. ` + testSecret + `"}`
	}
	login.mu.Unlock()
	// Another scope: the credential (shared by every user of the registration) caches the first.
	_, err = cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://storage.azure.com/.default"}})
	var te *TokenError
	if !errors.As(err, &te) || te.AADSTS != "AADSTS7000215" {
		t.Fatalf("err = %v, want a TokenError with AADSTS7000215", err)
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Fatalf("the secret leaked into the error: %v", err)
	}
}

func TestResolveCredentialReportsEveryProblem(t *testing.T) {
	o := DefaultOptions()
	o.AuthType, o.Cloud, o.LoginURL = "password", "mars", "http://login.example"
	errs := o.ResolveCredential()
	text := ""
	for _, e := range errs {
		text += e.Error() + "\n"
	}
	for _, want := range []string{"auth_type:", "cloud:", "login_url:"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q problem in:\n%s", want, text)
		}
	}
	o = DefaultOptions()
	if errs := o.ResolveCredential(); len(errs) != 3 {
		t.Fatalf("client_secret without tenant_id, client_id, client_secret: %v", errs)
	}
}
