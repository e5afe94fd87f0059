// Package event is the m365_defender.event dataset: Defender XDR Streaming API records
// (Advanced Hunting rows) read from an Azure Event Hub with the azeventhubs Processor, which
// shares the hub's partitions between instances; each partition's checkpoint moves only past
// messages whose every document the output acknowledged.
package event

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2/checkpoints"
	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/common/acker"
	"github.com/elastic/beats/v7/libbeat/feature"
	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/beats/v7/libbeat/statestore"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/mapstr"
	"github.com/elastic/go-concert/ctxtool"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// InputType never changes: it is part of every locally stored checkpoint key.
const InputType = "defender-event"

const dataset = "event"

// tuning holds what tests shorten or inject; users get the defaults.
type tuning struct {
	retry           azeventhubs.RetryOptions
	blobRetry       policy.RetryOptions
	blobTransport   policy.Transporter // the checkpoint account's HTTP transport; nil: the SDK's
	tls             *tls.Config        // Event Hubs TLS (the WebSocket test bridge's CA); nil: system roots
	credential      func(*msapi.Options)
	instanceID      string
	checkpointEvery time.Duration // shortest gap between two checkpoint writes of a partition
	closeWait       time.Duration // how long a closing partition waits for outstanding ACKs
	lagEvery        time.Duration // how often owned partitions' last sequence numbers are read
	restartBackoff  time.Duration // first wait before restarting a failed processor
	maxBackoff      time.Duration
	now             func() time.Time
}

func defaultTuning() tuning {
	return tuning{
		checkpointEvery: time.Second,
		closeWait:       5 * time.Second,
		lagEvery:        30 * time.Second,
		restartBackoff:  5 * time.Second,
		maxBackoff:      2 * time.Minute,
		now:             time.Now,
	}
}

// Dataset is the event dataset as the beat lists it. Unlike the API inputs it keeps no cursor:
// Event Hubs checkpoints (in Blob storage, or in the beat's registry with checkpoint_store:
// local) say where each partition stands.
var Dataset = inputkit.Dataset{
	Name:      dataset,
	InputType: InputType,
	Plugin:    func(log *logp.Logger, store statestore.States) v2.Plugin { return plugin(log, store, defaultTuning()) },
	Check:     checkConfig,
	Probe:     Probe,
	Transform: Transform,
	Options:   inputkit.OptionsOf(Config{}),
	Cursor:    cursorTools,
}

func plugin(log *logp.Logger, store statestore.States, tune tuning) v2.Plugin {
	return v2.Plugin{
		Name:      InputType,
		Stability: feature.Stable,
		Info:      "Microsoft Defender XDR Streaming API events from Azure Event Hubs",
		Manager: v2.ConfigureWith(func(cfg *conf.C, _ *logp.Logger) (v2.Input, error) {
			c, err := configure(cfg)
			if err != nil {
				return nil, err
			}
			return &input{cfg: c, states: store, tune: tune}, nil
		}, log),
	}
}

// checkConfig reports every problem of an input's options (start-up and `test config`).
func checkConfig(cfg *conf.C) error {
	_, err := configure(cfg)
	return err
}

func configure(cfg *conf.C) (Config, error) {
	c := defaultConfig()
	if err := cfg.Unpack(&c); err != nil {
		return c, fmt.Errorf("input type %s: %w", InputType, err)
	}
	return c, c.resolve()
}

type input struct {
	cfg    Config
	states statestore.States
	tune   tuning
}

func (in *input) Name() string { return InputType }

func (in *input) Test(ctx v2.TestContext) error {
	return probe(ctxtool.FromCanceller(ctx.Cancelation), in.cfg, in.tune, ctx.Logger)
}

// run is one input's running state.
type run struct {
	cfg      *Config
	tune     tuning
	log      *logp.Logger
	status   *v2.Context
	pipeline beat.PipelineConnector
	metrics  *inputMetrics
	opts     transform.Options
	decoder  Decoder // with the sanitizers of sanitize_options
	clients  *clients
	migrated bool // legacy checkpoints were looked for
}

