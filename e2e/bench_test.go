package e2e

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

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
		for len(readDocs(b, out)) < alerts {
			if time.Now().After(deadline) {
				b.Fatal("not every alert arrived")
			}
			time.Sleep(20 * time.Millisecond)
		}
		b.StopTimer()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	b.ReportMetric(float64(alerts*b.N)/b.Elapsed().Seconds(), "alerts/s")
}
