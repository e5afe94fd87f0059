package eventhubfake_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

// BenchmarkPartitionClientReceive measures how many events per second the fake delivers to one
// PartitionClient (default prefetch) over loopback: the ceiling of any end-to-end number
// measured against this rig. Events are stored before the timer starts, so only delivery and
// the SDK's decoding are timed.
func BenchmarkPartitionClientReceive(b *testing.B) {
	for _, size := range []int{1024, 32 * 1024} {
		b.Run(fmt.Sprintf("body=%dB", size), func(b *testing.B) {
			srv := startFake(b, eventhubfake.Config{
				Hubs:            []eventhubfake.HubConfig{{Name: testHub, Partitions: 1}},
				RetentionEvents: b.N + 1, RetentionBytes: int64(b.N+1) * int64(size+256),
			})
			body := make([]byte, size)
			chunk := make([][]byte, 0, 1000)
			for sent := 0; sent < b.N; sent += len(chunk) {
				chunk = chunk[:0]
				for i := sent; i < b.N && len(chunk) < cap(chunk); i++ {
					chunk = append(chunk, body)
				}
				if err := srv.Send(testHub, "0", chunk...); err != nil {
					b.Fatal(err)
				}
			}
			cc := newConsumer(b, srv, azeventhubs.DefaultConsumerGroup)
			pc := newPartitionClient(b, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for got := 0; got < b.N; {
				evs, err := pc.ReceiveEvents(ctx, min(1000, b.N-got), nil)
				if err != nil {
					b.Fatal(err)
				}
				got += len(evs)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