func (in *input) Run(ctx v2.Context, pipeline beat.PipelineConnector) error {
	runCtx := ctxtool.FromCanceller(ctx.Cancelation)
	r := &run{
		cfg: &in.cfg, tune: in.tune, log: ctx.Logger, status: &ctx, pipeline: pipeline,
		metrics: newInputMetrics(ctx.MetricsRegistry),
		opts:    transform.Options{Tags: in.cfg.Tags},
		decoder: decoderFor(in.cfg.SanitizeOptions),
	}
	ctx.UpdateStatus(status.Starting, "")
	if in.cfg.CheckpointStore == StoreLocal && (in.cfg.StorageAccount != "" || in.cfg.StorageAccountConnectionString != "") {
		r.log.Warn("The checkpoint_store is local: the storage_account options are not used, and this instance must be the only reader of the hub with this consumer group.")
	}

	cl, err := newClients(r.cfg, r.tune, r.log)
	if err != nil {
		ctx.UpdateStatus(status.Failed, err.Error())
		return err
	}
	r.clients = cl
	defer cl.close(context.Background())

	store, release, err := in.checkpointStore(cl)
	if err != nil {
		ctx.UpdateStatus(status.Failed, err.Error())
		return err
	}
	defer release()

	backoff := r.tune.restartBackoff
	for {
		started := r.tune.now()
		err := r.process(runCtx, store)
		if runCtx.Err() != nil {
			return nil
		}
		if r.tune.now().Sub(started) > r.tune.maxBackoff {
			backoff = r.tune.restartBackoff // it ran well for a while: start over gently
		}
		r.metrics.processorRestarts.Inc()
		r.report(err, backoff)
		select {
		case <-runCtx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, r.tune.maxBackoff)
	}
}

// checkpointStore opens where this input's checkpoints live.
func (in *input) checkpointStore(cl *clients) (azeventhubs.CheckpointStore, func(), error) {
	if in.cfg.CheckpointStore == StoreLocal {
		st, err := in.states.StoreFor(InputType)
		if err != nil {
			return nil, nil, fmt.Errorf("opening the registry for local checkpoints: %w", err)
		}
		return newLocalStore(st, in.cfg.ID), func() { _ = st.Close() }, nil
	}
	store, err := checkpoints.NewBlobStore(cl.container, nil)
	return store, func() {}, err
}

// report logs why the processor stopped and sets the status an operator sees in Fleet.
func (r *run) report(err error, retryIn time.Duration) {
	msg := fmt.Sprintf("Reading event hub %q stopped: %v. Checkpoints are kept; retrying in %s.", r.cfg.EventHub, err, retryIn)
	r.log.Error(msg)
	var cfgErr *setupError
	if errors.As(err, &cfgErr) && cfgErr.fatal {
		r.status.UpdateStatus(status.Failed, msg)
		return
	}
	r.status.UpdateStatus(status.Degraded, msg)
}

// setupError is a failure before the processor ran; fatal ones need the configuration or
// the Azure side changed (a role, a key, a name), the others may pass by themselves.
type setupError struct {
	err   error
	fatal bool
}

