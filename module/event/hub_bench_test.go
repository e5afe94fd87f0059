package event

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

// BenchmarkReadHub measures the input alone: records from the Event Hubs fake (4 partitions,
// 40 records a message) to acknowledged documents, with local checkpoints and an output that
// acknowledges at once. It includes whatever processing Transform does.
func BenchmarkReadHub(b *testing.B) {
	const partitions, messages, perMessage = 4, 100, 40
	body := func(p, m int) []byte {
		recs := make([]any, perMessage)
		for r := range recs {
			recs[r] = streamRecord(fmt.Sprintf("b-%d-%d-%d", p, m, r))
		}
		out, _ := json.Marshal(map[string]any{"records": recs})
		return out
	}
	for range b.N {
		b.StopTimer()
		hub := startHub(b, eventhubfake.Config{RetentionBytes: 64 << 20})
		states, closeReg := registry{b.TempDir()}.open(b)
		out := newOutput(b)
		in := startInput(b, hubSettings(b, hub, nil, map[string]any{"partition_receive_count": 100}), testTuning(), states, out)
		// Measure reading, not balancing: every partition owned, the backlog queued behind a pause.
		waitFor(b, time.Minute, "all partitions owned", func() bool { return in.metric("partitions_owned") == partitions })
		for p := range partitions {
			_ = hub.PausePartition(testHub, fmt.Sprint(p), true)
			for m := range messages {
				if err := hub.Send(testHub, fmt.Sprint(p), body(p, m)); err != nil {
					b.Fatal(err)
				}
			}
		}
		total := partitions * messages * perMessage
		b.StartTimer()
		start := time.Now()
		for p := range partitions {
			_ = hub.PausePartition(testHub, fmt.Sprint(p), false)
		}
		waitFor(b, 2*time.Minute, "every record", func() bool { return out.ackedCount() >= total })
		elapsed := time.Since(start)
		b.StopTimer()
		in.stop(b)
		closeReg()
		_ = hub.Close()
		b.ReportMetric(float64(total)/elapsed.Seconds(), "records/s")
	}
}
