package event

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/elastic/beats/v7/libbeat/statestore"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

func TestRecordsBecomeDocumentsWithBlobCheckpoints(t *testing.T) {
	az := azuritetest.Shared(t)
	hub := startHub(t, eventhubfake.Config{})
	markers := sendMessages(t, hub, "a", 4, 5, 3) // 4 partitions × 5 messages × 3 records
	out := newOutput(t)
	states, _ := registry{t.TempDir()}.open(t)

	in := startInput(t, hubSettings(t, hub, az, map[string]any{"namespace": "prod"}), testTuning(), states, out)
	waitFor(t, 30*time.Second, "every record published and acknowledged", func() bool { return covered(out.ackedDocs(), markers) })
	container := testContainer(t)
	waitFor(t, 10*time.Second, "checkpoints at the last message of every partition", func() bool {
		cps := blobCheckpoints(t, az, hub, container)
		return len(cps) == 4 && cps["0"] == 4 && cps["1"] == 4 && cps["2"] == 4 && cps["3"] == 4
	})
	waitFor(t, 5*time.Second, "the lag metric to reach 0", func() bool { return in.metric("lag_events") == 0 && in.metric("partitions_owned") == 4 })
	in.stop(t)

	docs := out.publishedDocs()
	if len(docs) != len(markers) || duplicatesShareIDs(t, docs) != 0 {
		t.Fatalf("%d documents for %d records", len(docs), len(markers))
	}
	for _, d := range docs {
		if ds, _ := d.Fields.GetValue("event.dataset"); ds != "m365_defender.event" {
			t.Fatalf("event.dataset %v", ds)
		}
		if ns, _ := d.Fields.GetValue("data_stream.namespace"); ns != "prod" {
			t.Fatalf("data_stream.namespace %v", ns)
		}
		// properties.Timestamp, at the millisecond precision of the integration's date processor.
		if d.Timestamp.Format(time.RFC3339Nano) != "2024-05-02T09:59:58.123Z" || d.Meta["_id"] == nil {
			t.Fatalf("@timestamp %s, @metadata %v", d.Timestamp, d.Meta)
		}
	}
	if in.metric("messages_received_total") != 20 || in.metric("records_published_total") != 60 || in.metric("checkpoint_updates_total") == 0 {
		t.Fatalf("metrics: %v", in.snapshot.Ints)
	}
	if !strings.Contains(in.status.text(), "Running") {
		t.Fatalf("statuses:\n%s", in.status.text())
	}
}

// A restart reads on from the stored checkpoints: nothing read before is read again.
func TestRestartResumesFromCheckpoints(t *testing.T) {
	az := azuritetest.Shared(t)
	hub := startHub(t, eventhubfake.Config{})
	states, _ := registry{t.TempDir()}.open(t)
	settings := hubSettings(t, hub, az, nil)

	first := sendMessages(t, hub, "first", 4, 3, 2)
	out1 := newOutput(t)
	in := startInput(t, settings, testTuning(), states, out1)
	waitFor(t, 30*time.Second, "the first batch", func() bool { return covered(out1.ackedDocs(), first) })
	in.stop(t)

	second := sendMessages(t, hub, "second", 4, 3, 2)
	out2 := newOutput(t)
	in = startInput(t, settings, testTuning(), states, out2)
	waitFor(t, 30*time.Second, "the second batch", func() bool { return covered(out2.ackedDocs(), second) })
	in.stop(t)
	for _, d := range out2.publishedDocs() {
		if strings.HasPrefix(markerOf(d), "first") {
			t.Fatalf("record %s of the first run was read again", markerOf(d))
		}
	}
	if n := len(out2.publishedDocs()); n != len(second) {
		t.Fatalf("%d documents after the restart, want %d", n, len(second))
	}
}

