package event

// Entra ID sign-in to Azure Storage, end to end: tokens from the simulated tenant's authority
// (azidentity through the shared credential code), blobs in Azurite over https with its OAuth
// mode, which reads each bearer token's audience, issuer and lifetime. The account is named by
// storage_account, as users configure it: the input builds https://devstoreaccount1.blob.
// core.windows.net/ itself, and the test's transport leads that host, and no other, to Azurite.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/elastic-agent-libs/logp/logptest"
	"github.com/elastic/elastic-agent-libs/transport/tlscommon"
	"go.uber.org/zap/zaptest/observer"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

const storageAudience = "https://storage.azure.com"

// storageRequests sits in front of Azurite and counts what reached it: by host, and by the
// audience of the bearer token each request carried ("" without one).
type storageRequests struct {
	next      policy.Transporter
	mu        sync.Mutex
	hosts     map[string]int
	audiences map[string]int
}

func newStorageRequests(az *azuritetest.Azurite) *storageRequests {
	return &storageRequests{next: az.AccountHostClient(), hosts: map[string]int{}, audiences: map[string]int{}}
}

func (s *storageRequests) Do(req *http.Request) (*http.Response, error) {
	aud := ""
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		aud = tokenAudience(tok)
	}
	s.mu.Lock()
	s.hosts[req.URL.Host]++
	s.audiences[aud]++
	s.mu.Unlock()
	return s.next.Do(req)
}

// only reports whether every request went to host with a token for audience, and how many.
func (s *storageRequests) only(host, audience string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hosts[host], len(s.hosts) == 1 && len(s.audiences) == 1 && s.audiences[audience] == s.hosts[host]
}

func (s *storageRequests) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.hosts {
		n += c
	}
	return n
}

// tokenAudience is the aud claim of a JWT-shaped token ("?" when it has none).
func tokenAudience(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "?"
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct{ Aud string }
	if err != nil || json.Unmarshal(raw, &claims) != nil || claims.Aud == "" {
		return "?"
	}
	return claims.Aud
}

// trustSimulator makes the credential trust the simulated authority's CA.
func trustSimulator(sim *simulator.Server) func(*msapi.Options) {
	return func(o *msapi.Options) { o.SSL = &tlscommon.Config{CAs: []string{sim.CAFile()}} }
}

// entraStorageTuning points the storage input's account host at Azurite and its credential at
// the simulated authority.
func entraStorageTuning(clock *testClock, sim *simulator.Server, az *azuritetest.Azurite) (storageTuning, *storageRequests) {
	t := testStorageTuning(clock)
	seen := newStorageRequests(az)
	t.transport = seen
	t.credential = trustSimulator(sim)
	return t, seen
}

// entraSettings are a storage input's options signing in with a client secret.
func (f *storageFixture) entraSettings(sim *simulator.Server, id string, tables []string, secret string) map[string]any {
	s := f.settings(id, tables, map[string]any{
		"storage_account": azuritetest.AccountName,
		"auth_type":       AuthClientSecret,
		"tenant_id":       sim.TenantID(),
		"client_id":       sim.ClientID(),
		"client_secret":   secret,
		"authority_host":  sim.URL(),
	})
	delete(s, "storage_account_connection_string")
	return s
}

// tokensIssued counts the token requests the authority granted.
func tokensIssued(sim *simulator.Server) int {
	n := 0
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/oauth2/v2.0/token") && r.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// TestStorageEntraIDClientSecret: with auth_type client_secret the input signs in to Entra ID,
// reads every table's blobs from the account with the storage token, and publishes every
// record once; every request went to the account's host with a token for Azure Storage, and
// `test credentials` (the probe) passes.
func TestStorageEntraIDClientSecret(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 31})
	az := azuritetest.SharedOAuth(t)
	f := newStorageFixture(t, az)
	table := testTable(t, "T")
	want := markers("entra", 6)
	f.appendTo(table, hour10, storageLines(table, want[:4]...))
	f.appendTo(table, hour10.Add(time.Hour), storageLines(table, want[4:]...))
	tune, seen := entraStorageTuning(newTestClock(hour10.Add(90*time.Minute)), sim, az)

	h := cursortest.New(t)
	h.Run(storagePlugin(tune), f.entraSettings(sim, "entra", []string{table}, sim.ClientSecret()), 30*time.Second, hasMarkers(h, want))
	exactlyOnce(t, h.Published(), want)
	if h.SawStatus(status.Failed) || h.SawStatus(status.Degraded) {
		t.Fatalf("statuses %+v", h.Statuses())
	}
	if n, ok := seen.only(azuritetest.AccountHost, storageAudience); n == 0 || !ok {
		t.Fatalf("requests by host %v, by token audience %v; want all to %s with a token for %s", seen.hosts, seen.audiences, azuritetest.AccountHost, storageAudience)
	}
	if tokensIssued(sim) == 0 {
		t.Fatal("no token was acquired from the authority")
	}

	for name, tables := range map[string][]string{"discovery": nil, "tables": {table}} {
		cfg, err := configureStorage(confFrom(f.entraSettings(sim, "probe", tables, sim.ClientSecret())))
		if err != nil {
			t.Fatal(err)
		}
		if err := probeStorage(t.Context(), cfg, tune, testLogger(t)); err != nil {
			t.Fatalf("probe (%s): %v", name, err)
		}
	}
}

