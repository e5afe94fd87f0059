package msapi

import (
	"bytes"
	"context"
	"errors"
	"io"
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
