package msapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const sasQuery = "?sv=2020-08-04&se=2030-01-01&sig=SASsignatureVALUE%3D"

func TestDownloadWithoutBearerToken(t *testing.T) {
	payload := bytes.Repeat([]byte(`{"DeviceId":"d1"}`+"\n"), 5000)
	var calls atomic.Int64
	var sawAuth atomic.Value
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth.Store(r.Header.Get("Authorization"))
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(payload)
	}))
	e := newEnv(t, okPage, nil)
	rc, err := e.client.Download(context.Background(), blob.URL+"/tvm-export/part-0.json.gz"+sasQuery, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes, err %v", len(got), err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d attempts, want a retry after 503", calls.Load())
	}
	if sawAuth.Load() != "" {
		t.Fatalf("download sent Authorization %q", sawAuth.Load())
	}
	if e.login.issued.Load() != 0 {
		t.Fatal("a token was acquired for a SAS download")
	}
	logs := allLogText(e.logs)
	if !strings.Contains(logs, "sig="+redacted) || strings.Contains(logs, "SASsignature") {
		t.Fatalf("SAS signature not redacted in trace:\n%s", logs)
	}
}

func TestDownloadIdleTimeoutMidBody(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first bytes\n"))
		w.(http.Flusher).Flush()
		select { // stall
		case <-r.Context().Done():
		case <-release:
		}
	}))
	e := newEnv(t, okPage, nil)
	rc, err := e.client.Download(context.Background(), blob.URL+"/f"+sasQuery, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	start := time.Now()
	got, err := io.ReadAll(rc)
	var ite *IdleTimeoutError
	if !errors.As(err, &ite) {
		t.Fatalf("err = %v, want *IdleTimeoutError", err)
	}
	if string(got) != "first bytes\n" {
		t.Fatalf("got %q before the stall", got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("idle timeout took %v", d)
	}
}

func TestDownloadSlowButProgressingIsNotCut(t *testing.T) {
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 6 {
			w.Write([]byte("chunk\n"))
			w.(http.Flusher).Flush()
			time.Sleep(200 * time.Millisecond)
		}
	}))
	e := newEnv(t, okPage, nil)
	// Total time (~1.2s) exceeds the idle timeout; progress keeps it alive.
	rc, err := e.client.Download(context.Background(), blob.URL+"/f", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || strings.Count(string(got), "chunk") != 6 {
		t.Fatalf("got %q, err %v", got, err)
	}
}

func TestDownloadStallBeforeHeadersIsRetried(t *testing.T) {
	var calls atomic.Int64
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Write([]byte("ok"))
	}))
	e := newEnv(t, okPage, nil)
	rc, err := e.client.Download(context.Background(), blob.URL+"/f", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); string(got) != "ok" || calls.Load() != 2 {
		t.Fatalf("got %q after %d attempts", got, calls.Load())
	}
}

func TestDownloadExpiredSAS(t *testing.T) {
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0"?><Error><Code>AuthenticationFailed</Code><Message>Signature not valid in the specified time frame</Message></Error>`)
	}))
	e := newEnv(t, okPage, nil)
	_, err := e.client.Download(context.Background(), blob.URL+"/f"+sasQuery, time.Second)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 403 || !ae.Download {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(ae.Message, "Signature not valid") || strings.Contains(err.Error(), "SASsignature") {
		t.Fatalf("error text: %v", err)
	}
	if !strings.Contains(Explain(err), "SAS") {
		t.Fatalf("Explain = %q", Explain(err))
	}
	if _, err := e.client.Download(context.Background(), "http://example.com/f", time.Second); err == nil {
		t.Fatal("plain http download accepted")
	}
}

// TestDownloadPausedReaderIsNotCut: a reader held back by its output (backpressure) for longer
// than the idle timeout must find the download still alive; only waiting for data counts.
func TestDownloadPausedReaderIsNotCut(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, more than socket buffers
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(payload)
	}))
	e := newEnv(t, okPage, nil)
	rc, err := e.client.Download(context.Background(), blob.URL+"/f"+sasQuery, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	first := make([]byte, 1024)
	if _, err := io.ReadFull(rc, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond) // the consumer is busy
	rest, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("download cut while the reader paused: %v", err)
	}
	if got := append(first, rest...); !bytes.Equal(got, payload) {
		t.Fatalf("read %d of %d bytes", len(got), len(payload))
	}
}

// TestDownloadRefusesHostsOutsideCloudStorage: export file URLs come from the API's answer; only
// the configured cloud's blob storage hosts (or download_hosts) are fetched, and the refusal
// names the host, never the signature.
func TestDownloadRefusesHostsOutsideCloudStorage(t *testing.T) {
	var hits atomic.Int64
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("data"))
	}))
	e := newEnv(t, okPage, func(o *Options) { o.DownloadHosts = nil }) // the cloud's default
	_, err := e.client.Download(context.Background(), blob.URL+"/tvm-export/part-0.json.gz"+sasQuery, time.Second)
	if err == nil {
		t.Fatal("a download URL on 127.0.0.1 was fetched with the global cloud's defaults")
	}
	if hits.Load() != 0 {
		t.Fatal("the refused host was contacted")
	}
	if !strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "*.blob.core.windows.net") {
		t.Fatalf("the error does not name the host and what is allowed: %v", err)
	}
	if !strings.Contains(Explain(err), "download_hosts") {
		t.Fatalf("Explain = %q, want the option that allows a host", Explain(err))
	}
	assertNoSecrets(t, err.Error(), Explain(err), allLogText(e.logs))
}

// TestDownloadRefusesRedirectToOtherHost: a storage host that redirects elsewhere is not
// followed; a redirect within the allowed hosts is.
func TestDownloadRefusesRedirectToOtherHost(t *testing.T) {
	var elsewhere atomic.Int64
	other := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("other")) }))
	other.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			elsewhere.Add(1)
		}
	}
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	blob := tlsServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, otherURL+"/f"+sasQuery, http.StatusFound)
		case "/moved":
			http.Redirect(w, r, "/here"+sasQuery, http.StatusFound)
		default:
			w.Write([]byte("here"))
		}
	}))
	e := newEnv(t, okPage, func(o *Options) { o.DownloadHosts = []string{"127.0.0.1"} })

	_, err := e.client.Download(context.Background(), blob.URL+"/away"+sasQuery, time.Second)
	if err == nil {
		t.Fatal("a redirect to another host was followed")
	}
	if elsewhere.Load() != 0 {
		t.Fatal("the redirect's host was contacted")
	}
	if !strings.Contains(err.Error(), "localhost") {
		t.Fatalf("the error does not name the refused host: %v", err)
	}
	assertNoSecrets(t, err.Error(), Explain(err), allLogText(e.logs))

	rc, err := e.client.Download(context.Background(), blob.URL+"/moved"+sasQuery, time.Second)
	if err != nil {
		t.Fatalf("a redirect on an allowed host: %v", err)
	}
	defer rc.Close()
	if got, _ := io.ReadAll(rc); string(got) != "here" {
		t.Fatalf("got %q", got)
	}
}
