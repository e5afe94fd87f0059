package eventhubfake_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

func TestServerBusyIsRetried(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	p := newProducer(t, srv)
	srv.ServerBusy(2)
	sendBatch(t, p, &azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("0")}, "once")
	recs, _ := srv.Records(testHub, "0")
	if len(recs) != 1 || string(recs[0].Body) != "once" {
		t.Fatalf("after two server-busy answers: %+v", recs)
	}
}

func TestDetachedLinksRecover(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	pc := newPartitionClient(t, cc, "2", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	p := newProducer(t, srv)
	sendBatch(t, p, &azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("2")}, "a")
	receiveN(t, pc, 1, 10*time.Second)

	if n := srv.DetachLinks("amqp:link:detach-forced", "fault injection"); n < 2 {
		t.Fatalf("detached %d links, want the producer's and the consumer's", n)
	}
	sendBatch(t, p, &azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("2")}, "b")
	ctx := ctxFor(t, 10*time.Second)
	for {
		evs, err := pc.ReceiveEvents(ctx, 1, nil)
		if len(evs) == 1 {
			if string(evs[0].Body) != "b" || evs[0].SequenceNumber != 1 {
				t.Fatalf("after detach got %q seq %d", evs[0].Body, evs[0].SequenceNumber)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no event after the detach: %v", err)
		}
	}
}

func TestClaimFaults(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)

	// 401 is fatal for the SDK: the call fails instead of retrying (v2.0.2 reports the claim's
	// RPC error as is rather than as ErrorCodeUnauthorizedAccess).
	srv.RefuseClaims(1, 401)
	_, err := cc.GetEventHubProperties(ctxFor(t, 10*time.Second), nil)
	if err == nil || !strings.Contains(err.Error(), "status code 401") {
		t.Fatalf("refused claim: want a 401 failure, got %v", err)
	}
	if _, err := cc.GetEventHubProperties(ctxFor(t, 10*time.Second), nil); err != nil {
		t.Fatalf("after the refusal: %v", err)
	}

	const delay = 300 * time.Millisecond
	srv.DelayClaims(delay)
	pc := newPartitionClient(t, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	_ = srv.Send(testHub, "0", []byte("late"))
	start := time.Now()
	receiveN(t, pc, 1, 10*time.Second)
	if took := time.Since(start); took < delay {
		t.Fatalf("receiving through a delayed claim took only %s", took)
	}
}