// While the output does not acknowledge, the checkpoint stays where it was; an input stopped in
// that state and started again with a working output delivers everything, duplicates keeping
// their _id; and a stalled output that recovers in the same run loses nothing either.
func TestOutputStallLosesNothing(t *testing.T) {
	az := azuritetest.Shared(t)
	hub := startHub(t, eventhubfake.Config{})
	states, _ := registry{t.TempDir()}.open(t)
	settings := hubSettings(t, hub, az, nil)
	container := testContainer(t)

	before := sendMessages(t, hub, "before", 4, 2, 2)
	out := newOutput(t)
	in := startInput(t, settings, testTuning(), states, out)
	waitFor(t, 30*time.Second, "the first records", func() bool { return covered(out.ackedDocs(), before) })
	waitFor(t, 10*time.Second, "their checkpoints", func() bool {
		cps := blobCheckpoints(t, az, hub, container)
		return len(cps) == 4 && cps["0"] == 1 && cps["3"] == 1
	})

	out.setStalled(true)
	during := sendMessages(t, hub, "during", 4, 25, 2) // 50 records a partition, more than the queue takes
	waitFor(t, 10*time.Second, "the stalled queue to fill", func() bool { return out.waiting() >= 4*out.capacity })
	// 25 messages a partition after the checkpoints: the lag the input reports.
	waitFor(t, 10*time.Second, "lag_events to count the unacknowledged messages", func() bool { return in.metric("lag_events") == 4*25 })
	time.Sleep(300 * time.Millisecond) // a dozen checkpoint intervals
	if cps := blobCheckpoints(t, az, hub, container); cps["0"] != 1 || cps["1"] != 1 || cps["2"] != 1 || cps["3"] != 1 {
		t.Fatalf("checkpoints moved while nothing was acknowledged: %v", cps)
	}
	in.stop(t) // stopped with documents in the stalled queue

	out2 := newOutput(t)
	in = startInput(t, settings, testTuning(), states, out2)
	waitFor(t, 30*time.Second, "the records of the stalled run", func() bool { return covered(out2.ackedDocs(), during) })
	waitFor(t, 10*time.Second, "the checkpoints at the end", func() bool {
		cps := blobCheckpoints(t, az, hub, container)
		return cps["0"] == 26 && cps["1"] == 26 && cps["2"] == 26 && cps["3"] == 26
	})

	// The same within one run: stall, more records, recover.
	out2.setStalled(true)
	after := sendMessages(t, hub, "after", 4, 25, 2)
	waitFor(t, 10*time.Second, "the stalled queue to fill", func() bool { return out2.waiting() >= 4*out2.capacity })
	out2.setStalled(false)
	waitFor(t, 30*time.Second, "every record after the recovery", func() bool { return covered(out2.ackedDocs(), after) })
	in.stop(t)

	all := append(out.ackedDocs(), out2.ackedDocs()...)
	if !covered(all, append(append(before, during...), after...)) {
		t.Fatal("a record was lost")
	}
	t.Logf("%d duplicates, all with equal _id", duplicatesShareIDs(t, append(out.publishedDocs(), out2.publishedDocs()...)))
}

