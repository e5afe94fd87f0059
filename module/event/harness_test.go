package event

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2/checkpoints"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/beats/v7/libbeat/statestore"
	"github.com/elastic/beats/v7/libbeat/statestore/backend/memlog"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/logp/logptest"
	"github.com/elastic/elastic-agent-libs/monitoring"
	"github.com/elastic/go-concert/unison"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

const testHub = "defender_streaming"

// testTuning makes every wait of the input short.
func testTuning() tuning {
	t := defaultTuning()
	t.retry = azeventhubs.RetryOptions{MaxRetries: 8, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond}
	t.blobRetry = policy.RetryOptions{MaxRetries: 3, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond}
	t.checkpointEvery = 20 * time.Millisecond
	t.closeWait = 500 * time.Millisecond
	t.lagEvery = 100 * time.Millisecond
	t.restartBackoff = 100 * time.Millisecond
	t.maxBackoff = time.Second
	return t
}

func startHub(t testing.TB, cfg eventhubfake.Config) *eventhubfake.Server {
	t.Helper()
	if len(cfg.Hubs) == 0 {
		cfg.Hubs = []eventhubfake.HubConfig{{Name: testHub, Partitions: 4}}
	}
	if cfg.Logf == nil {
		cfg.Logf = func(format string, args ...any) {
			// Protocol errors mean the fake and the SDK disagree about AMQP: a failure.
			if msg := fmt.Sprintf(format, args...); strings.HasPrefix(msg, "protocol") || strings.HasPrefix(msg, "encoding") {
				t.Errorf("fake: %s", msg)
			}
		}
	}
	srv, err := eventhubfake.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	azuritetest.StopShared()
	os.Exit(code)
}

// testContainer is a checkpoint container of the test's own in the shared Azurite.
func testContainer(t testing.TB) string {
	sum := sha256.Sum256([]byte(t.Name()))
	return "cp-" + hex.EncodeToString(sum[:8])
}

// hubSettings are an input's options on the fake hub; blob checkpoints in the test's own
// container when az is given.
func hubSettings(t testing.TB, hub *eventhubfake.Server, az *azuritetest.Azurite, extra map[string]any) map[string]any {
	s := map[string]any{
		"id":                            "events",
		"eventhub":                      testHub,
		"connection_string":             hub.ConnectionString(""),
		"processor_update_interval":     "200ms",
		"partition_expiration_duration": "2s",
		"partition_receive_timeout":     "100ms",
		"partition_receive_count":       20,
		"checkpoint_store":              StoreLocal,
		// The delivery tests find each record's marker in event.original.
		"preserve_original_event": true,
	}
	if az != nil {
		s["checkpoint_store"] = StoreBlob
		s["storage_account_connection_string"] = az.ConnectionString()
		s["storage_account_container"] = testContainer(t)
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// output is a publisher pipeline whose output ACKs every few milliseconds unless stalled;
// a stalled output stops taking documents once `capacity` wait per client, as a full queue.
type output struct {
	mu        sync.Mutex
	cond      *sync.Cond
	stalled   bool
	capacity  int
	clients   []*outClient
	published []beat.Event
	acked     []beat.Event
	stop      chan struct{}
	done      chan struct{}
}

type outClient struct {
	out      *output
	listener beat.EventListener
	pending  []beat.Event
	closed   bool
}

func newOutput(t testing.TB) *output {
	o := &output{capacity: 30, stop: make(chan struct{}), done: make(chan struct{})}
	o.cond = sync.NewCond(&o.mu)
	go o.ackLoop()
	t.Cleanup(func() { close(o.stop); <-o.done })
	return o
}

func (o *output) ConnectWith(cfg beat.ClientConfig) (beat.Client, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := cfg.Processing.EventNormalization; n == nil || *n {
		// The documents need none (TestDocumentsNeedNoNormalization), and it copies each one.
		return nil, errors.New("the input asks libbeat to normalize its documents")
	}
	c := &outClient{out: o, listener: cfg.EventListener}
	o.clients = append(o.clients, c)
	return c, nil
}

func (o *output) Connect() (beat.Client, error) {
	return o.ConnectWith(beat.ClientConfig{Processing: beat.ProcessingConfig{EventNormalization: &noNormalization}})
}

func (c *outClient) Publish(ev beat.Event) {
	o := c.out
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.stalled && len(c.pending) >= o.capacity && !c.closed {
		o.cond.Wait()
	}
	if c.closed {
		return // a closed client drops what it is given, unacknowledged
	}
	c.listener.AddEvent(ev, true)
	c.pending = append(c.pending, ev)
	o.published = append(o.published, ev)
}

func (c *outClient) PublishAll(evs []beat.Event) {
	for _, ev := range evs {
		c.Publish(ev)
	}
}

func (c *outClient) Close() error {
	c.out.mu.Lock()
	c.closed = true
	c.out.cond.Broadcast()
	c.out.mu.Unlock()
	return nil
}

func (o *output) ackLoop() {
	defer close(o.done)
	for {
		select {
		case <-o.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		o.mu.Lock()
		if !o.stalled {
			// What a closed client handed over is still in the queue: it is delivered too.
			for _, c := range o.clients {
				if n := len(c.pending); n > 0 {
					o.acked = append(o.acked, c.pending...)
					c.pending = nil
					c.listener.ACKEvents(n)
				}
			}
			o.cond.Broadcast()
		}
		o.mu.Unlock()
	}
}

func (o *output) setStalled(stalled bool) {
	o.mu.Lock()
	o.stalled = stalled
	o.cond.Broadcast()
	o.mu.Unlock()
}

// blocked reports whether some client waits in Publish for room.
func (o *output) waiting() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.clients {
		n += len(c.pending)
	}
	return n
}

func (o *output) ackedDocs() []beat.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]beat.Event(nil), o.acked...)
}

