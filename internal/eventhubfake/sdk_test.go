package eventhubfake_test

// Contract tests: the pinned, unmodified azeventhubs/v2 SDK against the fake.

import (
	"bytes"
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

const testHub = "defender"

var fastRetry = azeventhubs.RetryOptions{MaxRetries: 8, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond}

func startFake(t testing.TB, cfg eventhubfake.Config) *eventhubfake.Server {
	t.Helper()
	if len(cfg.Hubs) == 0 {
		cfg.Hubs = []eventhubfake.HubConfig{{Name: testHub, Partitions: 4, ConsumerGroups: []string{"other"}}}
	}
	cfg.Logf = func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		// Protocol errors mean the fake and the SDK disagree about AMQP: always a failure.
		if strings.HasPrefix(msg, "protocol") || strings.HasPrefix(msg, "encoding") {
			t.Errorf("fake: %s", msg)
			return
		}
		t.Log("fake: " + msg)
	}
	srv, err := eventhubfake.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func newProducer(t testing.TB, srv *eventhubfake.Server) *azeventhubs.ProducerClient {
	t.Helper()
	p, err := azeventhubs.NewProducerClientFromConnectionString(srv.ConnectionString(testHub), "", &azeventhubs.ProducerClientOptions{RetryOptions: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func newConsumer(t testing.TB, srv *eventhubfake.Server, group string) *azeventhubs.ConsumerClient {
	t.Helper()
	c, err := azeventhubs.NewConsumerClientFromConnectionString(srv.ConnectionString(testHub), "", group, &azeventhubs.ConsumerClientOptions{RetryOptions: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func sendBatch(t testing.TB, p *azeventhubs.ProducerClient, opts *azeventhubs.EventDataBatchOptions, bodies ...string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	batch, err := p.NewEventDataBatch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		if err := batch.AddEventData(&azeventhubs.EventData{Body: []byte(b)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.SendEventDataBatch(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
}

// receiveN reads exactly n events (or fails after the timeout).
func receiveN(t testing.TB, pc *azeventhubs.PartitionClient, n int, timeout time.Duration) []*azeventhubs.ReceivedEventData {
	t.Helper()
	ctx := ctxFor(t, timeout)
	var got []*azeventhubs.ReceivedEventData
	for len(got) < n {
		evs, err := pc.ReceiveEvents(ctx, n-len(got), nil)
		got = append(got, evs...)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(got), n, err)
		}
	}
	return got
}

// expectNone checks that nothing arrives within d.
func expectNone(t testing.TB, pc *azeventhubs.PartitionClient, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	evs, err := pc.ReceiveEvents(ctx, 10, nil)
	if len(evs) > 0 {
		t.Fatalf("expected no events, got %d (first %q)", len(evs), evs[0].Body)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unexpected error: %v", err)
	}
}

func bodies(evs []*azeventhubs.ReceivedEventData) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Body)
	}
	return out
}

func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func TestProperties(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	ctx := ctxFor(t, 10*time.Second)

	hp, err := cc.GetEventHubProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if hp.Name != testHub || strings.Join(hp.PartitionIDs, ",") != "0,1,2,3" || hp.GeoReplicationEnabled || hp.CreatedOn.IsZero() {
		t.Fatalf("hub properties: %+v", hp)
	}

	pp, err := cc.GetPartitionProperties(ctx, "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !pp.IsEmpty || pp.LastEnqueuedSequenceNumber != -1 || pp.PartitionID != "1" || pp.EventHubName != testHub {
		t.Fatalf("empty partition properties: %+v", pp)
	}

	if err := srv.Send(testHub, "1", []byte("a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	pp, err = cc.GetPartitionProperties(ctx, "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := srv.Records(testHub, "1")
	if pp.IsEmpty || pp.BeginningSequenceNumber != 0 || pp.LastEnqueuedSequenceNumber != 1 ||
		pp.LastEnqueuedOffset != recs[1].Offset || !pp.LastEnqueuedOn.Equal(recs[1].EnqueuedTime) {
		t.Fatalf("partition properties after two sends: %+v (records %+v)", pp, recs)
	}

	if _, err := cc.GetPartitionProperties(ctx, "9", nil); err == nil {
		t.Fatal("expected an error for a partition that does not exist")
	}
}

func TestSendToHubPartitionAndKey(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	p := newProducer(t, srv)

	sendBatch(t, p, &azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("2")}, names("p", 0, 3)...)
	recs, _ := srv.Records(testHub, "2")
	if len(recs) != 3 || string(recs[0].Body) != "p-0" || recs[2].SequenceNumber != 2 {
		t.Fatalf("partition 2 records: %+v", recs)
	}

	sendBatch(t, p, &azeventhubs.EventDataBatchOptions{PartitionKey: to.Ptr("device-42")}, names("k", 0, 4)...)
	keyed := 0
	for _, id := range []string{"0", "1", "2", "3"} {
		recs, _ := srv.Records(testHub, id)
		for _, r := range recs {
			if strings.HasPrefix(string(r.Body), "k-") {
				keyed++
				if r.PartitionKey != "device-42" {
					t.Fatalf("record %q lost its partition key: %+v", r.Body, r)
				}
			}
		}
	}
	if keyed != 4 {
		t.Fatalf("want 4 keyed events, found %d", keyed)
	}

	// Without partition or key, batches are spread round robin over partitions.
	for i := 0; i < 4; i++ {
		sendBatch(t, p, nil, fmt.Sprintf("rr-%d", i))
	}
	for _, id := range []string{"0", "1", "2", "3"} {
		recs, _ := srv.Records(testHub, id)
		found := 0
		for _, r := range recs {
			if strings.HasPrefix(string(r.Body), "rr-") {
				found++
			}
		}
		if found != 1 {
			t.Fatalf("partition %s got %d round-robin events, want 1", id, found)
		}
	}
}

func TestLargeEventMultiFrame(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	p := newProducer(t, srv)
	big := bytes.Repeat([]byte("0123456789abcdef"), 200*1024/16)
	ctx := ctxFor(t, 20*time.Second)
	batch, err := p.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: to.Ptr("0")})
	if err != nil {
		t.Fatal(err)
	}
	if err := batch.AddEventData(&azeventhubs.EventData{Body: big}, nil); err != nil {
		t.Fatal(err)
	}
	if err := batch.AddEventData(&azeventhubs.EventData{Body: []byte("small")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.SendEventDataBatch(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	pc, err := cc.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	got := receiveN(t, pc, 2, 20*time.Second)
	if !bytes.Equal(got[0].Body, big) || string(got[1].Body) != "small" {
		t.Fatalf("bodies differ: %d bytes, then %q", len(got[0].Body), got[1].Body)
	}
}

func newPartitionClient(t testing.TB, cc *azeventhubs.ConsumerClient, id string, opts *azeventhubs.PartitionClientOptions) *azeventhubs.PartitionClient {
	t.Helper()
	pc, err := cc.NewPartitionClient(id, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close(context.Background()) })
	return pc
}

func TestStartPositions(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	if err := srv.Send(testHub, "0", []byte("e-0"), []byte("e-1"), []byte("e-2"), []byte("e-3")); err != nil {
		t.Fatal(err)
	}
	// Enqueued-time filters have millisecond resolution: make the next events distinguishable.
	time.Sleep(5 * time.Millisecond)
	if err := srv.Send(testHub, "0", []byte("e-4"), []byte("e-5")); err != nil {
		t.Fatal(err)
	}
	recs, _ := srv.Records(testHub, "0")
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)

	cases := []struct {
		name string
		pos  azeventhubs.StartPosition
		want []string
	}{
		{"earliest", azeventhubs.StartPosition{Earliest: to.Ptr(true)}, names("e", 0, 6)},
		{"offset exclusive", azeventhubs.StartPosition{Offset: to.Ptr(recs[2].Offset)}, names("e", 3, 6)},
		{"offset inclusive", azeventhubs.StartPosition{Offset: to.Ptr(recs[2].Offset), Inclusive: true}, names("e", 2, 6)},
		{"sequence exclusive", azeventhubs.StartPosition{SequenceNumber: to.Ptr(int64(3))}, names("e", 4, 6)},
		{"sequence inclusive", azeventhubs.StartPosition{SequenceNumber: to.Ptr(int64(3)), Inclusive: true}, names("e", 3, 6)},
		{"enqueued time exclusive", azeventhubs.StartPosition{EnqueuedTime: to.Ptr(recs[3].EnqueuedTime)}, names("e", 4, 6)},
		{"enqueued time inclusive", azeventhubs.StartPosition{EnqueuedTime: to.Ptr(recs[4].EnqueuedTime), Inclusive: true}, names("e", 4, 6)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pc := newPartitionClient(t, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: tc.pos})
			got := bodies(receiveN(t, pc, len(tc.want), 10*time.Second))
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			expectNone(t, pc, 50*time.Millisecond)
		})
	}

	t.Run("latest", func(t *testing.T) {
		pc := newPartitionClient(t, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Latest: to.Ptr(true)}})
		// The link attaches on the first receive; only events after that count as "latest".
		expectNone(t, pc, 100*time.Millisecond)
		if err := srv.Send(testHub, "0", []byte("new-0"), []byte("new-1")); err != nil {
			t.Fatal(err)
		}
		got := bodies(receiveN(t, pc, 2, 10*time.Second))
		if strings.Join(got, ",") != "new-0,new-1" {
			t.Fatalf("latest got %v", got)
		}
	})

	t.Run("annotations", func(t *testing.T) {
		pc := newPartitionClient(t, cc, "0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
		got := receiveN(t, pc, 2, 10*time.Second)
		for i, e := range got {
			if e.SequenceNumber != recs[i].SequenceNumber || e.Offset != recs[i].Offset || e.EnqueuedTime == nil || !e.EnqueuedTime.Equal(recs[i].EnqueuedTime) {
				t.Fatalf("event %d: seq %d offset %q time %v; stored %+v", i, e.SequenceNumber, e.Offset, e.EnqueuedTime, recs[i])
			}
		}
	})
}

func TestReconnectAfterDroppedConnection(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	pc := newPartitionClient(t, cc, "3", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: to.Ptr(true)}})
	for i := 0; i < 5; i++ {
		if err := srv.Send(testHub, "3", []byte(fmt.Sprintf("m-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	first := receiveN(t, pc, 5, 10*time.Second)
	if n := srv.DropConnections(); n == 0 {
		t.Fatal("no connection to drop")
	}
	for i := 5; i < 10; i++ {
		if err := srv.Send(testHub, "3", []byte(fmt.Sprintf("m-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// The SDK reports the lost connection once, then recovers on the next call and resumes
	// after the last sequence number it saw.
	ctx := ctxFor(t, 20*time.Second)
	var rest []*azeventhubs.ReceivedEventData
	for len(rest) < 5 {
		evs, err := pc.ReceiveEvents(ctx, 5-len(rest), nil)
		rest = append(rest, evs...)
		if err != nil {
			var ehErr *azeventhubs.Error
			if ctx.Err() != nil || !errors.As(err, &ehErr) || ehErr.Code != azeventhubs.ErrorCodeConnectionLost {
				t.Fatalf("receive after drop: %v", err)
			}
		}
	}
	all := append(first, rest...)
	for i, e := range all {
		if e.SequenceNumber != int64(i) || string(e.Body) != fmt.Sprintf("m-%d", i) {
			t.Fatalf("event %d is seq %d %q: lost or duplicated across the reconnect", i, e.SequenceNumber, e.Body)
		}
	}
}

func TestEpochStealingReportsOwnershipLost(t *testing.T) {
	srv := startFake(t, eventhubfake.Config{})
	cc := newConsumer(t, srv, azeventhubs.DefaultConsumerGroup)
	start := azeventhubs.StartPosition{Earliest: to.Ptr(true)}
	first := newPartitionClient(t, cc, "1", &azeventhubs.PartitionClientOptions{StartPosition: start, OwnerLevel: to.Ptr(int64(1))})
	if err := srv.Send(testHub, "1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	receiveN(t, first, 1, 10*time.Second)

	second := newPartitionClient(t, cc, "1", &azeventhubs.PartitionClientOptions{StartPosition: start, OwnerLevel: to.Ptr(int64(2))})
	receiveN(t, second, 1, 10*time.Second)

	ctx := ctxFor(t, 10*time.Second)
	_, err := first.ReceiveEvents(ctx, 1, nil)
	var ehErr *azeventhubs.Error
	if !errors.As(err, &ehErr) || ehErr.Code != azeventhubs.ErrorCodeOwnershipLost {
		t.Fatalf("first receiver: want OwnershipLost, got %v", err)
	}

	// A lower epoch and a receiver without epoch are both refused while epoch 2 holds on.
	lower := newPartitionClient(t, cc, "1", &azeventhubs.PartitionClientOptions{StartPosition: start, OwnerLevel: to.Ptr(int64(1))})
	if _, err := lower.ReceiveEvents(ctxFor(t, 10*time.Second), 1, nil); !errors.As(err, &ehErr) || ehErr.Code != azeventhubs.ErrorCodeOwnershipLost {
		t.Fatalf("lower epoch: want OwnershipLost, got %v", err)
	}
	noEpoch := newPartitionClient(t, cc, "1", &azeventhubs.PartitionClientOptions{StartPosition: start})
	if _, err := noEpoch.ReceiveEvents(ctxFor(t, 10*time.Second), 1, nil); !errors.As(err, &ehErr) || ehErr.Code != azeventhubs.ErrorCodeOwnershipLost {
		t.Fatalf("no epoch: want OwnershipLost, got %v", err)
	}
	// The owner keeps receiving.
	if err := srv.Send(testHub, "1", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if got := receiveN(t, second, 1, 10*time.Second); string(got[0].Body) != "y" {
		t.Fatalf("owner got %q", got[0].Body)
	}
}

// TestRestartOnSamePort: checkpoint blob names contain the endpoint's port, so a restarted fake
// must be able to come back on the address it had.
func TestRestartOnSamePort(t *testing.T) {
	first, err := eventhubfake.Start(eventhubfake.Config{Hubs: []eventhubfake.HubConfig{{Name: testHub}}})
	if err != nil {
		t.Fatal(err)
	}
	addr, cs := first.Addr(), first.ConnectionString(testHub)
	cc := newConsumer(t, first, azeventhubs.DefaultConsumerGroup)
	if _, err := cc.GetEventHubProperties(ctxFor(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := startFake(t, eventhubfake.Config{ListenAddr: addr})
	if second.ConnectionString(testHub) != cs {
		t.Fatalf("connection string changed across the restart:\n%s\n%s", cs, second.ConnectionString(testHub))
	}
	if _, err := cc.GetEventHubProperties(ctxFor(t, 10*time.Second), nil); err != nil {
		t.Fatalf("the old client did not recover against the restarted fake: %v", err)
	}
	if err := second.Send("no-such-hub", "0", []byte("x")); err == nil {
		t.Fatal("Send to an unknown hub succeeded")
	}
}
