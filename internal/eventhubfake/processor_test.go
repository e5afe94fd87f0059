package eventhubfake_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2/checkpoints"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

// seen records which processor received which (partition, sequence number).
type seen struct {
	mu     sync.Mutex
	events map[string]map[int64]string // partition -> seq -> processor
	dups   int
}

func (s *seen) add(proc, partition string, evs []*azeventhubs.ReceivedEventData) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.events[partition] == nil {
		s.events[partition] = map[int64]string{}
	}
	for _, e := range evs {
		if _, dup := s.events[partition][e.SequenceNumber]; dup {
			s.dups++ // allowed (at-least-once across a hand-over), but counted for the log
		}
		s.events[partition][e.SequenceNumber] = proc
	}
}

// complete reports whether every partition has every sequence number below n.
func (s *seen) complete(partitions []string, n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range partitions {
		for seq := int64(0); seq < n; seq++ {
			if _, ok := s.events[p][seq]; !ok {
				return false
			}
		}
	}
	return true
}

// runProcessor starts a Processor whose partition clients record and checkpoint every batch;
// the returned stop function cancels it and waits until it has relinquished its partitions.
func runProcessor(t *testing.T, name string, srv *eventhubfake.Server, store azeventhubs.CheckpointStore, rec *seen) (stop func()) {
	t.Helper()
	cc, err := azeventhubs.NewConsumerClientFromConnectionString(srv.ConnectionString(testHub), "", azeventhubs.DefaultConsumerGroup,
		&azeventhubs.ConsumerClientOptions{RetryOptions: fastRetry, InstanceID: name})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := azeventhubs.NewProcessor(cc, store, &azeventhubs.ProcessorOptions{
		LoadBalancingStrategy:       azeventhubs.ProcessorStrategyBalanced,
		UpdateInterval:              300 * time.Millisecond,
		PartitionExpirationDuration: 5 * time.Second,
		StartPositions:              azeventhubs.StartPositions{Default: azeventhubs.StartPosition{Earliest: to.Ptr(true)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := proc.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", name, err)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			pc := proc.NextPartitionClient(ctx)
			if pc == nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer pc.Close(context.Background())
				for {
					rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
					evs, err := pc.ReceiveEvents(rctx, 50, nil)
					rcancel()
					if len(evs) > 0 {
						rec.add(name, pc.PartitionID(), evs)
						if err := pc.UpdateCheckpoint(context.Background(), evs[len(evs)-1], nil); err != nil {
							t.Logf("%s: checkpoint partition %s: %v", name, pc.PartitionID(), err)
						}
					}
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						var ehErr *azeventhubs.Error
						if !errors.As(err, &ehErr) || ehErr.Code != azeventhubs.ErrorCodeOwnershipLost {
							if ctx.Err() == nil {
								t.Logf("%s: partition %s: %v", name, pc.PartitionID(), err)
							}
						}
						return
					}
				}
			}()
		}
	}()
	return func() {
		cancel()
		wg.Wait()
		_ = cc.Close(context.Background())
	}
}

func ownersByProcessor(t *testing.T, store azeventhubs.CheckpointStore, ns string) map[string][]string {
	t.Helper()
	owns, err := store.ListOwnership(context.Background(), ns, testHub, azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, o := range owns {
		if o.OwnerID != "" {
			out[o.OwnerID] = append(out[o.OwnerID], o.PartitionID)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestProcessorsBalanceAndHandOverWithBlobCheckpoints(t *testing.T) {
	az := azuritetest.Start(t)
	srv := startFake(t, eventhubfake.Config{})
	ctx := ctxFor(t, 60*time.Second)

	cont, err := container.NewClientFromConnectionString(az.ConnectionString(), "checkpoints", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cont.Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	store, err := checkpoints.NewBlobStore(cont, nil)
	if err != nil {
		t.Fatal(err)
	}
	partitions := []string{"0", "1", "2", "3"}
	send := func(from, to int) {
		for _, p := range partitions {
			for i := from; i < to; i++ {
				if err := srv.Send(testHub, p, []byte(fmt.Sprintf("%s-%d", p, i))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	send(0, 10)
	ns := srv.Addr() // the SDK's fully qualified namespace keeps the port

	rec := &seen{events: map[string]map[int64]string{}}
	stopA := runProcessor(t, "proc-a", srv, store, rec)
	stopB := runProcessor(t, "proc-b", srv, store, rec)
	defer stopB()

	waitFor(t, "a 2+2 balance", 30*time.Second, func() bool {
		o := ownersByProcessor(t, store, ns)
		return len(o["proc-a"]) == 2 && len(o["proc-b"]) == 2
	})
	waitFor(t, "all first-round events", 20*time.Second, func() bool { return rec.complete(partitions, 10) })
	waitFor(t, "4 checkpoints at sequence 9", 20*time.Second, func() bool {
		cps, err := store.ListCheckpoints(ctx, ns, testHub, azeventhubs.DefaultConsumerGroup, nil)
		if err != nil || len(cps) != 4 {
			return false
		}
		for _, cp := range cps {
			if cp.SequenceNumber == nil || *cp.SequenceNumber != 9 {
				return false
			}
		}
		return true
	})

	stopA()
	send(10, 20)
	waitFor(t, "proc-b to own all 4 partitions", 30*time.Second, func() bool {
		o := ownersByProcessor(t, store, ns)
		return len(o["proc-b"]) == 4 && len(o["proc-a"]) == 0
	})
	waitFor(t, "every event of both rounds", 30*time.Second, func() bool { return rec.complete(partitions, 20) })
	rec.mu.Lock()
	for _, p := range partitions {
		for seq := int64(10); seq < 20; seq++ {
			if by := rec.events[p][seq]; by != "proc-b" {
				t.Errorf("partition %s seq %d received by %q after proc-a stopped", p, seq, by)
			}
		}
	}
	t.Logf("events received twice across the hand-over: %d", rec.dups)
	rec.mu.Unlock()
}