func TestPausePartition(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	pc := newPartitionClient(t, cc, "1", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	if err := srv.PausePartition(testHub, "1", true); err != nil {
		t.Fatal(err)
	}
	_ = srv.Send(testHub, "1", []byte("held"))
	expectNone(t, pc, 300*time.Millisecond)
	_ = srv.PausePartition(testHub, "1", false)
	if got := receiveN(t, pc, 1, 10*time.Second); string(got[0].Body) != "held" {
		t.Fatalf("got %q", got[0].Body)
	}
}

func TestRetentionBoundsPartitions(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{RetentionEvents: 3})
	for i := 0; i < 5; i++ {
		_ = srv.Send(testHub, "0", []byte(fmt.Sprintf("r-%d", i)))
	}
	recs, _ := srv.Records(testHub, "0")
	if len(recs) != 3 || recs[0].SequenceNumber != 2 {
		t.Fatalf("retained %+v", recs)
	}
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	pp, err := cc.GetPartitionProperties(ctxFor(t, 10*time.Second), "0", nil)
	if err != nil || pp.BeginningSequenceNumber != 2 || pp.LastEnqueuedSequenceNumber != 4 {
		t.Fatalf("properties %+v, %v", pp, err)
	}
	pc := newPartitionClient(t, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	if got := bodies(receiveN(t, pc, 3, 10*time.Second)); strings.Join(got, ",") != "r-2,r-3,r-4" {
		t.Fatalf("earliest after retention: %v", got)
	}

	bySize := startFake(t, eventhubfake.Config{RetentionBytes: 1000})
	for i := 0; i < 20; i++ {
		_ = bySize.Send(testHub, "0", make([]byte, 200))
	}
	recs, _ = bySize.Records(testHub, "0")
	if len(recs) == 0 || len(recs) > 5 || recs[len(recs)-1].SequenceNumber != 19 {
		t.Fatalf("byte retention kept %d events", len(recs))
	}
}

func TestSASTokensAreVerified(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{SASKeyName: "listen", SASKey: "c2VjcmV0LWtleQ=="})
	good := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	if _, err := good.GetEventHubProperties(ctxFor(t, 10*time.Second), nil); err != nil {
		t.Fatalf("valid key: %v", err)
	}
	cs := strings.Replace(srv.ConnectionString(testHub), "c2VjcmV0LWtleQ==", "d3Jvbmc=", 1)
	bad, err := azeventhubs.NewConsumerClientFromConnectionString(cs, "", azeventhubs.DefaultConsumerGroup, &azeventhubs.ConsumerClientOptions{RetryOptions: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close(context.Background())
	_, err = bad.GetEventHubProperties(ctxFor(t, 10*time.Second), nil)
	if err == nil || !strings.Contains(err.Error(), "status code 401") || strings.Contains(err.Error(), "d3Jvbmc") {
		t.Fatalf("wrong key: want a 401 failure that does not echo the key, got %v", err)
	}
}

func TestReceiverLimitAndUnknownEntities(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	_ = srv.Send(testHub, "0", []byte("x"))
	for i := 0; i < 5; i++ {
		pc := newPartitionClient(t, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
		receiveN(t, pc, 1, 10*time.Second)
	}
	sixth := newPartitionClient(t, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	if _, err := sixth.ReceiveEvents(ctxFor(t, 10*time.Second), 1, nil); err == nil {
		t.Fatal("a sixth receiver without epoch was accepted")
	}
	// Another consumer group has its own limit.
	other := newPartitionClient(t, newConsumer(t, srv, "other"), "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	receiveN(t, other, 1, 10*time.Second)

	missingGroup := newPartitionClient(t, newConsumer(t, srv, "nope"), "0", nil)
	if _, err := missingGroup.ReceiveEvents(ctxFor(t, 10*time.Second), 1, nil); err == nil {
		t.Fatal("unknown consumer group accepted")
	}
	missingPartition := newPartitionClient(t, cc, "17", nil)
	if _, err := missingPartition.ReceiveEvents(ctxFor(t, 10*time.Second), 1, nil); err == nil {
		t.Fatal("unknown partition accepted")
	}
}

func TestMaxMessageSizeReachesTheSDK(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{MaxMessageSize: 2048})
	p := newProducer(t, srv)
	batch, err := p.NewEventDataBatch(ctxFor(t, 10*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.AddEventData(&azeventhubs.EventData{Body: make([]byte, 4096)}, nil); !errors.Is(err, azeventhubs.ErrEventDataTooLarge) {
		t.Fatalf("want ErrEventDataTooLarge, got %v", err)
	}
}

// TestLinkChurn opens and closes partition clients in quick succession: the SDK reuses channel
// and handle numbers at once, so a frame sent after an end or detach would break the
// connection (startFake fails the test on any protocol error the fake logs).
func TestLinkChurn(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	for i := 0; i < 200; i++ {
		_ = srv.Send(testHub, "0", []byte(fmt.Sprintf("c-%d", i)))
	}
	for i := 0; i < 15; i++ {
		pc, err := cc.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
		if err != nil {
			t.Fatal(err)
		}
		// Credit 300 and 200 queued events: the fake is mid-stream when the client closes.
		got := receiveN(t, pc, 1, 10*time.Second)
		if got[0].SequenceNumber != 0 {
			t.Fatalf("round %d started at %d", i, got[0].SequenceNumber)
		}
		if err := pc.Close(ctxFor(t, 10*time.Second)); err != nil {
			t.Fatalf("round %d close: %v", i, err)
		}
	}
	if _, err := cc.GetEventHubProperties(ctxFor(t, 10*time.Second), nil); err != nil {
		t.Fatalf("connection unusable after churn: %v", err)
	}
}