// Malformed messages in the middle of a stream become error documents, and the checkpoint
// moves on past them; sanitize_options repairs the malformed JSON Azure is known to send.
func TestMalformedMessagesBecomeErrorDocuments(t *testing.T) {
	hub := startHub(t, eventhubfake.Config{Hubs: []eventhubfake.HubConfig{{Name: testHub, Partitions: 1}}})
	states, _ := registry{t.TempDir()}.open(t)

	good := func(marker string) []byte {
		b, _ := json.Marshal(map[string]any{"records": []any{streamRecord(marker)}})
		return b
	}
	singleQuoted := strings.ReplaceAll(string(good("quoted")), `"`, `'`)
	bodies := [][]byte{
		good("m0"),
		[]byte("this is not JSON"),
		mustJSON(t, map[string]any{"records": []any{streamRecord("r-ok"), 42}}), // one good record, one broken
		[]byte(singleQuoted),
		[]byte("{\"records\":[{\"category\":\"AdvancedHunting-DeviceEvents\",\"properties\":{\"Timestamp\":\"2024-05-02T09:59:58Z\",\"Marker\":\"nl\",\"Cmd\":\"a\nb\"}}]}"),
		good("m5"),
	}
	if err := hub.Send(testHub, "0", bodies...); err != nil {
		t.Fatal(err)
	}
	out := newOutput(t)
	in := startInput(t, hubSettings(t, hub, nil, map[string]any{"sanitize_options": []string{"new_lines", "single_quotes"}}), testTuning(), states, out)
	waitFor(t, 30*time.Second, "every message's documents", func() bool { return covered(out.ackedDocs(), []string{"m0", "r-ok", "quoted", "nl", "m5"}) })
	waitFor(t, 10*time.Second, "the checkpoint past the last message", func() bool { return localCheckpoint(t, states, hub)["0"] == 5 })
	in.stop(t)

	var errorDocs []string
	for _, d := range out.publishedDocs() {
		if kind, _ := d.Fields.GetValue("event.kind"); kind == "pipeline_error" {
			orig, _ := d.Fields.GetValue("event.original")
			errorDocs = append(errorDocs, fmt.Sprint(orig))
			if ds, _ := d.Fields.GetValue("event.dataset"); ds != "m365_defender.event" || d.Meta["_id"] == nil {
				t.Fatalf("error document without dataset or _id: %v %v", d.Fields, d.Meta)
			}
		}
	}
	if len(errorDocs) != 2 || errorDocs[0] != "this is not JSON" || errorDocs[1] != "42" {
		t.Fatalf("error documents keep the unusable parts: %q", errorDocs)
	}
	if in.metric("error_documents_total") != 2 || in.metric("records_published_total") != 5 || in.metric("messages_sanitized_total") != 2 {
		t.Fatalf("metrics: %v", in.snapshot.Ints)
	}
}

// checkpoint_store: local keeps checkpoints in the beat's registry across restarts, with no
// storage account.
func TestLocalCheckpointStoreAcrossRestart(t *testing.T) {
	hub := startHub(t, eventhubfake.Config{})
	reg := registry{t.TempDir()}
	settings := hubSettings(t, hub, nil, nil)

	first := sendMessages(t, hub, "first", 4, 3, 2)
	states, closeReg := reg.open(t)
	out1 := newOutput(t)
	in := startInput(t, settings, testTuning(), states, out1)
	waitFor(t, 30*time.Second, "the first batch", func() bool { return covered(out1.ackedDocs(), first) })
	in.stop(t)
	closeReg() // the beat's registry is closed on shutdown and reopened from disk

	second := sendMessages(t, hub, "second", 4, 3, 2)
	states, _ = reg.open(t)
	if cps := localCheckpoint(t, states, hub); len(cps) != 4 || cps["2"] != 2 {
		t.Fatalf("checkpoints in the registry: %v", cps)
	}
	out2 := newOutput(t)
	in = startInput(t, settings, testTuning(), states, out2)
	waitFor(t, 30*time.Second, "the second batch", func() bool { return covered(out2.ackedDocs(), second) })
	in.stop(t)
	if n := len(out2.publishedDocs()); n != len(second) {
		t.Fatalf("%d documents after the restart, want only the %d new ones", n, len(second))
	}
}

// With a local checkpoint store the one instance claims every partition in its first load
// balancing round, not one more per processor_update_interval: with an interval of a minute,
// balancing one partition at a time would read the eighth partition seven minutes after start.
func TestLocalStoreClaimsEveryPartitionAtOnce(t *testing.T) {
	hub := startHub(t, eventhubfake.Config{Hubs: []eventhubfake.HubConfig{{Name: testHub, Partitions: 8}}})
	sent := sendMessages(t, hub, "m", 8, 2, 1)
	states, _ := registry{t.TempDir()}.open(t)
	out := newOutput(t)
	in := startInput(t, hubSettings(t, hub, nil, map[string]any{
		"processor_update_interval":     "1m",
		"partition_expiration_duration": "2m",
	}), testTuning(), states, out)
	waitFor(t, 30*time.Second, "records of all eight partitions", func() bool { return covered(out.ackedDocs(), sent) })
	in.stop(t)
}