func (o *output) ackedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.acked)
}

func (o *output) publishedDocs() []beat.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]beat.Event(nil), o.published...)
}

// registry is a memlog registry in a directory that outlives one input run.
type registry struct{ dir string }

type registryStates struct{ reg *statestore.Registry }

func (s registryStates) StoreFor(string) (*statestore.Store, error) { return s.reg.Get("defenderbeat") }
func (s registryStates) CleanupInterval() time.Duration             { return time.Hour }

// open opens the registry; the function it returns closes it (as the beat does on shutdown).
func (r registry) open(t testing.TB) (statestore.States, func()) {
	t.Helper()
	backend, err := memlog.New(logp.NewNopLogger(), memlog.Settings{Root: r.dir, FileMode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	reg := statestore.NewRegistry(backend)
	// Closed once, by the caller (a restart) or at the end of the test. The cleanup is registered
	// before any input the test starts, so it runs after their cleanups have stopped them: the
	// registry's Close waits for the stores an input still holds, and a test that fails while
	// its input runs would otherwise hang there.
	closeOnce := sync.OnceFunc(func() { _ = reg.Close() })
	t.Cleanup(closeOnce)
	return registryStates{reg}, closeOnce
}

// statuses records what the input reports.
type statuses struct {
	mu  sync.Mutex
	all []string
}

func (s *statuses) UpdateStatus(st status.Status, msg string) {
	s.mu.Lock()
	s.all = append(s.all, st.String()+": "+msg)
	s.mu.Unlock()
}

func (s *statuses) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.all, "\n")
}

// running is an input started by startInput.
type running struct {
	cancel   context.CancelFunc
	finished chan error
	metrics  *monitoring.Registry
	status   *statuses
	snapshot monitoring.FlatSnapshot
}

func testLogger(t testing.TB) *logp.Logger {
	if os.Getenv("EVENT_TEST_LOG") != "" {
		return logptest.NewTestingLogger(t, "")
	}
	return logp.NewNopLogger()
}

func startInput(t testing.TB, settings map[string]any, tune tuning, states statestore.States, out *output) *running {
	t.Helper()
	log := testLogger(t)
	p := plugin(log, states, tune)
	var tasks unison.TaskGroup
	if err := p.Manager.Init(&tasks); err != nil {
		t.Fatal(err)
	}
	inp, err := p.Manager.Create(conf.MustNewConfigFrom(settings))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, finished: make(chan error, 1), metrics: monitoring.NewRegistry(), status: &statuses{}}
	go func() {
		r.finished <- inp.Run(v2.Context{ID: "test", Name: InputType, Cancelation: ctx, Logger: log,
			MetricsRegistry: r.metrics, StatusReporter: r.status}, out)
	}()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the input and waits for it; its metrics as they stood are kept.
