package event

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
)

// integrationContainerPrefix is the container name Elastic's m365_defender integration renders
// into its Agent policy (azure-eventhub-input-<eventhub>), which differs from Filebeat's own
// default: a user moving from the integration must name it to keep its checkpoints.
const integrationContainerPrefix = "azure-eventhub-input-"

// receiveProbeWait is how long the probe's receiver listens: long enough for the link to open.
const receiveProbeWait = 3 * time.Second

// Probe checks an input's options against Azure the way a run uses them: the hub's properties,
// a receiver on its first partition (the consumer group and the Listen right), and the
// checkpoint container (created if missing, then written to and cleaned up). It is what
// `defenderbeat test credentials` reports for the input; every failure names what to fix.
func Probe(ctx context.Context, cfg *conf.C, log *logp.Logger) error {
	c, err := configure(cfg)
	if err != nil {
		return err
	}
	return probe(ctx, c, defaultTuning(), log)
}

func probe(ctx context.Context, c Config, tune tuning, log *logp.Logger) error {
	if log == nil {
		log = logp.NewNopLogger()
	}
	cl, err := newClients(&c, tune, log)
	if err != nil {
		return err
	}
	defer cl.close(context.Background())

	var problems []string
	if err := probeHub(ctx, cl.consumer, &c); err != nil {
		problems = append(problems, err.Error())
	}
	if cl.container != nil {
		if err := probeContainer(ctx, cl, &c, tune); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n  "))
	}
	return nil
}

func probeHub(ctx context.Context, cc *azeventhubs.ConsumerClient, c *Config) error {
	fail := func(err error) error {
		return fmt.Errorf("event hub %q in %s: %w", c.EventHub, c.namespace, withAdvice(err, explainEventHubs(err, c)))
	}
	props, err := cc.GetEventHubProperties(ctx, nil)
	if err != nil {
		return fail(err)
	}
	if len(props.PartitionIDs) == 0 {
		return fmt.Errorf("event hub %q in %s has no partitions", c.EventHub, c.namespace)
	}
	if err := checkReceiver(ctx, cc, props.PartitionIDs[0]); err != nil {
		return fail(err)
	}
	return nil
}

// checkReceiver opens a receiver on a partition for a moment: hub properties need no consumer
// group, a receiver does, and the Listen right. The Processor itself only logs a partition it
// cannot open, and retries it forever.
func checkReceiver(ctx context.Context, cc *azeventhubs.ConsumerClient, partition string) error {
	pc, err := cc.NewPartitionClient(partition, &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{Latest: to.Ptr(true)},
		Prefetch:      -1,
	})
	if err != nil {
		return err
	}
	defer pc.Close(context.Background())
	receiveCtx, cancel := context.WithTimeout(ctx, receiveProbeWait)
	defer cancel()
	_, err = pc.ReceiveEvents(receiveCtx, 1, nil)
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case isOwnershipLost(err), strings.Contains(err.Error(), "resource-limit-exceeded"):
		// An instance holds the partition (or receivers fill the group's quota): the group
		// exists and the identity may listen.
		return nil
	}
	return err
}

func probeContainer(ctx context.Context, cl *clients, c *Config, tune tuning) error {
	cc := cl.container
	fail := func(err error) error {
		return fmt.Errorf("checkpoint container %q: %w", c.StorageAccountContainer, withAdvice(shortStorageError(err), explainStorage(err, c)))
	}
	_, err := cc.GetProperties(ctx, nil)
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		if name, found := integrationContainer(ctx, c, tune, cl.cred); found {
			return fmt.Errorf("checkpoint container %q does not exist, but %q does: that is where Elastic's m365_defender integration keeps its checkpoints; set storage_account_container: %s to continue from them",
				c.StorageAccountContainer, name, name)
		}
		if _, err := ensureContainer(ctx, cc); err != nil {
			return fail(err)
		}
	case err != nil:
		return fail(err)
	}
	// Reading is not enough: checkpoints and ownership claims are writes.
	blob := cc.NewBlockBlobClient("defenderbeat-access-check")
	if _, err := blob.Upload(ctx, streaming.NopCloser(bytes.NewReader([]byte("ok"))), nil); err != nil {
		return fail(err)
	}
	if _, err := blob.Delete(ctx, nil); err != nil {
		return fail(err)
	}
	return nil
}

// integrationContainer reports whether the integration's checkpoint container for the hub
// exists in the same account.
func integrationContainer(ctx context.Context, c *Config, tune tuning, cred azcore.TokenCredential) (string, bool) {
	name := strings.ReplaceAll(integrationContainerPrefix+strings.ToLower(c.EventHub), "_", "-")
	if name == c.StorageAccountContainer {
		return "", false
	}
	other := *c
	other.StorageAccountContainer = name
	other.blobURL = strings.TrimSuffix(c.blobURL, c.StorageAccountContainer) + name
	cc, err := newContainerClient(&other, tune, cred)
	if err != nil {
		return "", false
	}
	_, err = cc.GetProperties(ctx, nil)
	return name, err == nil
}