// TestStorageEntraIDWrongSecret: a client secret Entra ID refuses is reported as the key path
// reports a wrong key (FAILED, with what to fix), nothing reaches the storage account, and the
// secret appears in no status, log line or probe error.
func TestStorageEntraIDWrongSecret(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 32})
	az := azuritetest.SharedOAuth(t)
	f := newStorageFixture(t, az)
	table := testTable(t, "T")
	f.appendTo(table, hour10, storageLines(table, "x"))
	tune, seen := entraStorageTuning(newTestClock(hour10), sim, az)
	const wrong = "Wr0ng~Secret.Value-7Q8R9S"

	h := cursortest.New(t)
	log, logs := logptest.NewTestingLoggerWithObserver(t, "")
	h.Log = log
	h.Run(storagePlugin(tune), f.entraSettings(sim, "wrongsecret", nil, wrong), 30*time.Second, func() bool {
		n := 0
		for _, s := range h.Statuses() {
			if s.Status == status.Failed && strings.Contains(s.Msg, "invalid client secret") {
				n++
			}
		}
		return n >= 2 // reported, retried, reported again
	})
	if h.Count() != 0 || seen.count() != 0 {
		t.Fatalf("%d documents, %d storage requests without a token", h.Count(), seen.count())
	}
	cfg, err := configureStorage(confFrom(f.entraSettings(sim, "probe", []string{table}, wrong)))
	if err != nil {
		t.Fatal(err)
	}
	probeErr := probeStorage(t.Context(), cfg, tune, testLogger(t))
	if probeErr == nil || !msapi.IsAuth(probeErr) || !strings.Contains(probeErr.Error(), "invalid client secret") {
		t.Fatalf("probe with a wrong secret: %v", probeErr)
	}
	assertNoSecret(t, wrong, probeErr.Error(), h.Statuses(), logs)
}

// assertNoSecret fails the test if secret appears in an error, a status or a log line.
func assertNoSecret(t *testing.T, secret, errText string, statuses []cursortest.StatusUpdate, logs *observer.ObservedLogs) {
	t.Helper()
	if strings.Contains(errText, secret) {
		t.Error("the secret appears in the error")
	}
	for _, s := range statuses {
		if strings.Contains(s.Msg, secret) {
			t.Errorf("the secret appears in the status %q", s.Msg)
		}
	}
	if logs.Len() == 0 {
		t.Error("nothing was logged")
	}
	for _, e := range logs.All() {
		line, _ := json.Marshal(e.ContextMap())
		if strings.Contains(e.Message, secret) || strings.Contains(string(line), secret) {
			t.Errorf("the secret appears in the log line %q %s", e.Message, line)
		}
	}
}

