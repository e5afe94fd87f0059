package event

import (
	"fmt"
	"strings"

	"github.com/elastic/beats/v7/libbeat/statestore"
	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// cursorTools let `defenderbeat cursor` show the checkpoints this input keeps in the registry
// (checkpoint_store: local) and forget them, and say where the blob store keeps them.
var cursorTools = &inputkit.CursorTools{
	Describe: func(source string, dec statestore.ValueDecoder) (inputkit.Position, error) {
		stream, partition, ok := strings.Cut(source, "/checkpoint/")
		if !ok {
			return inputkit.Position{}, fmt.Errorf("not a checkpoint: %q", source)
		}
		var cp storedCheckpoint
		if err := dec.Decode(&cp); err != nil {
			return inputkit.Position{}, err
		}
		return inputkit.Position{
			Summary: fmt.Sprintf("%s partition %s: sequence number %d, offset %s", stream, partition, cp.SequenceNumber, cp.Offset),
			Fields: map[string]any{
				"event_hub": stream, "partition": partition,
				"sequence_number": cp.SequenceNumber, "offset": cp.Offset,
			},
			Moved: cp.Updated,
		}, nil
	},
	// Forgetting a checkpoint makes the partition start at processor_start_position.
	Move: func(_ string, _ statestore.ValueDecoder, m inputkit.Move) (any, error) {
		switch {
		case m.FullExport:
			return nil, inputkit.ErrNoFullExport
		case !m.To.IsZero():
			return nil, inputkit.ErrNoTime
		}
		return nil, nil
	},
	Elsewhere: func(cfg *conf.C) (string, bool) {
		c, _ := configure(cfg)
		if c.CheckpointStore != StoreBlob {
			return "", false
		}
		account := c.StorageAccount
		if account == "" {
			account = "of storage_account_connection_string"
		}
		return fmt.Sprintf("Azure Blob storage account %s, container %s (one blob per partition, shared by every instance)", account, c.StorageAccountContainer), true
	},
}
