package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2/checkpoints"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

const e2eHub = "defender-streaming"

func startEventHub(t *testing.T, partitions int) *eventhubfake.Server {
	t.Helper()
	hub, err := eventhubfake.Start(eventhubfake.Config{Hubs: []eventhubfake.HubConfig{{Name: e2eHub, Partitions: partitions}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	return hub
}

// streamRecords puts messages of two records each on every partition; markers name them.
func streamRecords(t *testing.T, hub *eventhubfake.Server, round string, partitions, messages int) []string {
	t.Helper()
	var markers []string
	for p := range partitions {
		var bodies [][]byte
		for m := range messages {
			var recs []any
			for r := range 2 {
				marker := fmt.Sprintf("%s-%d-%d-%d", round, p, m, r)
				markers = append(markers, marker)
				recs = append(recs, map[string]any{
					"time": "2024-05-02T10:00:01.0000000Z", "tenantId": "11111111-2222-3333-4444-555555555555", "operationName": "Publish",
					"category": "AdvancedHunting-DeviceNetworkEvents",
					"properties": map[string]any{"Timestamp": "2024-05-02T09:59:58.1234567Z", "ActionType": "ConnectionSuccess",
						"RemoteIP": "203.0.113.7", "RemotePort": 443, "ReportId": 7, "Marker": marker},
				})
			}
			body, _ := json.Marshal(map[string]any{"records": recs})
			bodies = append(bodies, body)
		}
		if err := hub.Send(e2eHub, fmt.Sprint(p), bodies...); err != nil {
			t.Fatal(err)
		}
	}
	return markers
}

// owners lists, per instance, the partitions it holds in the checkpoint container.
func owners(t *testing.T, store *checkpoints.BlobStore, namespace string) map[string][]string {
	t.Helper()
	list, err := store.ListOwnership(context.Background(), namespace, e2eHub, azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		return nil // the container appears with the first instance
	}
	out := map[string][]string{}
	for _, o := range list {
		if o.OwnerID != "" && time.Since(o.LastModifiedTime) < 4*time.Second {
			out[o.OwnerID] = append(out[o.OwnerID], o.PartitionID)
		}
	}
	return out
}

func shares(m map[string][]string) []int {
	var n []int
	for _, parts := range m {
		n = append(n, len(parts))
	}
	slices.Sort(n)
	return n
}

// Two beats on one 4-partition hub share it 2+2 through the blob checkpoint store; one is
// killed with SIGKILL and the other takes all four partitions over. Every record sent reaches
// the output; a record delivered twice (read again after the kill) keeps its _id.
func TestEventInstancesSharePartitionsAndSurviveAKill(t *testing.T) {
	az := azuritetest.Shared(t)
	hub := startEventHub(t, 4)
	const containerName = "e2e-balance"
	input := map[string]any{
		"type": "defender-event", "id": "streaming", "eventhub": e2eHub,
		"preserve_original_event":           true, // each record's marker is read from event.original
		"connection_string":                 hub.ConnectionString(""),
		"storage_account_connection_string": az.ConnectionString(),
		"storage_account_container":         containerName,
		"processor_update_interval":         "1s",
		"partition_expiration_duration":     "3s",
		"partition_receive_timeout":         "200ms",
		"partition_receive_count":           10,
	}
	type instance struct {
		cmd *exec.Cmd
		out string
	}
	start := func() *instance {
		in := &instance{out: t.TempDir()}
		cfg := writeConfig(t, map[string]any{
			"defenderbeat.inputs": []any{input},
			"output.file":         map[string]any{"path": in.out, "filename": "docs"},
			"queue.mem":           map[string]any{"flush.timeout": "100ms", "flush.min_events": 10},
		})
		in.cmd = exec.Command(binary, "-c", cfg, "--path.home", t.TempDir(), "--path.data", t.TempDir())
		if err := in.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = in.cmd.Process.Signal(syscall.SIGTERM)
			_ = in.cmd.Wait()
		})
		return in
	}
	cc, err := container.NewClientFromConnectionString(az.ConnectionString(), containerName, nil)
	if err != nil {
		t.Fatal(err)
	}
	store, _ := checkpoints.NewBlobStore(cc, nil)
	props, _ := azeventhubs.ParseConnectionString(hub.ConnectionString(""))
	namespace := props.FullyQualifiedNamespace

	var sent []string
	sent = append(sent, streamRecords(t, hub, "r1", 4, 10)...)
	a, b := start(), start()
	waitFor(t, 60*time.Second, "the two instances to hold two partitions each", func() bool {
		return slices.Equal(shares(owners(t, store, namespace)), []int{2, 2})
	})
	all := func() []map[string]any { return append(readDocs(t, a.out), readDocs(t, b.out)...) }
	hasAll := func(docs []map[string]any) bool {
		seen := map[string]bool{}
		for _, d := range docs {
			seen[originalMarker(d)] = true
		}
		for _, m := range sent {
			if !seen[m] {
				return false
			}
		}
		return true
	}
	waitFor(t, 60*time.Second, "the first round in the outputs", func() bool { return hasAll(all()) })
	if len(readDocs(t, a.out)) == 0 || len(readDocs(t, b.out)) == 0 {
		t.Fatal("one instance published nothing: the partitions were not shared")
	}

	// Records arrive while one instance dies without a word.
	sent = append(sent, streamRecords(t, hub, "r2", 4, 10)...)
	time.Sleep(200 * time.Millisecond)
	_ = b.cmd.Process.Signal(syscall.SIGKILL)
	_ = b.cmd.Wait()
	sent = append(sent, streamRecords(t, hub, "r3", 4, 10)...)
	waitFor(t, 60*time.Second, "the survivor to hold all four partitions", func() bool {
		return slices.Equal(shares(owners(t, store, namespace)), []int{4})
	})
	waitFor(t, 60*time.Second, "every record in the outputs", func() bool { return hasAll(all()) })

	t.Logf("%d records, %d delivered twice (same _id)", len(sent), deliveredTwice(t, all()))
}

// With checkpoint_store: local the checkpoints are registry entries under path.data. The beat is
// killed with SIGKILL while records arrive and started again on the same path.data: every record
// reaches the output, what is read again keeps its _id, and what was checkpointed before the
// kill is not read again (the restart resumes from the registry, not from the earliest event).
func TestEventLocalCheckpointsSurviveAKill(t *testing.T) {
	hub := startEventHub(t, 4)
	data := t.TempDir()
	input := map[string]any{
		"type": "defender-event", "id": "streaming", "eventhub": e2eHub,
		"preserve_original_event":   true, // each record's marker is read from event.original
		"connection_string":         hub.ConnectionString(""),
		"checkpoint_store":          "local",
		"processor_start_position":  "earliest",
		"partition_receive_timeout": "200ms",
		"partition_receive_count":   10,
	}
	start := func() (*exec.Cmd, string) {
		out := t.TempDir()
		cfg := writeConfig(t, map[string]any{
			"defenderbeat.inputs": []any{input},
			"output.file":         map[string]any{"path": out, "filename": "docs"},
			"queue.mem":           map[string]any{"flush.timeout": "100ms", "flush.min_events": 10},
		})
		cmd := exec.Command(binary, "-c", cfg, "--path.home", t.TempDir(), "--path.data", data)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		})
		return cmd, out
	}
	markersIn := func(dir string) map[string]int {
		seen := map[string]int{}
		for _, d := range readDocs(t, dir) {
			seen[originalMarker(d)]++
		}
		return seen
	}
	hasAll := func(sent []string, seen ...map[string]int) bool {
		for _, m := range sent {
			found := false
			for _, s := range seen {
				found = found || s[m] > 0
			}
			if !found {
				return false
			}
		}
		return true
	}

	first := streamRecords(t, hub, "r1", 4, 10)
	cmd, out1 := start()
	waitFor(t, 60*time.Second, "the first round in the output", func() bool { return hasAll(first, markersIn(out1)) })
	// Checkpoints are written at most once a second per partition, after the output's ACK.
	time.Sleep(3 * time.Second)

	// Records arrive and the beat dies without a word while reading them.
	second := streamRecords(t, hub, "r2", 4, 25)
	waitFor(t, 30*time.Second, "the second round to start arriving", func() bool {
		seen := markersIn(out1)
		for _, m := range second {
			if seen[m] > 0 {
				return true
			}
		}
		return false
	})
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	third := streamRecords(t, hub, "r3", 4, 10)

	_, out2 := start()
	sent := append(append(append([]string(nil), first...), second...), third...)
	waitFor(t, 60*time.Second, "every record in the outputs", func() bool { return hasAll(sent, markersIn(out1), markersIn(out2)) })

	again := markersIn(out2)
	for _, m := range first {
		if again[m] > 0 {
			t.Fatalf("record %s, checkpointed before the kill, was read again after the restart", m)
		}
	}
	t.Logf("%d records, %d delivered twice (same _id)", len(sent), deliveredTwice(t, append(readDocs(t, out1), readDocs(t, out2)...)))
}

