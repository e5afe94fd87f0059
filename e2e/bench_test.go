package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/procstat"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// BenchmarkAlertsEndToEnd measures alerts per second through the real binary: token, Graph paging
// against the simulator, transform, libbeat pipeline and the file output. Each iteration is one
// fresh beat collecting every alert of the tenant.
func BenchmarkAlertsEndToEnd(b *testing.B) {
	const alerts = 5000
	sim, err := simulator.Start(simulator.Config{Seed: 41, Alerts: alerts, Incidents: 5})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		out := b.TempDir()
		cfg := writeConfigB(b, map[string]any{
			"defenderbeat.inputs": []any{simInput(sim, "defender-alert", "bench", sim.ClientSecret(), map[string]any{"initial_interval": "72h"})},
			"output.file":         map[string]any{"path": out, "filename": "docs", "rotate_every_kb": 1 << 20},
			"queue.mem":           map[string]any{"flush.timeout": "50ms"},
		})
		cmd := exec.Command(binary, "-c", cfg, "--path.home", b.TempDir())
		b.StartTimer()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		for countLines(b, out) < alerts {
			if time.Now().After(deadline) {
				b.Fatal("not every alert arrived")
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.StopTimer()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	b.ReportMetric(float64(alerts*b.N)/b.Elapsed().Seconds(), "alerts/s")
}

// countLines counts complete documents without decoding them, so polling costs the beat little CPU.
func countLines(t testing.TB, dir string) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(raw, []byte("\n"))
	}
	return n
}

// BenchmarkIncidentsWithManyAlerts collects 50 incidents of 400 alerts each (20,000 documents,
// pages of tens of MB) and reports the beat's peak resident memory next to its throughput.
func BenchmarkIncidentsWithManyAlerts(b *testing.B) {
	incidents, perIncident := 50, benchAlertsPerIncident()
	sim, err := simulator.Start(simulator.Config{Seed: 42, Incidents: incidents, AlertsPerIncident: perIncident})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	var peak int
	for range b.N {
		b.StopTimer()
		out := b.TempDir()
		cfg := writeConfigB(b, map[string]any{
			"defenderbeat.inputs": []any{simInput(sim, "defender-incident", "bench", sim.ClientSecret(), map[string]any{"initial_interval": "72h"})},
			"output.file":         map[string]any{"path": out, "filename": "docs", "rotate_every_kb": 4 << 20},
			"queue.mem":           map[string]any{"flush.timeout": "50ms"},
		})
		cmd := exec.Command(binary, "-c", cfg, "--path.home", b.TempDir())
		b.StartTimer()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for countLines(b, out) < incidents*perIncident {
			if time.Now().After(deadline) {
				b.Fatal("not every document arrived")
			}
			time.Sleep(200 * time.Millisecond)
		}
		b.StopTimer()
		if kib, err := procstat.PeakRSSKiB(cmd.Process.Pid); err == nil {
			peak = max(peak, int(kib))
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	b.ReportMetric(float64(incidents*perIncident*b.N)/b.Elapsed().Seconds(), "docs/s")
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
}

// benchAlertsPerIncident is 400 unless DEFENDERBEAT_BENCH_ALERTS_PER_INCIDENT says otherwise, so
// memory can be compared across incident sizes.
func benchAlertsPerIncident() int {
	if n, err := strconv.Atoi(os.Getenv("DEFENDERBEAT_BENCH_ALERTS_PER_INCIDENT")); err == nil && n > 0 {
		return n
	}
	return 400
}
