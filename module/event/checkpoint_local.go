package event

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/elastic/beats/v7/libbeat/statestore"
)

// localStore is a checkpoint store in the beat's own registry, for one instance that reads a
// hub alone: checkpoints survive restarts like every other cursor; partition ownership lives in
// memory only, because no other instance can see this registry to compete for it (and a
// restarted beat must not wait for claims of its own previous, dead process to expire).
type localStore struct {
	store  *statestore.Store
	prefix string // "defender-event::<input id>::"

	mu      sync.Mutex
	owners  map[string]azeventhubs.Ownership // by ownership key
	version int64
}

var _ azeventhubs.CheckpointStore = (*localStore)(nil)

// storedCheckpoint is a checkpoint as the registry holds it.
type storedCheckpoint struct {
	SequenceNumber int64     `struct:"sequence_number" json:"sequence_number"`
	Offset         string    `struct:"offset" json:"offset"`
	Updated        time.Time `struct:"updated" json:"updated"`
}

func newLocalStore(store *statestore.Store, inputID string) *localStore {
	return &localStore{
		store:  store,
		prefix: InputType + "::" + inputID + "::",
		owners: map[string]azeventhubs.Ownership{},
	}
}

// checkpointKey places a checkpoint like the blob store names its blobs, so one input id
// pointed at another namespace, hub or consumer group starts fresh instead of applying another
// stream's position.
func (s *localStore) checkpointKey(namespace, hub, group, partition string) string {
	return s.prefix + strings.ToLower(namespace+"/"+hub+"/"+group) + "/checkpoint/" + partition
}

func ownershipKey(o azeventhubs.Ownership) string {
	return strings.ToLower(o.FullyQualifiedNamespace+"/"+o.EventHubName+"/"+o.ConsumerGroup) + "/" + o.PartitionID
}

// ClaimOwnership grants a claim whose ETag matches the current one, or a first claim.
func (s *localStore) ClaimOwnership(_ context.Context, claims []azeventhubs.Ownership, _ *azeventhubs.ClaimOwnershipOptions) ([]azeventhubs.Ownership, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var granted []azeventhubs.Ownership
	for _, claim := range claims {
		key := ownershipKey(claim)
		current, exists := s.owners[key]
		switch {
		case !exists && claim.ETag != nil, exists && (claim.ETag == nil || *claim.ETag != *current.ETag):
			continue // someone changed it since the claimer looked: as the blob store, skip
		}
		s.version++
		etag := azcore.ETag(strconv.FormatInt(s.version, 10))
		claim.ETag = &etag
		claim.LastModifiedTime = time.Now().UTC()
		s.owners[key] = claim
		granted = append(granted, claim)
	}
	return granted, nil
}

// ListOwnership lists the claims of this process.
func (s *localStore) ListOwnership(_ context.Context, namespace, hub, group string, _ *azeventhubs.ListOwnershipOptions) ([]azeventhubs.Ownership, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := strings.ToLower(namespace+"/"+hub+"/"+group) + "/"
	var out []azeventhubs.Ownership
	for key, o := range s.owners {
		if strings.HasPrefix(key, prefix) {
			out = append(out, o)
		}
	}
	return out, nil
}

// ListCheckpoints reads this stream's checkpoints from the registry.
func (s *localStore) ListCheckpoints(_ context.Context, namespace, hub, group string, _ *azeventhubs.ListCheckpointsOptions) ([]azeventhubs.Checkpoint, error) {
	prefix := s.checkpointKey(namespace, hub, group, "")
	var out []azeventhubs.Checkpoint
	err := s.store.Each(func(key string, dec statestore.ValueDecoder) (bool, error) {
		partition, ok := strings.CutPrefix(key, prefix)
		if !ok || partition == "" {
			return true, nil
		}
		var st storedCheckpoint
		if err := dec.Decode(&st); err != nil {
			return false, fmt.Errorf("checkpoint %s in the registry is unreadable: %w", key, err)
		}
		seq, offset := st.SequenceNumber, st.Offset
		out = append(out, azeventhubs.Checkpoint{
			FullyQualifiedNamespace: namespace, EventHubName: hub, ConsumerGroup: group, PartitionID: partition,
			SequenceNumber: &seq, Offset: &offset,
		})
		return true, nil
	})
	return out, err
}

// SetCheckpoint writes a checkpoint to the registry.
func (s *localStore) SetCheckpoint(_ context.Context, cp azeventhubs.Checkpoint, _ *azeventhubs.SetCheckpointOptions) error {
	if cp.SequenceNumber == nil || cp.Offset == nil || cp.PartitionID == "" {
		return errors.New("checkpoint without partition, sequence number or offset")
	}
	return s.store.Set(s.checkpointKey(cp.FullyQualifiedNamespace, cp.EventHubName, cp.ConsumerGroup, cp.PartitionID),
		storedCheckpoint{SequenceNumber: *cp.SequenceNumber, Offset: *cp.Offset, Updated: time.Now().UTC()})
}