func (e *setupError) Error() string { return e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// loadBalancing is how the processor claims partitions. Instances sharing a blob checkpoint
// store balance them as Filebeat's input does: a processor claims at most one more partition per
// processor_update_interval, so instances starting together do not take partitions from each
// other back and forth. A local checkpoint store has one instance, which owns every partition:
// it claims them all at once, rather than reading the last of 32 partitions five minutes after
// each start.
func (r *run) loadBalancing() azeventhubs.ProcessorStrategy {
	if r.cfg.CheckpointStore == StoreLocal {
		return azeventhubs.ProcessorStrategyGreedy
	}
	return azeventhubs.ProcessorStrategyBalanced
}

// process runs one Processor until it fails or the input stops.
func (r *run) process(ctx context.Context, store azeventhubs.CheckpointStore) error {
	firstPartition, err := r.setup(ctx, store)
	if err != nil {
		return err
	}
	proc, err := azeventhubs.NewProcessor(r.clients.consumer, store, &azeventhubs.ProcessorOptions{
		LoadBalancingStrategy:       r.loadBalancing(),
		UpdateInterval:              r.cfg.ProcessorUpdateInterval,
		PartitionExpirationDuration: r.cfg.PartitionExpirationDuration,
		StartPositions:              azeventhubs.StartPositions{Default: r.startPosition()},
		// No prefetch: each receive grants only the credit its batch needs (receiveSizer), so
		// what a partition holds in memory is bounded in bytes, not in messages.
		Prefetch: -1,
	})
	if err != nil {
		return err
	}
	procCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var workers sync.WaitGroup
	workers.Add(1)
	go func() {
		defer workers.Done()
		for {
			pc := proc.NextPartitionClient(procCtx)
			if pc == nil {
				return
			}
			workers.Add(1)
			go func() {
				defer workers.Done()
				r.readPartition(procCtx, pc)
			}()
		}
	}()
	lagDone := r.watchLag(procCtx)
	r.log.Infow("Reading the event hub.", "eventhub", r.cfg.EventHub, "namespace", r.cfg.namespace,
		"consumer_group", r.cfg.ConsumerGroup, "checkpoint_store", r.cfg.CheckpointStore, "container", r.cfg.StorageAccountContainer)
	ran := make(chan error, 1)
	go func() { ran <- proc.Run(procCtx) }()
	// Beside the processor, which would only log a consumer group it cannot read, forever.
	checked := make(chan error, 1)
	go func() { checked <- checkReceiver(procCtx, r.clients.consumer, firstPartition) }()
	select {
	case err = <-ran:
	case checkErr := <-checked:
		if checkErr != nil && procCtx.Err() == nil {
			advice := explainEventHubs(checkErr, r.cfg)
			cancel()
			<-ran
			err = &setupError{err: withAdvice(fmt.Errorf("event hub: %w", checkErr), advice), fatal: needsChange(checkErr)}
		} else {
			r.status.UpdateStatus(status.Running, "")
			err = <-ran
		}
	}
	cancel()
	workers.Wait()
	<-lagDone
	return err
}

// setup checks the hub (and creates the checkpoint container) before a processor starts, so
// that a wrong name, key or role is reported as such instead of as a silent processor.
func (r *run) setup(ctx context.Context, store azeventhubs.CheckpointStore) (firstPartition string, err error) {
	if r.clients.container != nil {
		created, err := ensureContainer(ctx, r.clients.container)
		if err != nil {
			advice := explainStorage(err, r.cfg)
			return "", &setupError{err: withAdvice(fmt.Errorf("checkpoint container %q: %w", r.cfg.StorageAccountContainer, shortStorageError(err)), advice), fatal: needsChange(err)}
		}
		if created {
			r.log.Infow("Created the checkpoint container.", "container", r.cfg.StorageAccountContainer)
			if name, found := integrationContainer(ctx, r.cfg, r.tune, r.clients.cred); found {
				r.log.Warnf("The checkpoint container %q was created, while %q exists in the same storage account: Elastic's m365_defender integration keeps its checkpoints there. "+
					"To continue where it stopped instead of reading the hub from processor_start_position, stop this input and set storage_account_container: %s.", r.cfg.StorageAccountContainer, name, name)
			}
		}
	}
	props, err := r.clients.consumer.GetEventHubProperties(ctx, nil)
	if err != nil {
		advice := explainEventHubs(err, r.cfg)
		return "", &setupError{err: withAdvice(fmt.Errorf("event hub: %w", err), advice), fatal: needsChange(err)}
	}
	if len(props.PartitionIDs) == 0 {
		return "", &setupError{err: fmt.Errorf("event hub %q has no partitions", r.cfg.EventHub)}
	}
	r.log.Debugw("Event hub found.", "partitions", len(props.PartitionIDs))
	if r.clients.container != nil && r.cfg.MigrateCheckpoint && !r.migrated {
		migrated, err := migrateLegacyCheckpoints(ctx, r.clients.container, store, r.cfg.namespace, r.cfg.EventHub, r.cfg.ConsumerGroup, props.PartitionIDs)
		if err != nil {
			return "", &setupError{err: withAdvice(err, explainStorage(err, r.cfg))}
		}
		if len(migrated) > 0 {
			r.log.Infow("Continuing from the legacy processor's checkpoints.", "partitions", migrated, "container", r.cfg.StorageAccountContainer)
		}
		r.migrated = true
	}
	return props.PartitionIDs[0], nil
}

func (r *run) startPosition() azeventhubs.StartPosition {
	if r.cfg.ProcessorStartPosition == startLatest {
		return azeventhubs.StartPosition{Latest: to.Ptr(true)}
	}
	return azeventhubs.StartPosition{Earliest: to.Ptr(true)}
}

var noNormalization = false

// readPartition reads one owned partition until it is lost or the processor stops.
func (r *run) readPartition(ctx context.Context, pc *azeventhubs.ProcessorPartitionClient) {
	pid := pc.PartitionID()
	log := r.log.With("partition_id", pid)
	defer pc.Close(context.Background())

	acks := &partitionACKs{}
	cp := newCheckpointer(pc, acks, r, log)
	client, err := r.pipeline.ConnectWith(beat.ClientConfig{
		EventListener: acker.EventPrivateReporter(func(_ int, privates []any) {
			if acks.acked(privates) {
				cp.wake()
			}
		}),
		WaitClose: r.tune.closeWait,
		// libbeat's normalization deep-copies every document into the types it encodes; the
		// transform builds them in those types already (TestDocumentsNeedNoNormalization).
		Processing: beat.ProcessingConfig{EventNormalization: &noNormalization},
	})
	if err != nil {
		log.Errorw("Cannot connect to the publisher pipeline.", "error", err)
		return
	}
	r.metrics.partitionOpened(pid)
	log.Debug("Reading partition.")

	partCtx, stopPartition := context.WithCancel(ctx)
	closed := make(chan struct{})
	go func() {
		// Closing the client also ends a Publish blocked on a full queue.
		<-partCtx.Done()
		_ = client.Close()
		close(closed)
	}()
	cpDone := make(chan struct{})
	go func() {
		defer close(cpDone)
		cp.run(partCtx)
	}()

	sizer := receiveSizer{budget: int64(r.cfg.PartitionReceiveBytes), maxCount: r.cfg.PartitionReceiveCount}
	lost := false
receive:
	for partCtx.Err() == nil {
		receiveCtx, cancel := context.WithTimeout(partCtx, r.cfg.PartitionReceiveTimeout)
		events, err := pc.ReceiveEvents(receiveCtx, sizer.next(), nil)
		cancel()
		sizes := make([]int, len(events))
		for i, ev := range events {
			sizes[i] = len(ev.Body)
		}
		sizer.observe(sizes...)
		for i, ev := range events {
			r.handle(pid, ev, acks, client)
			events[i] = nil // the body is garbage once its documents are built
		}
		if err == nil || (errors.Is(err, context.DeadlineExceeded) && partCtx.Err() == nil) {
			continue
		}
		switch {
		case partCtx.Err() != nil:
		case isOwnershipLost(err):
			// Another instance claimed the partition while the instances balance.
			lost = true
			r.metrics.ownershipLost.Inc()
			log.Debugw("Partition taken over by another instance.", "error", err)
		default:
			log.Warnw("Reading the partition failed; the processor reopens it from its checkpoint.", "error", withAdvice(err, explainEventHubs(err, r.cfg)))
		}
		break receive
	}
	stopPartition()
	<-closed // outstanding acknowledgements had closeWait to arrive
	<-cpDone
	if !lost {
		// A new owner starts from the checkpoint; after a loss it may already be ahead of ours.
		flushCtx, cancel := context.WithTimeout(context.Background(), finalFlushTimeout)
		cp.flush(flushCtx)
		cancel()
	}
	r.metrics.partitionClosed(pid)
	log.Debugw("Stopped reading partition.", "messages_unacknowledged", acks.inFlight())
}

// handle turns one message into documents and hands them to the publisher.
func (r *run) handle(pid string, ev *azeventhubs.ReceivedEventData, acks *partitionACKs, client beat.Client) {
	r.metrics.messages.Inc()
	r.metrics.bytes.Add(uint64(len(ev.Body)))
	pos := position{sequence: ev.SequenceNumber, offset: ev.Offset}
	if ev.EnqueuedTime != nil {
		pos.enqueued = *ev.EnqueuedTime
	}
	r.metrics.receivedOn(pid, pos)
	msg := acks.begin(pos)
	defer acks.seal(msg)

	publish := func(doc beat.Event) {
		if eventKind(doc.Fields) == "pipeline_error" {
			r.metrics.errorDocuments.Inc()
		} else {
			r.metrics.records.Inc()
		}
		inputkit.Decorate(&doc, dataset, r.cfg.Namespace)
		doc.Private = msg
		acks.published(msg)
		client.Publish(doc)
	}
	sum, err := safeDecode(r.decoder, ev.Body, r.opts, publish)
	if err != nil {
		// The original bytes go into the error document, not the sanitized ones.
		publish(transform.ErrorEvent(ev.Body, err, r.opts, r.tune.now()))
		r.log.Debugw("Message could not be processed; published as an error document.", "error", err, "sequence_number", ev.SequenceNumber)
		return
	}
	r.metrics.unknownCategories.Add(uint64(sum.Unknown))
	if sum.Sanitized {
		r.metrics.sanitized.Inc()
	}
}

// decoderFor applies the sanitizers named in sanitize_options (already checked), in order.
func decoderFor(names []string) Decoder {
	var d Decoder
	for _, n := range names {
		d.Sanitizers = append(d.Sanitizers, SanitizerNames[n])
	}
	return d
}

// safeDecode runs the processing; a panic on a hostile message becomes an error document.
func safeDecode(d Decoder, raw []byte, opts transform.Options, emit transform.Emit) (sum Summary, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("processing the message failed: %v", p)
		}
	}()
	return d.Decode(raw, opts, emit)
}

