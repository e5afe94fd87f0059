package event

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/statestore"
	"github.com/elastic/elastic-agent-libs/logp"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

const testTenant = "11111111-2222-3333-4444-555555555555"

// testClock is the storage input's clock in a test: hours roll over when the test says so.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func testStorageTuning(clock *testClock) storageTuning {
	t := defaultStorageTuning()
	t.loop = inputkit.Timings{FirstRetry: 50 * time.Millisecond, MaxRetry: 200 * time.Millisecond}
	t.blobRetry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}
	if clock != nil {
		t.now = clock.now
	}
	return t
}

func storagePlugin(tune storageTuning) cursortest.PluginFunc {
	return func(log *logp.Logger, store statestore.States) v2.Plugin {
		return storageCursorInput(tune).Plugin(log, store)
	}
}

// storageFixture writes blobs the way Defender does, into a test's own Azurite containers.
type storageFixture struct {
	t   testing.TB
	az  *azuritetest.Azurite
	svc *service.Client
}

func newStorageFixture(t testing.TB, az *azuritetest.Azurite) *storageFixture {
	svc, err := service.NewClientFromConnectionString(az.ConnectionString(),
		&service.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: az.HTTPClient()}})
	if err != nil {
		t.Fatal(err)
	}
	return &storageFixture{t: t, az: az, svc: svc}
}

// table is a table name of the test's own, so tests sharing one Azurite keep apart.
func testTable(t testing.TB, name string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, t.Name())
	if len(clean) > 30 {
		clean = clean[len(clean)-30:]
	}
	return name + clean
}

func (f *storageFixture) settings(id string, tables []string, extra map[string]any) map[string]any {
	s := map[string]any{
		"id":                                id,
		"storage_account_connection_string": f.az.ConnectionString(),
		"interval":                          "100ms",
		// The tests find each record's marker in event.original.
		"preserve_original_event": true,
	}
	if tables != nil {
		s["tables"] = tables
	}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

func blobPath(hour time.Time) string {
	return fmt.Sprintf("tenantId=%s/y=%04d/m=%02d/d=%02d/h=%02d/m=00/PT1H.json", testTenant, hour.Year(), int(hour.Month()), hour.Day(), hour.Hour())
}

// appendTo appends data to a table's blob of an hour, creating container and blob as needed.
func (f *storageFixture) appendTo(table string, hour time.Time, data string) {
	f.t.Helper()
	name, err := tableContainer(table)
	if err != nil {
		f.t.Fatal(err)
	}
	f.appendBlob(name, blobPath(hour), []byte(data))
}

func (f *storageFixture) appendBlob(containerName, blobName string, data []byte) {
	f.t.Helper()
	ctx := context.Background()
	cc := f.svc.NewContainerClient(containerName)
	if _, err := cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		f.t.Fatal(err)
	}
	ab := cc.NewAppendBlobClient(blobName)
	if _, err := ab.GetProperties(ctx, nil); bloberror.HasCode(err, bloberror.BlobNotFound) {
		if _, err := ab.Create(ctx, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	if len(data) == 0 {
		return
	}
	if _, err := ab.AppendBlock(ctx, streaming.NopCloser(bytes.NewReader(data)), nil); err != nil {
		f.t.Fatal(err)
	}
}

func (f *storageFixture) deleteBlob(table string, hour time.Time) {
	f.t.Helper()
	name, _ := tableContainer(table)
	if _, err := f.svc.NewContainerClient(name).NewBlobClient(blobPath(hour)).Delete(context.Background(), nil); err != nil {
		f.t.Fatal(err)
	}
}

func (f *storageFixture) size(table string, hour time.Time) int64 {
	f.t.Helper()
	name, _ := tableContainer(table)
	props, err := f.svc.NewContainerClient(name).NewBlobClient(blobPath(hour)).GetProperties(context.Background(), nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return *props.ContentLength
}

// storageLines renders one line per marker as Defender writes them (CR LF), for table, and
// returns the markers too.
func storageLines(table string, markers ...string) string {
	var b strings.Builder
	for _, m := range markers {
		rec := streamRecord(m)
		rec["category"] = "AdvancedHunting-" + table
		raw, _ := json.Marshal(rec)
		b.Write(raw)
		b.WriteString("\r\n")
	}
	return b.String()
}

func markers(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// storageCursorKey is the registry key of a storage input's cursor on the fixture's account.
func (f *storageFixture) cursorKey(id string) string {
	return StorageInputType + "::" + id + "::tenant-" + strings.ToLower(fmt.Sprintf("127.0.0.1:%d/%s", f.az.Port, azuritetest.AccountName))
}

// storedCursor reads the cursor the registry holds.
func (f *storageFixture) storedCursor(h *cursortest.Harness, id string) storageCursor {
	f.t.Helper()
	var c storageCursor
	if !h.StoredCursor(f.cursorKey(id), &c) {
		f.t.Fatalf("no cursor stored under %s", f.cursorKey(id))
	}
	return c
}

func (c storageCursor) table(container string) (tableCursor, bool) {
	for _, t := range c.Tables {
		if t.Container == container {
			return t, true
		}
	}
	return tableCursor{}, false
}

// markerCounts counts the documents of each marker.
func markerCounts(docs []beat.Event) map[string]int {
	out := map[string]int{}
	for _, d := range docs {
		out[markerOf(d)]++
	}
	return out
}

// exactlyOnce fails the test unless every marker has exactly one document and no other
// document was published.
func exactlyOnce(t testing.TB, docs []beat.Event, want []string) {
	t.Helper()
	counts := markerCounts(docs)
	for _, m := range want {
		if counts[m] != 1 {
			t.Errorf("record %s: %d documents, want 1", m, counts[m])
		}
		delete(counts, m)
	}
	if len(counts) > 0 {
		t.Errorf("documents of records never written: %v", counts)
	}
}

// hasMarkers reports whether the documents hold every marker.
func hasMarkers(h *cursortest.Harness, want []string) func() bool {
	return func() bool { return covered(h.Published(), want) }
}
