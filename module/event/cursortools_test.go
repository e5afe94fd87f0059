package event

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

type storedEntry struct {
	get func(any) error
}

func (e storedEntry) Decode(to any) error { return e.get(to) }

// TestCursorToolsReadLocalCheckpoints reads a checkpoint as the local store wrote it, refuses to
// move it to a time, and says where blob checkpoints live.
func TestCursorToolsReadLocalCheckpoints(t *testing.T) {
	states, _ := registry{t.TempDir()}.open(t)
	st, err := states.StoreFor(InputType)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seq, offset := int64(41), "9000"
	before := time.Now().Add(-time.Second)
	if err := newLocalStore(st, "events").SetCheckpoint(context.Background(), azeventhubs.Checkpoint{
		FullyQualifiedNamespace: "ns.servicebus.windows.net", EventHubName: "hub", ConsumerGroup: "$Default", PartitionID: "3",
		SequenceNumber: &seq, Offset: &offset,
	}, nil); err != nil {
		t.Fatal(err)
	}
	key := "defender-event::events::ns.servicebus.windows.net/hub/$default/checkpoint/3"
	source := strings.TrimPrefix(key, "defender-event::events::")
	entry := storedEntry{func(to any) error { return st.Get(key, to) }}

	p, err := cursorTools.Describe(source, entry)
	if err != nil {
		t.Fatal(err)
	}
	if p.Fields["partition"] != "3" || p.Fields["sequence_number"] != int64(41) || p.Fields["offset"] != "9000" ||
		!strings.Contains(p.Summary, "partition 3") || p.Moved.Before(before) || !p.At.IsZero() {
		t.Fatalf("described %+v", p)
	}
	if _, err := cursorTools.Move(source, entry, inputkit.Move{To: time.Now(), Now: time.Now()}); !errors.Is(err, inputkit.ErrNoTime) {
		t.Fatalf("--to on a checkpoint: %v", err)
	}
	if v, err := cursorTools.Move(source, entry, inputkit.Move{Now: time.Now()}); v != nil || err != nil {
		t.Fatalf("a reset must forget the checkpoint: %v %v", v, err)
	}

	blob := conf.MustNewConfigFrom(map[string]any{"id": "shared", "eventhub": "defender-streaming",
		"connection_string": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s",
		"storage_account":   "contosocp", "storage_account_key": "secret-key"})
	where, ok := cursorTools.Elsewhere(blob)
	if !ok || !strings.Contains(where, "contosocp") || !strings.Contains(where, DefaultContainer("defender-streaming")) || strings.Contains(where, "secret-key") {
		t.Fatalf("blob checkpoints are in %q (%v)", where, ok)
	}
	local := conf.MustNewConfigFrom(map[string]any{"id": "one", "eventhub": "h", "checkpoint_store": "local",
		"connection_string": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s"})
	if where, ok := cursorTools.Elsewhere(local); ok {
		t.Fatalf("local checkpoints said to be in %q", where)
	}
}
