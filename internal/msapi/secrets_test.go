package msapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Fragments of credentials that must never be found in a log line or an error.
var leaks = []string{"SASsignatureVALUE", testSecret, url.QueryEscape(testSecret), testProxyPassword, "Bearer tok-"}

const testProxyPassword = "Pr0xyPa55word"

func assertNoSecrets(t *testing.T, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, leak := range leaks {
			if strings.Contains(text, leak) {
				t.Fatalf("%q leaks:\n%s", leak, text)
			}
		}
	}
}

// rawListener accepts TCP connections on 127.0.0.1 and hands each to serve.
func rawListener(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return "https://" + l.Addr().String()
}

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// resetConn closes a connection with a TCP RST instead of a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// cutMidBody answers 200, sends the start of a body and then resets the connection.
func cutMidBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `{"value":[{"id":"r0"},`)
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		resetConn(tc.NetConn())
		return
	}
	conn.Close()
}

func stallMidBody(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `{"value":[{"id":"r0"},`)
	w.(http.Flusher).Flush()
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func stallBeforeHeaders(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// TestConnectionFailuresLeakNoSecrets forces every kind of connection-level failure on export
// downloads (SAS URLs) and on Graph pages, with the request tracer on and every log level
// captured, and finds no signature, token or secret in the logs or in the errors.
func TestConnectionFailuresLeakNoSecrets(t *testing.T) {
	failures := []struct {
		name  string
		base  func(t *testing.T) string // scheme://host:port of the failing server
		proxy bool
	}{
		{"refused", func(t *testing.T) string { return "https://" + closedPort(t) }, false},
		{"refused by the proxy", func(t *testing.T) string { return "https://" + closedPort(t) }, true},
		{"reset during the handshake", func(t *testing.T) string { return rawListener(t, resetConn) }, false},
		{"not TLS", func(t *testing.T) string {
			return rawListener(t, func(c net.Conn) {
				io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
				c.Close()
			})
		}, false},
		{"certificate for another host", func(t *testing.T) string {
			srv := tlsServer(t, http.HandlerFunc(okPage))
			return strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
		}, false},
		{"no answer", func(t *testing.T) string { return tlsServer(t, http.HandlerFunc(stallBeforeHeaders)).URL }, false},
		{"reset mid-body", func(t *testing.T) string { return tlsServer(t, http.HandlerFunc(cutMidBody)).URL }, false},
		{"stall mid-body", func(t *testing.T) string { return tlsServer(t, http.HandlerFunc(stallMidBody)).URL }, false},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			base := f.base(t)
			var proxyURL string
			if f.proxy {
				proxyURL = "http://user:" + testProxyPassword + "@" + closedPort(t)
			}
			tune := func(o *Options) {
				o.HTTPClientTimeout = 300 * time.Millisecond
				o.MaxRetries = 1
				o.ProxyURL = proxyURL
				o.DownloadHosts = []string{"127.0.0.1", "localhost"}
			}

			t.Run("download", func(t *testing.T) {
				e := newEnv(t, okPage, tune)
				rc, err := e.client.Download(context.Background(), base+"/tvm-export/part-0.json.gz"+sasQuery, 300*time.Millisecond)
				if err == nil {
					_, err = io.ReadAll(rc)
					rc.Close()
				}
				if err == nil {
					t.Fatal("the download did not fail")
				}
				logs := allLogText(e.logs)
				if !strings.Contains(logs, "HTTP request") {
					t.Fatalf("the tracer logged nothing; the check proves nothing:\n%s", logs)
				}
				assertNoSecrets(t, logs, err.Error(), fmt.Sprintf("%+v", err), Explain(err))
			})

			t.Run("graph page", func(t *testing.T) {
				e := newEnv(t, okPage, func(o *Options) {
					tune(o)
					o.RequestURL = base
				})
				// Any URL the client is given may carry a credential in its query.
				_, err := e.client.StreamPage(context.Background(), "/v1.0/security/alerts_v2?$top=10&sig=SASsignatureVALUE%3D", nil, nil,
					func(json.RawMessage) error { return nil })
				if err == nil {
					t.Fatal("the page did not fail")
				}
				logs := allLogText(e.logs)
				if !strings.Contains(logs, "HTTP request") {
					t.Fatalf("the tracer logged nothing; the check proves nothing:\n%s", logs)
				}
				assertNoSecrets(t, logs, err.Error(), fmt.Sprintf("%+v", err), Explain(err))
			})
		})
	}
}