// TestStorageEntraIDTokenRefused: the account itself refuses tokens that sign-in succeeded
// for. An authority whose clock runs two hours behind issues tokens already expired: Azurite
// refuses them (their exp claim) and the input reports FAILED with the account's reason and what
// to check, not a key it does not use; the probe says the same. A token for another audience
// (Graph's) is refused the same way.
func TestStorageEntraIDTokenRefused(t *testing.T) {
	az := azuritetest.SharedOAuth(t)
	f := newStorageFixture(t, az)
	table := testTable(t, "T")
	f.appendTo(table, hour10, storageLines(table, "x"))

	t.Run("expired", func(t *testing.T) {
		sim := cursortest.StartSim(t, simulator.Config{Seed: 33, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
		tune, seen := entraStorageTuning(newTestClock(hour10), sim, az)
		h := cursortest.New(t)
		const reason = "refused the Entra ID token (Lifetime validation failed. The token is expired.)"
		h.Run(storagePlugin(tune), f.entraSettings(sim, "expired", []string{table}, sim.ClientSecret()), 30*time.Second, func() bool {
			return h.StatusMentions(status.Failed, reason)
		})
		if h.Count() != 0 {
			t.Fatalf("%d documents with a refused token", h.Count())
		}
		if n, ok := seen.only(azuritetest.AccountHost, storageAudience); n == 0 || !ok {
			t.Fatalf("requests by host %v, by token audience %v", seen.hosts, seen.audiences)
		}
		if msg := h.LastStatus().Msg; strings.Contains(msg, "refused the key") || !strings.Contains(msg, sim.TenantID()) || strings.Count(msg, reason) != 1 {
			t.Fatalf("status %q: want the account's reason once, and the tenant", msg)
		}
		cfg, err := configureStorage(confFrom(f.entraSettings(sim, "probe", []string{table}, sim.ClientSecret())))
		if err != nil {
			t.Fatal(err)
		}
		if err := probeStorage(t.Context(), cfg, tune, testLogger(t)); err == nil || !strings.Contains(err.Error(), reason) {
			t.Fatalf("probe with an expired token: %v", err)
		}
	})

	t.Run("audience", func(t *testing.T) {
		sim := cursortest.StartSim(t, simulator.Config{Seed: 34})
		cfg, err := configureStorage(confFrom(f.entraSettings(sim, "audience", []string{table}, sim.ClientSecret())))
		if err != nil {
			t.Fatal(err)
		}
		o := cfg.credential
		trustSimulator(sim)(&o)
		cred, err := msapi.NewTokenCredential(o, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		opts := &service.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: az.AccountHostClient()}}
		for scope, refused := range map[string]bool{"https://graph.microsoft.com/.default": true, storageAudience + "/.default": false} {
			svc, err := service.NewClient(cfg.serviceURL, scopedCredential{cred, scope}, opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = svc.GetProperties(t.Context(), nil)
			if !refused {
				if err != nil {
					t.Fatalf("a token for %s: %v", scope, err)
				}
				continue
			}
			r := &storageRun{cfg: &cfg}
			if err == nil || !msapi.IsAuth(err) || !strings.Contains(r.explain(err).Error(), "refused the Entra ID token (Invalid token audience.)") {
				t.Fatalf("a token for %s: %v", scope, err)
			}
		}
	})
}

// scopedCredential asks for a token for its own scope, whatever the client asks for.
type scopedCredential struct {
	azcore.TokenCredential
	scope string
}

func (c scopedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	o.Scopes = []string{c.scope}
	return c.TokenCredential.GetToken(ctx, o)
}

// TestCheckpointStoreEntraID: with auth_type client_secret the event input signs in to Event
// Hubs and to the checkpoint account with the same identity: checkpoints are written to the
// account with a token for Azure Storage, each at its partition's last message, and the probe
// (`test credentials`) checks the container with Entra ID too. A token the account refuses
// makes the probe say so, with the account's reason.
func TestCheckpointStoreEntraID(t *testing.T) {
	az := azuritetest.SharedOAuth(t)
	hub := startHub(t, eventhubfake.Config{})
	bridge := startWebSocketBridge(t, hub)
	sim := cursortest.StartSim(t, simulator.Config{Seed: 35})
	seen := newStorageRequests(az)
	tune := bridgeTuning(bridge)
	tune.credential = trustSimulator(sim)
	tune.blobTransport = seen
	settings := entraHubSettings(t, hub, bridge, sim)

	markers := sendMessages(t, hub, "cp", 4, 3, 2)
	states, _ := registry{t.TempDir()}.open(t)
	out := newOutput(t)
	in := startInput(t, settings, tune, states, out)
	waitFor(t, 30*time.Second, "every record acknowledged", func() bool { return covered(out.ackedDocs(), markers) })
	namespace := bridge.srv.Listener.Addr().String()
	waitFor(t, 10*time.Second, "checkpoints at the last message of every partition", func() bool {
		cps := namespaceCheckpoints(t, az, namespace, testContainer(t))
		return len(cps) == 4 && cps["0"] == 2 && cps["1"] == 2 && cps["2"] == 2 && cps["3"] == 2
	})
	in.stop(t)
	if n, ok := seen.only(azuritetest.AccountHost, storageAudience); n == 0 || !ok {
		t.Fatalf("checkpoint requests by host %v, by token audience %v", seen.hosts, seen.audiences)
	}

	cfg, err := configure(confFrom(settings))
	if err != nil {
		t.Fatal(err)
	}
	if err := probe(t.Context(), cfg, tune, testLogger(t)); err != nil {
		t.Fatalf("probe: %v", err)
	}

	late := cursortest.StartSim(t, simulator.Config{Seed: 35, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	tune.credential = trustSimulator(late)
	lateSettings := entraHubSettings(t, hub, bridge, late)
	lateCfg, err := configure(confFrom(lateSettings))
	if err != nil {
		t.Fatal(err)
	}
	err = probe(t.Context(), lateCfg, tune, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "checkpoint container") || !strings.Contains(err.Error(), "refused the Entra ID token (Lifetime validation failed. The token is expired.)") {
		t.Fatalf("probe with expired tokens: %v", err)
	}
}

// bridgeTuning is testTuning trusting the WebSocket bridge's certificate.
func bridgeTuning(bridge *webSocketBridge) tuning {
	tune := testTuning()
	tune.tls = bridge.srv.Client().Transport.(*http.Transport).TLSClientConfig
	return tune
}

// entraHubSettings are an event input's options signing in with a client secret, to the hub
// through the WebSocket bridge and to the checkpoint account by its name.
func entraHubSettings(t *testing.T, hub *eventhubfake.Server, bridge *webSocketBridge, sim *simulator.Server) map[string]any {
	s := hubSettings(t, hub, nil, map[string]any{
		"auth_type": AuthClientSecret, "eventhub_namespace": bridge.srv.Listener.Addr().String(), "transport": "websocket",
		"tenant_id": sim.TenantID(), "client_id": sim.ClientID(), "client_secret": sim.ClientSecret(), "authority_host": sim.URL(),
		"checkpoint_store": StoreBlob, "storage_account": azuritetest.AccountName, "storage_account_container": testContainer(t),
	})
	delete(s, "connection_string")
	return s
}
