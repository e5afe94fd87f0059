package event

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
)

// legacyCheckpoint is what the legacy Event Processor Host kept per partition at the root of
// the container (a blob named by the partition id). Filebeat's azure-eventhub input used it as
// its processor v1, and so did Elastic Agent for the integration unless told otherwise.
type legacyCheckpoint struct {
	PartitionID string `json:"partitionID"`
	Checkpoint  struct {
		Offset         string `json:"offset"`
		SequenceNumber int64  `json:"sequenceNumber"`
	} `json:"checkpoint"`
}

// maxLegacyBlob bounds what is read of a legacy checkpoint blob (they are a few hundred bytes).
const maxLegacyBlob = 64 << 10

// migrateLegacyCheckpoints writes, for every partition that has no checkpoint in the current
// layout, the one the legacy processor left, so that a hub read by the integration continues
// where the Agent stopped instead of from processor_start_position. It returns the partitions
// migrated.
func migrateLegacyCheckpoints(ctx context.Context, cc *container.Client, store azeventhubs.CheckpointStore,
	namespace, hub, group string, partitions []string) ([]string, error) {
	current, err := store.ListCheckpoints(ctx, namespace, hub, group, nil)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, cp := range current {
		have[cp.PartitionID] = true
	}
	var migrated []string
	for _, pid := range partitions {
		if have[pid] {
			continue
		}
		buf := make([]byte, maxLegacyBlob)
		n, err := cc.NewBlobClient(pid).DownloadBuffer(ctx, buf, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound) {
			continue
		}
		if err != nil {
			return migrated, fmt.Errorf("reading the legacy checkpoint of partition %s: %w", pid, shortStorageError(err))
		}
		var legacy legacyCheckpoint
		if err := json.Unmarshal(buf[:n], &legacy); err != nil || legacy.PartitionID != pid {
			continue // not a legacy checkpoint: leave the blob alone
		}
		// "-1" (or nothing) is the legacy processor's "no event processed yet".
		if offset, err := strconv.ParseInt(legacy.Checkpoint.Offset, 10, 64); err != nil || offset < 0 {
			continue
		}
		offset, seq := legacy.Checkpoint.Offset, legacy.Checkpoint.SequenceNumber
		err = store.SetCheckpoint(ctx, azeventhubs.Checkpoint{
			FullyQualifiedNamespace: namespace, EventHubName: hub, ConsumerGroup: group, PartitionID: pid,
			Offset: &offset, SequenceNumber: &seq,
		}, nil)
		if err != nil {
			return migrated, fmt.Errorf("writing the migrated checkpoint of partition %s: %w", pid, shortStorageError(err))
		}
		migrated = append(migrated, pid)
	}
	return migrated, nil
}
