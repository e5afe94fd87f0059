package event

import (
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// BenchmarkStorageReadBlob reads one large blob of the simulated storage account through the
// whole input (listing, one ranged read, line splitting, processing, cursor publishing) into
// an output that ACKs at once; records/s is reported. Numbers belong in docs/benchmarks.md.
func BenchmarkStorageReadBlob(b *testing.B) {
	sim := cursortest.StartSim(b, simulator.Config{Seed: 9, Streaming: &simulator.StreamingConfig{Storage: true}})
	const table = "Bench"
	records, err := sim.PutLargeTableBlob(table, time.Now(), 64<<20)
	if err != nil {
		b.Fatal(err)
	}
	settings := map[string]any{"storage_account_connection_string": sim.StorageConnectionString(), "tables": []string{table}, "interval": "1h"}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		h := cursortest.New(b)
		h.Discard = true
		var errors int
		h.OnEvent = func(ev beat.Event) {
			if kind, _ := ev.Fields.GetValue("event.kind"); kind == "pipeline_error" {
				errors++
			}
		}
		settings["id"] = "bench-" + string(rune('a'+i%26))
		h.Run(storagePlugin(defaultStorageTuning()), settings, 10*time.Minute, func() bool { return int64(h.Count()) >= records })
		if errors > 0 {
			b.Fatalf("%d error documents", errors)
		}
	}
	b.ReportMetric(float64(records)*float64(b.N)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(64<<20)*float64(b.N)/time.Since(start).Seconds()/(1<<20), "MB/s")
}