// deliveredTwice counts the records written more than once, each copy with the same _id: a
// record read again after a kill is indexed once.
func deliveredTwice(t *testing.T, docs []map[string]any) int {
	t.Helper()
	ids := map[string]string{}
	dups := 0
	for _, d := range docs {
		marker, id := originalMarker(d), fmt.Sprint(get(d, "@metadata._id"))
		if prev, ok := ids[marker]; ok {
			dups++
			if prev != id {
				t.Fatalf("record %s written with _id %s and %s", marker, prev, id)
			}
		}
		ids[marker] = id
	}
	return dups
}

// `defenderbeat test credentials` on event inputs: a working one passes, a wrong key is named.
func TestEventTestCredentials(t *testing.T) {
	az := azuritetest.Shared(t)
	const key = "c2VjcmV0LWtleQ=="
	hub, err := eventhubfake.Start(eventhubfake.Config{SASKeyName: "listen", SASKey: key, Hubs: []eventhubfake.HubConfig{{Name: e2eHub, Partitions: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	input := func(id, connectionString string) map[string]any {
		return map[string]any{"type": "defender-event", "id": id, "eventhub": e2eHub, "connection_string": connectionString,
			"storage_account_connection_string": az.ConnectionString(), "storage_account_container": "e2e-credentials"}
	}
	wrong := strings.Replace(hub.ConnectionString(""), key, "d3Jvbmc=", 1)
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs":    []any{input("good", hub.ConnectionString("")), input("bad", wrong)},
		"output.console.enabled": true,
	})
	r := run(t, "", "test", "credentials", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "good (defender-event)... OK") || !strings.Contains(r.stdout, "bad (defender-event)... FAILED") ||
		!strings.Contains(r.stdout, "Listen claim") {
		t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "d3Jvbmc") || strings.Contains(r.stdout+r.stderr, key) {
		t.Fatal("a key appears in the output")
	}
}

// originalMarker reads the marker of the record a document came from (event.original, kept with
// preserve_original_event; the mapping drops columns it does not know).
func originalMarker(doc map[string]any) string {
	var rec struct {
		Properties struct {
			Marker string `json:"Marker"`
		} `json:"properties"`
	}
	_ = json.Unmarshal([]byte(fmt.Sprint(get(doc, "event.original"))), &rec)
	return rec.Properties.Marker
}