// localCheckpoint reads the local store's checkpoints of the test hub, as a restart would.
func localCheckpoint(t testing.TB, states statestore.States, hub *eventhubfake.Server) map[string]int64 {
	t.Helper()
	st, err := states.StoreFor("")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	props, err := azeventhubs.ParseConnectionString(hub.ConnectionString(""))
	if err != nil {
		t.Fatal(err)
	}
	cps, err := newLocalStore(st, "events").ListCheckpoints(context.Background(), props.FullyQualifiedNamespace, testHub, azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, cp := range cps {
		out[cp.PartitionID] = *cp.SequenceNumber
	}
	return out
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A consumer group that does not exist is reported as such (the Processor itself would only
// log that it cannot open the partitions, and retry forever).
func TestUnknownConsumerGroupIsReported(t *testing.T) {
	// With its partitions refused over and over, the fake reports END frames on sessions it
	// has already ended (a disagreement of the fake's, seen only here): logged, not failed.
	hub := startHub(t, eventhubfake.Config{Logf: func(format string, args ...any) { t.Logf("fake: "+format, args...) }})
	states, _ := registry{t.TempDir()}.open(t)
	in := startInput(t, hubSettings(t, hub, nil, map[string]any{"consumer_group": "nope"}), testTuning(), states, newOutput(t))
	waitFor(t, 20*time.Second, "a FAILED status naming the consumer group", func() bool {
		return strings.Contains(in.status.text(), `Failed: Reading event hub "defender_streaming" stopped`) &&
			strings.Contains(in.status.text(), `consumer_group "nope" does not exist`)
	})
	if in.metric("processor_restarts_total") == 0 {
		t.Fatal("the failure was not counted")
	}
	in.stop(t)
}

// A container the legacy processor (Filebeat's processor v1, the integration's default) wrote
// to: partitions continue after its checkpoints; partitions without one start as configured.
func TestLegacyCheckpointsAreMigrated(t *testing.T) {
	az := azuritetest.Shared(t)
	hub := startHub(t, eventhubfake.Config{Hubs: []eventhubfake.HubConfig{{Name: testHub, Partitions: 2}}})
	markers := sendMessages(t, hub, "m", 2, 5, 1)
	recs, err := hub.Records(testHub, "0")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := container.NewClientFromConnectionString(az.ConnectionString(), testContainer(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Create(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	legacy := fmt.Sprintf(`{"partitionID":"0","epoch":3,"owner":"a1b2","checkpoint":{"offset":%q,"sequenceNumber":2,"enqueueTime":"2024-05-02T10:00:00Z"}}`, recs[2].Offset)
	if _, err := cc.NewBlockBlobClient("0").UploadBuffer(context.Background(), []byte(legacy), nil); err != nil {
		t.Fatal(err)
	}

	states, _ := registry{t.TempDir()}.open(t)
	out := newOutput(t)
	in := startInput(t, hubSettings(t, hub, az, nil), testTuning(), states, out)
	want := []string{"m-0-3-0", "m-0-4-0"}
	for _, m := range markers {
		if strings.HasPrefix(m, "m-1-") {
			want = append(want, m)
		}
	}
	waitFor(t, 30*time.Second, "the records after the legacy checkpoint", func() bool { return covered(out.ackedDocs(), want) })
	in.stop(t)
	for _, d := range out.publishedDocs() {
		if m := markerOf(d); m == "m-0-0-0" || m == "m-0-1-0" || m == "m-0-2-0" {
			t.Fatalf("record %s, before the legacy checkpoint, was read again", m)
		}
	}
}

// A namespace that does not answer may come back by itself: DEGRADED, retried, not FAILED.
func TestUnreachableNamespaceIsDegraded(t *testing.T) {
	hub := startHub(t, eventhubfake.Config{})
	settings := hubSettings(t, hub, nil, nil)
	_ = hub.Close() // nothing listens on its port any more
	states, _ := registry{t.TempDir()}.open(t)
	in := startInput(t, settings, testTuning(), states, newOutput(t))
	waitFor(t, 30*time.Second, "a DEGRADED status saying the namespace cannot be reached", func() bool {
		return strings.Contains(in.status.text(), "Degraded: ") && strings.Contains(in.status.text(), "cannot reach 127.0.0.1:")
	})
	in.stop(t)
	if strings.Contains(in.status.text(), "Failed:") {
		t.Fatalf("an outage was reported as a configuration failure:\n%s", in.status.text())
	}
}