func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.snapshot = monitoring.CollectFlatSnapshot(r.metrics, monitoring.Full, false)
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.finished:
		if err != nil {
			t.Errorf("input returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("input did not stop within 30s")
	}
}

func (r *running) metric(name string) int64 {
	snap := r.snapshot
	if r.cancel != nil {
		snap = monitoring.CollectFlatSnapshot(r.metrics, monitoring.Full, false)
	}
	return snap.Ints[name]
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// record is one Streaming API record with a marker that names it uniquely.
func streamRecord(marker string) map[string]any {
	return map[string]any{
		"time": "2024-05-02T10:00:01.0000000Z", "tenantId": "11111111-2222-3333-4444-555555555555",
		"operationName": "Publish", "category": "AdvancedHunting-DeviceProcessEvents",
		"properties": map[string]any{
			"Timestamp": "2024-05-02T09:59:58.1234567Z", "DeviceName": "host-1", "ActionType": "ProcessCreated",
			"ReportId": 42, "Marker": marker,
		},
	}
}

// sendMessages puts n messages of perMessage records on each partition; markers are
// "<tag>-<partition>-<message>-<record>". It returns every marker sent.
func sendMessages(t testing.TB, hub *eventhubfake.Server, tag string, partitions, n, perMessage int) []string {
	t.Helper()
	var markers []string
	for p := range partitions {
		var bodies [][]byte
		for m := range n {
			var recs []any
			for r := range perMessage {
				marker := fmt.Sprintf("%s-%d-%d-%d", tag, p, m, r)
				markers = append(markers, marker)
				recs = append(recs, streamRecord(marker))
			}
			body, _ := json.Marshal(map[string]any{"records": recs})
			bodies = append(bodies, body)
		}
		if err := hub.Send(testHub, fmt.Sprint(p), bodies...); err != nil {
			t.Fatal(err)
		}
	}
	return markers
}

// markerOf reads the marker from the record the document came from: event.original, which the
// harness's inputs keep (the mapping itself drops columns it does not know).
func markerOf(ev beat.Event) string {
	v, _ := ev.Fields.GetValue("event.original")
	s, _ := v.(string)
	return recordMarker(s)
}

func recordMarker(original string) string {
	var rec struct {
		Properties struct {
			Marker string `json:"Marker"`
		} `json:"properties"`
	}
	_ = json.Unmarshal([]byte(original), &rec)
	return rec.Properties.Marker
}

// covered reports whether the documents hold every marker.
func covered(docs []beat.Event, markers []string) bool {
	seen := map[string]bool{}
	for _, d := range docs {
		seen[markerOf(d)] = true
	}
	for _, m := range markers {
		if !seen[m] {
			return false
		}
	}
	return true
}

// duplicatesShareIDs fails the test when two documents of one record carry different _ids.
func duplicatesShareIDs(t testing.TB, docs []beat.Event) (duplicates int) {
	t.Helper()
	ids := map[string]string{}
	for _, d := range docs {
		m, id := markerOf(d), fmt.Sprint(d.Meta["_id"])
		if prev, ok := ids[m]; ok {
			duplicates++
			if prev != id {
				t.Fatalf("record %s published with _id %s and %s", m, prev, id)
			}
		}
		ids[m] = id
	}
	return duplicates
}

// blobCheckpoints reads the checkpoints the input wrote to Azurite, by partition.
func blobCheckpoints(t testing.TB, az *azuritetest.Azurite, hub *eventhubfake.Server, containerName string) map[string]int64 {
	t.Helper()
	props, err := azeventhubs.ParseConnectionString(hub.ConnectionString(""))
	if err != nil {
		t.Fatal(err)
	}
	return namespaceCheckpoints(t, az, props.FullyQualifiedNamespace, containerName)
}

// namespaceCheckpoints reads the checkpoints of the test hub in namespace, by partition.
func namespaceCheckpoints(t testing.TB, az *azuritetest.Azurite, namespace, containerName string) map[string]int64 {
	t.Helper()
	cc, err := container.NewClientFromConnectionString(az.ConnectionString(), containerName,
		&container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: az.HTTPClient()}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoints.NewBlobStore(cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	cps, err := store.ListCheckpoints(context.Background(), namespace, testHub, azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, cp := range cps {
		out[cp.PartitionID] = *cp.SequenceNumber
	}
	return out
}