// eventKind reads event.kind without the allocations of a dotted-path lookup (it runs for
// every document).
func eventKind(fields mapstr.M) any {
	switch ev := fields["event"].(type) {
	case mapstr.M:
		return ev["kind"]
	case map[string]any:
		return ev["kind"]
	}
	return nil
}

// A checkpoint write gives up after checkpointTimeout (the next acknowledgement retries it);
// the last one of a closing partition after finalFlushTimeout, so a shutdown with storage
// unreachable does not hang.
const (
	checkpointTimeout = 30 * time.Second
	finalFlushTimeout = 10 * time.Second
)

// checkpointer writes a partition's checkpoint as acknowledgements move it, at most once per
// tune.checkpointEvery, from its own goroutine: the ACK callback must not wait for storage.
type checkpointer struct {
	pc      *azeventhubs.ProcessorPartitionClient
	acks    *partitionACKs
	r       *run
	log     *logp.Logger
	signal  chan struct{}
	written position
}

func newCheckpointer(pc *azeventhubs.ProcessorPartitionClient, acks *partitionACKs, r *run, log *logp.Logger) *checkpointer {
	return &checkpointer{pc: pc, acks: acks, r: r, log: log, signal: make(chan struct{}, 1)}
}

func (c *checkpointer) wake() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.signal:
		}
		c.flush(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(c.r.tune.checkpointEvery):
		}
	}
}

// flush writes the newest acknowledged position, if it moved.
func (c *checkpointer) flush(ctx context.Context) {
	pos, ok := c.acks.take()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	err := c.pc.UpdateCheckpoint(ctx, &azeventhubs.ReceivedEventData{SequenceNumber: pos.sequence, Offset: pos.offset}, nil)
	if err != nil {
		c.r.metrics.checkpointErrors.Inc()
		c.acks.retry()
		c.log.Warnw("Writing the checkpoint failed; the next acknowledgement retries it.", "sequence_number", pos.sequence,
			"error", withAdvice(shortStorageError(err), explainStorage(err, c.r.cfg)))
		return
	}
	c.written = pos
	c.r.metrics.checkpointed(c.pc.PartitionID(), pos)
}

// watchLag reads the last sequence number of owned partitions now and then, for the lag metric.
func (r *run) watchLag(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for _, pid := range r.metrics.owned() {
				props, err := r.clients.consumer.GetPartitionProperties(ctx, pid, nil)
				if err == nil {
					r.metrics.enqueued(pid, props.LastEnqueuedSequenceNumber)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(r.tune.lagEvery):
			}
		}
	}()
	return done
}
