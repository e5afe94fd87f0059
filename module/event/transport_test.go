package event

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/elastic-agent-libs/transport/tlscommon"
	"golang.org/x/net/websocket"

	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// webSocketBridge is what Event Hubs serves on port 443: AMQP inside WebSocket frames (over
// TLS), here forwarded to the fake's plain AMQP port.
type webSocketBridge struct {
	srv         *httptest.Server
	connections atomic.Int64
	protocols   atomic.Value // the last Sec-WebSocket-Protocol asked for
}

func startWebSocketBridge(t *testing.T, hub *eventhubfake.Server) *webSocketBridge {
	t.Helper()
	b := &webSocketBridge{}
	ws := websocket.Server{
		Handshake: func(cfg *websocket.Config, r *http.Request) error {
			if r.URL.Path != "/$servicebus/websocket" {
				return websocket.ErrBadRequestMethod
			}
			b.protocols.Store(strings.Join(cfg.Protocol, ","))
			cfg.Protocol = []string{"AMQPWSB10"}
			return nil
		},
		Handler: func(conn *websocket.Conn) {
			b.connections.Add(1)
			conn.PayloadType = websocket.BinaryFrame
			upstream, err := net.Dial("tcp", hub.Addr())
			if err != nil {
				return
			}
			defer upstream.Close()
			go func() { _, _ = io.Copy(upstream, conn) }()
			_, _ = io.Copy(conn, upstream)
		},
	}
	b.srv = httptest.NewTLSServer(ws)
	t.Cleanup(b.srv.Close)
	return b
}

// Entra ID authentication (client_secret, the shared credential code) with AMQP over
// WebSockets: the token comes from the simulated authority, the records through the bridge.
func TestClientSecretOverWebSocket(t *testing.T) {
	hub := startHub(t, eventhubfake.Config{})
	bridge := startWebSocketBridge(t, hub)
	sim, err := simulator.Start(simulator.Config{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	tune := testTuning()
	roots := x509.NewCertPool()
	roots.AddCert(bridge.srv.Certificate())
	tune.tls = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tune.credential = func(o *msapi.Options) {
		o.SSL = &tlscommon.Config{CAs: []string{sim.CAFile()}}
	}
	settings := hubSettings(t, hub, nil, map[string]any{
		"auth_type": "client_secret", "connection_string": "",
		"eventhub_namespace": bridge.srv.Listener.Addr().String(), "transport": "websocket",
		"tenant_id": sim.TenantID(), "client_id": sim.ClientID(), "client_secret": sim.ClientSecret(), "authority_host": sim.URL(),
	})
	delete(settings, "connection_string")
	markers := sendMessages(t, hub, "ws", 4, 2, 2)
	states, _ := registry{t.TempDir()}.open(t)
	out := newOutput(t)
	in := startInput(t, settings, tune, states, out)
	waitFor(t, 30*time.Second, "every record over WebSockets", func() bool { return covered(out.ackedDocs(), markers) })
	in.stop(t)

	if bridge.connections.Load() == 0 || bridge.protocols.Load() != "AMQPWSB10" {
		t.Fatalf("%d WebSocket connections, protocol %v", bridge.connections.Load(), bridge.protocols.Load())
	}
	tokens := 0
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/oauth2/v2.0/token") && r.Status == http.StatusOK {
			tokens++
		}
	}
	if tokens == 0 {
		t.Fatal("no token was acquired from the authority")
	}
}
