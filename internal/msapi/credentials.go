package msapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"sync"
	"weak"

	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/transport/tlscommon"
)

// credentialKey identifies how a token is obtained: the registration (authority, tenant,
// client id), the secret, certificate or identity it signs in with, and the transport to the
// authority. It is a keyed digest, so the registry never holds a secret in the clear, and a
// changed secret is a different key: an input given a new secret never gets a credential built
// with the old one.
type credentialKey [sha256.Size]byte

// credentialKeySalt keys the digests; it lives only in this process.
var credentialKeySalt = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

func credentialKeyOf(o Options) credentialKey {
	cert := o.Certificate
	if o.AuthType == AuthCertificate && !tlscommon.IsPEMString(cert) {
		// A certificate replaced on disk is a new credential for the inputs started after.
		if b, err := os.ReadFile(cert); err == nil {
			cert += "\x00" + string(b)
		}
	}
	shape, err := json.Marshal(struct {
		AuthType, Tenant, Client, Login, TokenEndpoint string
		Params                                         map[string][]string
		Secret, Cert, CertPassword, MIClient, FedFile  string
		Proxy                                          string
		SSL                                            *tlscommon.Config
		Timeout                                        int64
		Tracer                                         bool
		MaxRetries                                     int
		RetryDelay, MaxRetryDelay                      int64
	}{
		o.AuthType, strings.ToLower(o.TenantID), strings.ToLower(o.ClientID), strings.ToLower(o.LoginURL), o.TokenEndpoint,
		o.OAuthEndpointParams,
		o.ClientSecret, cert, o.CertificatePassword, o.ManagedIdentityClientID, o.FederatedTokenFile,
		o.ProxyURL,
		o.SSL,
		int64(o.HTTPClientTimeout),
		o.EnableRequestTracer,
		o.MaxRetries,
		int64(o.retryDelay), int64(o.maxRetryDelay),
	})
	var k credentialKey
	if err != nil {
		// Options that cannot be compared are shared with no one.
		_, _ = rand.Read(k[:])
		return k
	}
	mac := hmac.New(sha256.New, credentialKeySalt)
	mac.Write(shape)
	copy(k[:], mac.Sum(nil))
	return k
}

// credentials are the credentials in use in this process. Inputs on one registration share
// one: one token cache, one token request when it expires, instead of one per input. They are
// held weakly: once no client uses a credential (its inputs stopped, its secret rotated) it is
// collected and its entry removed.
var credentials = struct {
	sync.Mutex
	byKey map[credentialKey]weak.Pointer[renewableCredential]
}{byKey: map[credentialKey]weak.Pointer[renewableCredential]{}}

// sharedCredential returns the credential of o's registration, building it on first use. The
// first user's logger and scrubber serve every user: the scrubber knows the same secrets, as
// they are part of the key.
func sharedCredential(o Options, log *logp.Logger, sc scrubber) (*renewableCredential, error) {
	key := credentialKeyOf(o)
	credentials.Lock()
	defer credentials.Unlock()
	if cred := credentials.byKey[key].Value(); cred != nil {
		return cred, nil
	}
	cred, err := newRenewableCredential(o, log, sc)
	if err != nil {
		return nil, err
	}
	credentials.byKey[key] = weak.Make(cred)
	runtime.AddCleanup(cred, forgetCredential, key)
	return cred, nil
}

func forgetCredential(key credentialKey) {
	credentials.Lock()
	defer credentials.Unlock()
	if credentials.byKey[key].Value() == nil {
		delete(credentials.byKey, key)
	}
}
