package simulator

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"hash/fnv"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// idDigest is an order-independent digest of a set of row ids, so that a
// million ids can be compared without holding them.
type idDigest struct {
	n        int
	sum, xor uint64
}

func (d *idDigest) add(id []byte) {
	h := fnv.New64a()
	h.Write(id)
	v := mix(h.Sum64())
	d.n++
	d.sum += v
	d.xor ^= v
}

// TestLargeExportStreamsInBoundedMemory downloads a whole generation of
// 1,000,000 rows (100,000 under -race or -short) and checks every row arrives
// once while the heap stays small on both ends of the connection.
func TestLargeExportStreamsInBoundedMemory(t *testing.T) {
	devices := 10000
	if testing.Short() || raceEnabled {
		devices = 1000
	}
	now := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	s, err := Start(Config{Seed: 3, Now: func() time.Time { return now }, MDE: MDEConfig{
		Devices: devices, SoftwarePerDevice: 50, CVEsPerSoftware: 2, Files: 4, DisableThrottling: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM())
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	var want idDigest
	for id := range s.ExportRowIDs() {
		want.add([]byte(id))
	}
	if want.n != devices*100 || s.ExportRows() != want.n {
		t.Fatalf("ExportRowIDs gave %d ids, ExportRows %d", want.n, s.ExportRows())
	}

	tok := s.tokens.issue(normalizeAudience(mdeAudienceOf(s.MDEScope())), now)
	req, _ := http.NewRequest(http.MethodGet, s.URL()+mdeExportPath, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer struct{ ExportFiles []string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != 200 {
		t.Fatalf("export call: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	runtime.GC()
	var ms runtime.MemStats
	var peak uint64
	sample := func() {
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	sample()
	var got idDigest
	idKey := []byte(`"Id":"`)
	started := time.Now()
	for _, f := range answer.ExportFiles {
		resp, err := c.Get(f)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("download: %v %v", err, resp)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			line := sc.Bytes()
			i := bytes.Index(line, idKey)
			if i < 0 {
				t.Fatalf("row without Id: %s", line)
			}
			rest := line[i+len(idKey):]
			got.add(rest[:bytes.IndexByte(rest, '"')])
			if got.n%100000 == 0 {
				sample()
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	elapsed := time.Since(started)
	sample()
	if got != want {
		t.Fatalf("downloaded %d rows (digest %x/%x), want %d (%x/%x)", got.n, got.sum, got.xor, want.n, want.sum, want.xor)
	}
	rate := float64(got.n) / elapsed.Seconds()
	t.Logf("%d rows in %v (%.0f rows/s), peak HeapInuse %.1f MB", got.n, elapsed.Round(time.Millisecond), rate, float64(peak)/(1<<20))
	if peak > 50<<20 {
		t.Errorf("peak HeapInuse %.1f MB while streaming, want < 50 MB", float64(peak)/(1<<20))
	}
}

func mdeAudienceOf(scope string) string { return scope[:len(scope)-len("/.default")] }

// BenchmarkExportFile measures generating and compressing export rows.
func BenchmarkExportFile(b *testing.B) {
	m := newMDEState(MDEConfig{Devices: 1000, SoftwarePerDevice: 50, CVEsPerSoftware: 2, Files: 1}, 1, "tenant", time.Now())
	gen := m.current(time.Now())
	w := &discardResponse{h: http.Header{}}
	b.ResetTimer()
	for range b.N {
		m.streamFile(w, gen, 0, m.rows(), streamPlan{cutAfterBytes: -1, cutAfterRow: -1, badRow: -1})
	}
	b.ReportMetric(float64(b.N*m.rows())/b.Elapsed().Seconds(), "rows/s")
	b.SetBytes(int64(w.n / b.N))
}

type discardResponse struct {
	h http.Header
	n int
}

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) WriteHeader(int)             {}
func (d *discardResponse) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

func TestDeltaTicksOlderThanTheAPIReachAreForgotten(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	m := newMDEState(MDEConfig{DeltaChangesPerTick: 4}, 9, "tenant", t0)
	m.tick(t0)
	m.tick(t0.Add(time.Hour))
	row := newMDERow()
	m.deltaRow(row, m.deltaTicks[1], 2)
	before := string(row.appendJSON(nil, false))

	m.tick(t0.Add(14*24*time.Hour + 6*time.Hour + 30*time.Minute))
	if len(m.deltaTicks) != 2 || m.deltaTotal != 12 || m.deltaTicks[0].number != 1 {
		t.Fatalf("after 14 days and 6.5 hours: %d ticks kept (first #%d), %d rows counted; want 2 ticks from #1 and 12 rows",
			len(m.deltaTicks), m.deltaTicks[0].number, m.deltaTotal)
	}
	m.deltaRow(row, m.deltaTicks[0], 2)
	if after := string(row.appendJSON(nil, false)); after != before {
		t.Fatalf("a kept tick's rows changed when older ticks were forgotten:\n%s\n%s", before, after)
	}
}
