package msapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// bigRecords are records large enough that a page of them cannot sit whole in socket buffers:
// the client really is reading from the network while its consumer is slow.
func bigRecords(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"id":"r%d","pad":"%s"}`, i, strings.Repeat("x", 256<<10))
	}
	return out
}

func writePage(w http.ResponseWriter, records []string, pause time.Duration) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `{"value":[`)
	for i, rec := range records {
		if i > 0 {
			io.WriteString(w, ",")
		}
		io.WriteString(w, rec)
		if pause > 0 {
			w.(http.Flusher).Flush()
			time.Sleep(pause)
		}
	}
	io.WriteString(w, `]}`)
}

// TestStreamedPageSurvivesConsumerSlowerThanClientTimeout: a consumer held back by its output
// (or by CVE lookups) longer than http_client_timeout between two records still gets the whole
// page. Only waiting on the network counts against the timeout.
func TestStreamedPageSurvivesConsumerSlowerThanClientTimeout(t *testing.T) {
	records := bigRecords(12) // 3 MiB
	for _, tracer := range []bool{false, true} {
		t.Run(fmt.Sprintf("tracer=%v", tracer), func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) { writePage(w, records, 0) }, func(o *Options) {
				o.HTTPClientTimeout = 300 * time.Millisecond
				o.EnableRequestTracer = tracer
			})
			if err := e.client.Token(context.Background()); err != nil {
				t.Fatal(err)
			}
			var got []string
			info, err := e.client.StreamPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil, func(raw json.RawMessage) error {
				var rec struct{ ID string }
				if err := json.Unmarshal(raw, &rec); err != nil {
					return err
				}
				got = append(got, rec.ID)
				if len(got) == 1 || len(got) == 6 {
					time.Sleep(900 * time.Millisecond) // the output is full
				}
				return nil
			})
			if err != nil {
				t.Fatalf("page cut while the consumer was busy, after %d records: %v", len(got), err)
			}
			if info.Records != len(records) || len(got) != len(records) || got[len(got)-1] != "r11" {
				t.Fatalf("read %d records (%v), want %d", len(got), got, len(records))
			}
			if e.api.count() != 1 {
				t.Fatalf("%d requests, want 1", e.api.count())
			}
		})
	}
}

// TestStreamedPageTricklingLongerThanClientTimeoutIsRead: a page whose body arrives slowly but
// steadily, for longer than http_client_timeout in total, is read whole.
func TestStreamedPageTricklingLongerThanClientTimeoutIsRead(t *testing.T) {
	records := make([]string, 8)
	for i := range records {
		records[i] = fmt.Sprintf(`{"id":"r%d"}`, i)
	}
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) { writePage(w, records, 120*time.Millisecond) }, func(o *Options) {
		o.HTTPClientTimeout = 400 * time.Millisecond
		o.EnableRequestTracer = false
	})
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	page, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
	if err != nil {
		t.Fatalf("a slow but steady page (~1s, never idle 400ms) was cut: %v", err)
	}
	if len(page.Values) != len(records) {
		t.Fatalf("read %d records, want %d", len(page.Values), len(records))
	}
}

// TestStreamedPageStalledMidBodyFailsClearly: a server that stops sending in the middle of a
// page for longer than the idle timeout fails the page with an error that says so, after handing
// over the records that did arrive.
func TestStreamedPageStalledMidBodyFailsClearly(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"value":[{"id":"r0"},`)
		w.(http.Flusher).Flush()
		select { // stall
		case <-r.Context().Done():
		case <-release:
		}
	}, func(o *Options) {
		o.HTTPClientTimeout = 300 * time.Millisecond
		o.EnableRequestTracer = false
	})
	var got int
	_, err := e.client.StreamPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil, func(json.RawMessage) error {
		got++
		return nil
	})
	var ite *IdleTimeoutError
	if !errors.As(err, &ite) || ite.Idle != 300*time.Millisecond {
		t.Fatalf("err = %v, want *IdleTimeoutError of 300ms", err)
	}
	if got != 1 {
		t.Fatalf("%d records handed over before the stall, want 1", got)
	}
	for _, want := range []string{"/v1.0/security/alerts_v2", "after 1 record", "no data received for 300ms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "malformed") {
		t.Errorf("a stalled connection is reported as a malformed page: %v", err)
	}
	if hint := Explain(err); !strings.Contains(hint, "http_client_timeout") {
		t.Errorf("Explain = %q, want it to name http_client_timeout", hint)
	}
}

// TestRequestWithoutAnswerStillTimesOut: the wait for the answer's headers keeps its deadline.
func TestRequestWithoutAnswerStillTimesOut(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}, func(o *Options) {
		o.HTTPClientTimeout = 300 * time.Millisecond
		o.MaxRetries = 1
	})
	if err := e.client.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := e.client.GetPage(context.Background(), "/v1.0/security/alerts_v2", nil, nil)
	var ite *IdleTimeoutError
	if !errors.As(err, &ite) {
		t.Fatalf("err = %v, want *IdleTimeoutError", err)
	}
	if e.api.count() != 2 {
		t.Fatalf("%d attempts, want 2 (max_retries 1)", e.api.count())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}