// TestTraceRedactsSASURLsInBodiesAndHeaders: the export answer lists SAS URLs (JSON escapes
// their '&' as \u0026) and a redirect names one in Location; the tracer logs both redacted.
func TestTraceRedactsSASURLsInBodiesAndHeaders(t *testing.T) {
	const file = "https://tvmexportstrstgeus.blob.core.windows.net/tvm-export/part-0.json.gz" + sasQuery
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Location", file)
		writeJSON(w, http.StatusOK, map[string]any{"exportFiles": []string{file, file}, "generatedTime": "2025-01-01T00:00:00Z"})
	}, nil)
	resp, err := e.client.Get(context.Background(), "/api/machines/SoftwareVulnerabilitiesExport", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Body), "SASsignatureVALUE") {
		t.Fatal("the caller must still get the real URLs")
	}
	logs := allLogText(e.logs)
	if !strings.Contains(logs, "exportFiles") || !strings.Contains(logs, "Content-Location") {
		t.Fatalf("the trace does not show the answer; the check proves nothing:\n%s", logs)
	}
	assertNoSecrets(t, logs)
}

// TestManagedIdentitySecretHeadersRedactedInTrace: App Service (X-IDENTITY-HEADER), Service
// Fabric and Azure ML (secret) authenticate to their local identity endpoint with a header whose
// value is a credential.
func TestManagedIdentitySecretHeadersRedactedInTrace(t *testing.T) {
	const headerSecret = "IdentityHeaderS3cretValue"
	for _, tc := range []struct {
		name, header string
		env          map[string]string
	}{
		{"app service", "X-Identity-Header", map[string]string{"IDENTITY_ENDPOINT": "/msi/token", "IDENTITY_HEADER": headerSecret}},
		{"service fabric", "Secret", map[string]string{"IDENTITY_ENDPOINT": "/msi/token", "IDENTITY_HEADER": headerSecret, "IDENTITY_SERVER_THUMBPRINT": "0123456789abcdef"}},
		{"azure ml", "Secret", map[string]string{"MSI_ENDPOINT": "/msi/token", "MSI_SECRET": headerSecret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			identity := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Get(tc.header)
				writeJSON(w, http.StatusOK, map[string]string{
					"access_token": "mi-token-value",
					"expires_on":   fmt.Sprint(time.Now().Add(time.Hour).Unix()),
					"resource":     r.URL.Query().Get("resource"),
					"token_type":   "Bearer",
				})
			}))
			for _, k := range []string{"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"} {
				t.Setenv(k, "")
			}
			for k, v := range tc.env {
				if strings.HasSuffix(k, "ENDPOINT") {
					v = identity.URL + v
				}
				t.Setenv(k, v)
			}
			e := newEnv(t, okPage, func(o *Options) { o.AuthType, o.TenantID, o.ClientSecret = AuthManagedIdentity, "", "" })
			if err := e.client.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got != headerSecret {
				t.Fatalf("the identity endpoint got %s %q: the test does not exercise that source", tc.header, got)
			}
			logs := allLogText(e.logs)
			if !strings.Contains(logs, tc.header+": "+redacted) {
				t.Fatalf("trace lacks %q:\n%s", tc.header+": "+redacted, logs)
			}
			if strings.Contains(logs, headerSecret) || strings.Contains(logs, "mi-token-value") {
				t.Fatalf("trace leaks the identity secret or token:\n%s", logs)
			}
		})
	}
}

// TestRedactTextCoversQuotedURLs: credentials of URLs quoted inside free text are redacted,
// wherever the text comes from; text already redacted is left as it is, so that an error
// keeps its chain (errors.As still finds what Explain looks for).
func TestRedactTextCoversQuotedURLs(t *testing.T) {
	for in, want := range map[string]string{
		`Get "https://a.blob.core.windows.net/f?sv=1&sig=abc%2B%3D&se=2": EOF`: `Get "https://a.blob.core.windows.net/f?sv=1&sig=REDACTED&se=2": EOF`,
		`{"exportFiles":["https://a/f?sv=1\u0026sig=abc%3D\u0026se=2"]}`:       `{"exportFiles":["https://a/f?sv=1\u0026sig=REDACTED\u0026se=2"]}`,
		`Location: https://a/f?SIG=abc; x`:                                     `Location: https://a/f?SIG=REDACTED; x`,
		`proxyconnect http://user:pa55@proxy:3128 failed`:                      `proxyconnect http://user:REDACTED@proxy:3128 failed`,
		`https://h/p?access_token=eyJ.x.y&code=123&$skiptoken=keep`:            `https://h/p?access_token=REDACTED&code=REDACTED&$skiptoken=keep`,
		`GET https://h/p?sig=REDACTED: connection stalled`:                     `GET https://h/p?sig=REDACTED: connection stalled`,
		`https://h:8443/p@x?signature=s`:                                       `https://h:8443/p@x?signature=REDACTED`,
	} {
		if got := redactText(in); got != want {
			t.Errorf("redactText(%s)\n got %s\nwant %s", in, got, want)
		}
	}
	err := fmt.Errorf("GET https://h/p?sig=REDACTED: %w", &IdleTimeoutError{Idle: time.Second})
	var ite *IdleTimeoutError
	if !errors.As(newScrubber(testSecret).scrubErr(err), &ite) {
		t.Fatal("scrubbing text that holds no secret lost the error chain")
	}
}
