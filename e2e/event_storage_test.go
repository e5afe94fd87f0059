package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
)

// storageBlob appends Streaming API records to one table's blob of the current hour, as
// Defender does: JSON lines with CR LF.
type storageBlob struct {
	t         *testing.T
	svc       *service.Client
	container string
	name      string
	mu        sync.Mutex
	markers   []string
}

func newStorageBlob(t *testing.T, az *azuritetest.Azurite, table string) *storageBlob {
	svc, err := service.NewClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := time.Now().UTC()
	b := &storageBlob{t: t, svc: svc, container: "insights-logs-advancedhunting-" + strings.ToLower(table),
		name: fmt.Sprintf("tenantId=e2e/y=%04d/m=%02d/d=%02d/h=%02d/m=00/PT1H.json", h.Year(), int(h.Month()), h.Day(), h.Hour())}
	ctx := context.Background()
	cc := svc.NewContainerClient(b.container)
	if _, err := cc.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatal(err)
	}
	if _, err := cc.NewAppendBlobClient(b.name).Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// append writes n records marked "<round>-<i>" in one append.
func (b *storageBlob) append(round string, n int) error {
	var buf bytes.Buffer
	var ms []string
	for i := range n {
		m := fmt.Sprintf("%s-%d", round, i)
		ms = append(ms, m)
		raw, _ := json.Marshal(map[string]any{
			"time": "2024-05-02T10:00:01.0000000Z", "tenantId": "11111111-2222-3333-4444-555555555555",
			"operationName": "Publish", "category": "AdvancedHunting-DeviceProcessEvents",
			"properties": map[string]any{"Timestamp": "2024-05-02T09:59:58.1234567Z", "DeviceName": "host-1",
				"ActionType": "ProcessCreated", "ReportId": i, "Marker": m},
		})
		buf.Write(raw)
		buf.WriteString("\r\n")
	}
	ab := b.svc.NewContainerClient(b.container).NewAppendBlobClient(b.name)
	if _, err := ab.AppendBlock(context.Background(), streaming.NopCloser(bytes.NewReader(buf.Bytes())), nil); err != nil {
		return err
	}
	b.mu.Lock()
	b.markers = append(b.markers, ms...)
	b.mu.Unlock()
	return nil
}

func (b *storageBlob) written() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.markers...)
}

// TestEventStorageKilledMidBlob: the beat reads a blob that Defender keeps appending to and is
// killed with SIGKILL while it reads; the restart on the same path.data resumes at the stored
// offset. Every record reaches the output, and one delivered twice keeps its _id.
func TestEventStorageKilledMidBlob(t *testing.T) {
	az := azuritetest.Shared(t)
	blob := newStorageBlob(t, az, "KillMidBlob")
	if err := blob.append("r0", 5000); err != nil {
		t.Fatal(err)
	}
	out, data := t.TempDir(), t.TempDir()
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{map[string]any{
			"type": "defender-event-storage", "id": "storage-kill",
			"storage_account_connection_string": az.ConnectionString(),
			"tables":                            []string{"KillMidBlob"},
			"interval":                          "200ms",
			"preserve_original_event":           true, // each record's marker is read from event.original
		}},
		"output.file": map[string]any{"path": out, "filename": "docs"},
		"queue.mem":   map[string]any{"flush.timeout": "100ms", "flush.min_events": 50},
	})

	first := startBeat(t, cfg, data)
	// Defender keeps appending while the beat reads.
	stop := make(chan struct{})
	appended := make(chan error, 1)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				appended <- nil
				return
			case <-time.After(20 * time.Millisecond):
			}
			if err := blob.append(fmt.Sprintf("r%d", i), 200); err != nil {
				appended <- err
				return
			}
		}
	}()
	waitFor(t, 60*time.Second, "the first records in the output", func() bool { return len(readDocs(t, out)) >= 2000 })
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	close(stop)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	atKill := len(readDocs(t, out))
	want := blob.written()
	if atKill >= len(want) {
		t.Fatalf("the beat had written all %d records before the kill: not a kill mid-blob", len(want))
	}
	cur := storedCursor(t, data, "defender-event-storage::storage-kill::")
	t.Logf("killed after %d of %d records; stored cursor %v", atKill, len(want), cur)

	second := startBeat(t, cfg, data)
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	ids := map[string]string{}
	waitFor(t, 90*time.Second, "every record in the output", func() bool {
		seen := map[string]bool{}
		for _, d := range readDocs(t, out) {
			seen[originalMarker(d)] = true
		}
		for _, m := range want {
			if !seen[m] {
				return false
			}
		}
		return true
	})
	dups := 0
	for _, d := range readDocs(t, out) {
		marker, id := originalMarker(d), fmt.Sprint(get(d, "@metadata._id"))
		if get(d, "input.type") != "defender-event-storage" || get(d, "event.dataset") != "m365_defender.event" {
			t.Fatalf("document of input %v, dataset %v", get(d, "input.type"), get(d, "event.dataset"))
		}
		if prev, ok := ids[marker]; ok {
			dups++
			if prev != id {
				t.Fatalf("record %s written with _id %s and %s", marker, prev, id)
			}
		}
		ids[marker] = id
	}
	if len(ids) != len(want) {
		t.Fatalf("%d records in the output, %d written", len(ids), len(want))
	}
	t.Logf("%d records, %d delivered twice (same _id)", len(want), dups)
}

// `defenderbeat test credentials` on storage inputs: a working key passes, a wrong one is named
// with what to fix, and neither key appears in the output.
func TestEventStorageTestCredentials(t *testing.T) {
	az := azuritetest.Shared(t)
	newStorageBlob(t, az, "Credentials")
	const wrongKey = "d3Jvbmcga2V5"
	input := func(id, connectionString string) map[string]any {
		return map[string]any{"type": "defender-event-storage", "id": id, "storage_account_connection_string": connectionString}
	}
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{input("good", az.ConnectionString()),
			input("bad", strings.Replace(az.ConnectionString(), azuritetest.AccountKey, wrongKey, 1))},
		"output.console.enabled": true,
	})
	r := run(t, "", "test", "credentials", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "good (defender-event-storage)... OK") || !strings.Contains(r.stdout, "bad (defender-event-storage)... FAILED") ||
		!strings.Contains(r.stdout, "refused the key") {
		t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, wrongKey) || strings.Contains(r.stdout+r.stderr, azuritetest.AccountKey) {
		t.Fatal("a key appears in the output")
	}
}
