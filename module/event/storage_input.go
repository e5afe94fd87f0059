package event

// The storage input reads the other destination of the Streaming API: a storage account where
// Defender appends each table's records, one JSON line each, to hourly append blobs. It lives
// beside the Event Hubs input because it is the same dataset: the same records, decoded by the
// same Decoder into the same documents with the same _id.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	cursor "github.com/elastic/beats/v7/filebeat/input/v2/input-cursor"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/management/status"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/monitoring"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// storageTuning holds what tests shorten or inject; users get the defaults.
type storageTuning struct {
	loop      inputkit.Timings
	blobRetry policy.RetryOptions
	transport policy.Transporter // nil: the SDK's
	// credential adjusts the Entra ID credential's options (the simulated authority's CA).
	credential func(*msapi.Options)
	// hourGrace is how long after an hour ends its blobs may still grow: until then the input
	// keeps looking at them, and a last line without a line break waits for the rest.
	hourGrace time.Duration
	// maxHours bounds the hours of one container listed in one poll, so a long backlog (or a
	// long gap between records) is caught up over several polls with a bounded cursor.
	maxHours int
	// cursorEvery is how many lines of one blob may be published between two cursor updates;
	// the last line of every read carries one too.
	cursorEvery int
	now         func() time.Time
}

func defaultStorageTuning() storageTuning {
	return storageTuning{
		loop:        inputkit.DefaultTimings(),
		blobRetry:   policy.RetryOptions{MaxRetries: 4},
		hourGrace:   time.Hour,
		maxHours:    7 * 24,
		cursorEvery: 1000,
		now:         time.Now,
	}
}

// StorageDataset is the event dataset read from the Storage-account destination.
var StorageDataset = storageCursorInput(defaultStorageTuning()).Dataset(dataset, Transform)

func storageCursorInput(tune storageTuning) inputkit.CursorInput[StorageConfig] {
	return inputkit.CursorInput[StorageConfig]{
		Type:      StorageInputType,
		Info:      "Microsoft Defender XDR Streaming API events from an Azure Storage account",
		Configure: configureStorage,
		// The cursor is keyed by the storage account: an input id pointed at another account
		// starts afresh instead of applying offsets to other blobs of the same names.
		Tenant: func(c StorageConfig) string { return c.account() },
		Probe: func(ctx context.Context, c StorageConfig, log *logp.Logger) error {
			return probeStorage(ctx, c, tune, log)
		},
		Run: func(ctx v2.Context, c StorageConfig, cur cursor.Cursor, pub cursor.Publisher) error {
			return runStorage(ctx, c, tune, cur, pub)
		},
		Cursor: storageCursorTools,
		// The event transform's documents need no normalization (TestDocumentsNeedNoNormalization).
		PreNormalized: true,
	}
}

func configureStorage(cfg *conf.C) (StorageConfig, error) {
	c := defaultStorageConfig()
	if err := cfg.Unpack(&c); err != nil {
		return c, fmt.Errorf("input type %s: %w", StorageInputType, err)
	}
	return c, c.resolve()
}

func newServiceClient(cfg *StorageConfig, tune storageTuning, log *logp.Logger) (*service.Client, error) {
	opts := &service.ClientOptions{ClientOptions: azcore.ClientOptions{
		Telemetry: policy.TelemetryOptions{ApplicationID: applicationName},
		Retry:     tune.blobRetry,
		Transport: tune.transport,
	}}
	switch cfg.AuthType {
	case StorageAuthConnectionString:
		sc, err := service.NewClientFromConnectionString(cfg.StorageAccountConnectionString, opts)
		if err != nil {
			return nil, errors.New("storage_account_connection_string: not an Azure Storage connection string")
		}
		return sc, nil
	case StorageAuthSharedKey:
		key, err := service.NewSharedKeyCredential(cfg.StorageAccount, cfg.StorageAccountKey)
		if err != nil {
			return nil, errors.New("storage_account_key: not a storage account key (base64)")
		}
		return service.NewClientWithSharedKeyCredential(cfg.serviceURL, key, opts)
	default:
		o := cfg.credential
		if tune.credential != nil {
			tune.credential(&o)
		}
		cred, err := msapi.NewTokenCredential(o, log)
		if err != nil {
			return nil, err
		}
		return service.NewClient(cfg.serviceURL, cred, opts)
	}
}

// probeStorage lists the table containers once: what `defenderbeat test credentials` reports.
func probeStorage(ctx context.Context, cfg StorageConfig, tune storageTuning, log *logp.Logger) error {
	svc, err := newServiceClient(&cfg, tune, log)
	if err != nil {
		return err
	}
	r := &storageRun{cfg: &cfg, svc: svc}
	if len(cfg.containers) > 0 {
		_, err = svc.NewContainerClient(cfg.containers[0]).GetProperties(ctx, nil)
		if bloberror.HasCode(err, bloberror.ContainerNotFound) {
			return nil // Defender creates it with the table's first records
		}
	} else {
		_, err = r.discover(ctx, 1)
	}
	if err != nil {
		return r.explain(err)
	}
	return nil
}

// storageRun is one storage input's running state.
type storageRun struct {
	cfg     *StorageConfig
	tune    storageTuning
	svc     *service.Client
	pub     cursor.Publisher
	log     *logp.Logger
	metrics *storageMetrics
	opts    transform.Options
	st      *storageState
	// fresh is set until the first poll of a cursor that was not stored: start_position
	// applies to the containers found then.
	fresh bool
	// degraded is what the last poll found wrong without failing (a rewritten blob).
	degradedMu sync.Mutex
	degraded   string
}

func runStorage(ctx v2.Context, cfg StorageConfig, tune storageTuning, cur cursor.Cursor, pub cursor.Publisher) error {
	svc, err := newServiceClient(&cfg, tune, ctx.Logger)
	if err != nil {
		ctx.UpdateStatus(status.Failed, err.Error())
		return err
	}
	var stored storageCursor
	if !cur.IsNew() {
		if err := cur.Unpack(&stored); err != nil {
			ctx.Logger.Warnw("Stored cursor is unreadable; starting as if there were none.", "error", err)
			stored = storageCursor{}
		}
	}
	r := &storageRun{
		cfg: &cfg, tune: tune, svc: svc, pub: pub, log: ctx.Logger,
		metrics: newStorageMetrics(ctx.MetricsRegistry),
		opts:    transform.Options{Tags: cfg.Tags},
		st:      newStorageState(stored),
		fresh:   cur.IsNew(),
	}
	if ctx.MetricsRegistry != nil {
		monitoring.NewFunc(ctx.MetricsRegistry, "cursor_blobs", func(_ monitoring.Mode, v monitoring.Visitor) { v.OnInt(int64(r.st.blobCount())) })
	}
	if !cur.IsNew() {
		r.log.Infow("Resuming from the stored cursor.", "containers", len(stored.Tables), "since", stored.Since)
	}
	failure := inputkit.Failure{What: "storage account " + cfg.account(), Permission: "the " + roleBlobReader + " role", TenantID: cfg.TenantID}
	return inputkit.Loop(ctx, cfg.Interval, tune.loop, failure, func(run context.Context) (bool, error) {
		progressed, err := r.poll(run)
		if err != nil {
			return progressed, r.explain(err)
		}
		r.degradedMu.Lock()
		msg := r.degraded
		r.degraded = ""
		r.degradedMu.Unlock()
		if msg != "" {
			ctx.UpdateStatus(status.Degraded, msg)
		} else {
			ctx.UpdateStatus(status.Running, "")
		}
		return progressed, nil
	})
}

// blobRead is one blob's new bytes to read in a poll.
type blobRead struct {
	container, name string
	from, to        int64
	// final: the blob's hour is closed, so a last line without a line break is complete.
	final bool
}

// listedHour is what a poll saw of one hour of a container: every blob's size.
type listedHour struct {
	hour  time.Time
	sizes map[string]int64
}

// poll reads what every table's blobs gained since the last poll.
func (r *storageRun) poll(ctx context.Context) (progressed bool, err error) {
	now := r.tune.now().UTC()
	if r.fresh && r.st.since == "" {
		switch {
		case r.cfg.StartPosition == startLatest:
			r.st.since = now.Format(time.RFC3339)
		case !r.cfg.startTime.IsZero():
			r.st.since = r.cfg.startTime.Format(time.RFC3339)
		}
	}
	containers := r.cfg.containers
	if len(containers) == 0 {
		if containers, err = r.discover(ctx, 0); err != nil {
			return false, err
		}
	}
	r.metrics.containers.Set(uint64(len(containers)))
	var reads []blobRead
	for _, name := range containers {
		rs, hours, err := r.plan(ctx, name, now)
		if err != nil {
			return false, fmt.Errorf("container %s: %w", name, err)
		}
		reads = append(reads, rs...)
		ts := r.st.table(name)
		r.st.mu.Lock()
		ts.listed = hours
		r.st.mu.Unlock()
	}
	r.fresh = false

	published, err := r.readAll(ctx, reads)
	if err != nil {
		return published > 0, err
	}
	r.st.mu.Lock()
	for _, ts := range r.st.tables {
		r.advance(ts, now)
	}
	r.st.mu.Unlock()
	return published > 0, nil
}

// discover lists the table containers of the account; at most limit when limit > 0.
func (r *storageRun) discover(ctx context.Context, limit int) ([]string, error) {
	prefix := containerPrefix
	pager := r.svc.NewListContainersPager(&service.ListContainersOptions{Prefix: &prefix})
	var names []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, c := range page.ContainerItems {
			if c.Name != nil {
				names = append(names, *c.Name)
			}
		}
		if limit > 0 && len(names) >= limit {
			break
		}
	}
	slices.Sort(names)
	return names, nil
}

// plan lists the hours of one container from its low-water hour to now and returns the blobs
// with bytes not yet read.
func (r *storageRun) plan(ctx context.Context, name string, now time.Time) ([]blobRead, []listedHour, error) {
	cc := r.svc.NewContainerClient(name)
	roots, err := listRoots(ctx, cc)
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return nil, nil, nil // a configured table Defender has not written yet
	}
	if err != nil || len(roots) == 0 {
		return nil, nil, err
	}
	ts := r.st.table(name)
	r.st.mu.Lock()
	low := ts.low
	r.st.mu.Unlock()
	startAtEnd := false
	if low.IsZero() {
		var found bool
		if low, found, err = r.startHour(ctx, cc, roots, now); err != nil || !found {
			return nil, nil, err
		}
		// start_position latest: what the blobs hold when the input first looks is skipped.
		startAtEnd = r.fresh && r.cfg.StartPosition == startLatest
		r.st.mu.Lock()
		ts.low = low
		r.st.mu.Unlock()
		r.log.Infow("Reading a table container.", "container", name, "from_hour", low.Format(time.RFC3339), "at_end", startAtEnd)
	}

	var reads []blobRead
	var hours []listedHour
	for _, hour := range plannedHours(low, now, r.tune.maxHours) {
		lh := listedHour{hour: hour, sizes: map[string]int64{}}
		for _, root := range roots {
			if err := listHour(ctx, cc, hourPrefix(root, hour), lh.sizes); err != nil {
				return nil, nil, err
			}
		}
		hours = append(hours, lh)
		final := hourClosed(hour, now, r.tune.hourGrace)
		for blobName, size := range lh.sizes {
			from, err := r.startOffset(ctx, cc, ts, blobName, hour, size, startAtEnd)
			if err != nil {
				return nil, nil, err
			}
			if size > from {
				reads = append(reads, blobRead{container: name, name: blobName, from: from, to: size, final: final})
			}
		}
	}
	return reads, hours, nil
}

// startOffset is where a listed blob is read from: its stored offset, 0 for a new blob (or, at
// the start of start_position latest, the end of its last complete line), or 0 again for a
// blob that shrank below its offset: it was deleted and written anew.
func (r *storageRun) startOffset(ctx context.Context, cc *container.Client, ts *tableState, name string, hour time.Time, size int64, atEnd bool) (int64, error) {
	r.st.mu.Lock()
	b := ts.blobs[name]
	r.st.mu.Unlock()
	if b == nil {
		offset := int64(0)
		if atEnd {
			var err error
			if offset, err = lastLineEnd(ctx, cc.NewBlobClient(name), size); err != nil {
				return 0, err
			}
		}
		r.st.mu.Lock()
		ts.blobs[name] = &blobState{hour: hour, offset: offset}
		r.st.mu.Unlock()
		return offset, nil
	}
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if size < b.offset {
		msg := fmt.Sprintf("Blob %s/%s holds %d bytes, fewer than the %d already read: it was deleted or rewritten. Reading it again from its start; records read before keep their _id, so only changed lines become new documents.",
			cc.URL()[strings.LastIndexByte(strings.TrimSuffix(cc.URL(), "/"), '/')+1:], name, size, b.offset)
		r.log.Warn(msg)
		r.metrics.rewritten.Inc()
		r.degradedMu.Lock()
		r.degraded = msg
		r.degradedMu.Unlock()
		b.offset = 0
	}
	return b.offset, nil
}

// lastLineEnd is the offset just past the last line break within a blob's last 64 KiB, or
// size when there is none: where start_position latest begins.
func lastLineEnd(ctx context.Context, bc *blob.Client, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	tail := min(size, 64<<10)
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: size - tail, Count: tail}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, tail))
	if err != nil {
		return 0, err
	}
	if i := strings.LastIndexByte(string(data), '\n'); i >= 0 {
		return size - int64(len(data)) + int64(i) + 1, nil
	}
	return size, nil
}

// startHour is the first hour a container is read from: the hour of since (start_position
// latest or a time) or the oldest hour the container holds, whichever is later. found is false
// while the container holds no hour folder.
func (r *storageRun) startHour(ctx context.Context, cc *container.Client, roots []string, now time.Time) (time.Time, bool, error) {
	var floor time.Time
	if r.st.since != "" {
		if t, err := time.Parse(time.RFC3339, r.st.since); err == nil {
			floor = t.UTC().Truncate(time.Hour)
		}
	}
	if r.fresh && r.cfg.StartPosition == startLatest {
		// The hour before may still grow: its blobs are followed from their end too.
		return now.Add(-r.tune.hourGrace).Truncate(time.Hour), true, nil
	}
	var oldest time.Time
	for _, root := range roots {
		h, ok, err := oldestHour(ctx, cc, root)
		if err != nil {
			return time.Time{}, false, err
		}
		if ok && (oldest.IsZero() || h.Before(oldest)) {
			oldest = h
		}
	}
	if oldest.IsZero() {
		return time.Time{}, false, nil
	}
	if oldest.Before(floor) {
		oldest = floor
	}
	return oldest, true, nil
}

// oldestHour descends a root's y=/m=/d=/h= folders, taking the smallest at each level: four
// listings of a few names each, instead of the whole container.
func oldestHour(ctx context.Context, cc *container.Client, root string) (time.Time, bool, error) {
	prefix := root
	for _, key := range hourFolders {
		folders, err := listFolders(ctx, cc, prefix)
		if err != nil {
			return time.Time{}, false, err
		}
		best, bestValue := "", -1
		for _, f := range folders {
			rest := strings.TrimPrefix(f, prefix)
			if !strings.HasPrefix(rest, key) {
				continue
			}
			if v, ok := folderValue(f); ok && (bestValue < 0 || v < bestValue) {
				best, bestValue = f, v
			}
		}
		if best == "" {
			return time.Time{}, false, nil
		}
		prefix = best
	}
	h, ok := hourOfBlob(prefix + "m=00/PT1H.json")
	return h, ok, nil
}

// listRoots finds the folders the hour folders are under: "" when y= folders are at the top
// of the container, and each tenantId=… folder.
func listRoots(ctx context.Context, cc *container.Client) ([]string, error) {
	folders, err := listFolders(ctx, cc, "")
	if err != nil {
		return nil, err
	}
	var roots []string
	top := false
	for _, f := range folders {
		if strings.HasPrefix(f, "y=") {
			top = true
			continue
		}
		roots = append(roots, f)
	}
	if top {
		roots = append([]string{""}, roots...)
	}
	return roots, nil
}

// listFolders lists the folder names right below prefix (each ending in "/").
func listFolders(ctx context.Context, cc *container.Client, prefix string) ([]string, error) {
	pager := cc.NewListBlobsHierarchyPager("/", &container.ListBlobsHierarchyOptions{Prefix: &prefix})
	var out []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		if page.Segment == nil {
			continue
		}
		for _, p := range page.Segment.BlobPrefixes {
			if p.Name != nil {
				out = append(out, *p.Name)
			}
		}
	}
	return out, nil
}

// listHour adds the size of every blob below one hour's folder to sizes.
func listHour(ctx context.Context, cc *container.Client, prefix string, sizes map[string]int64) error {
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return err
		}
		if page.Segment == nil {
			continue
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil || b.Properties.ContentLength == nil {
				continue
			}
			if _, ok := hourOfBlob(*b.Name); ok {
				sizes[*b.Name] = *b.Properties.ContentLength
			}
		}
	}
	return nil
}

// readAll reads the planned blobs, max_concurrency at a time; it returns how many documents
// were published and the first failure.
func (r *storageRun) readAll(ctx context.Context, reads []blobRead) (int, error) {
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		firstErr  error
		published int
	)
	work := make(chan blobRead)
	for range min(r.cfg.MaxConcurrency, len(reads)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				n, err := r.readBlob(ctx, w)
				mu.Lock()
				published += n
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("blob %s/%s: %w", w.container, w.name, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, w := range reads {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		work <- w
	}
	close(work)
	wg.Wait()
	return published, firstErr
}

// readBlob reads one blob's new bytes with one ranged request, streaming them line by line,
// and publishes a document per record. A last line without a line break is left for the next
// poll unless the blob's hour is closed.
func (r *storageRun) readBlob(ctx context.Context, w blobRead) (int, error) {
	bc := r.svc.NewContainerClient(w.container).NewBlobClient(w.name)
	resp, err := bc.DownloadStream(ctx, &blob.DownloadStreamOptions{Range: blob.HTTPRange{Offset: w.from, Count: w.to - w.from}})
	if err != nil {
		return 0, err
	}
	// A dropped connection resumes where it stopped, with a ranged request of its own.
	body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
	defer body.Close()
	lr := newLineReader(io.LimitReader(body, w.to-w.from), w.from, maxLineBytes)
	ts := r.st.table(w.container)

	var (
		held      []beat.Event // the last line's documents, published with the next line or at the end
		holding   bool
		heldEnd   = w.from
		sinceCur  int
		published int
	)
	flush := func(last bool) error {
		withCursor := last || sinceCur >= r.tune.cursorEvery
		if err := r.publish(ts, w.name, held, heldEnd, withCursor); err != nil {
			return err
		}
		published += len(held)
		sinceCur++
		if withCursor {
			sinceCur = 0
		}
		held, holding = held[:0], false
		return nil
	}
	for {
		l, err := lr.next()
		if errors.Is(err, errPartialLine) && w.final && l.length > 0 {
			err = nil // the hour is closed: what is there is all the line will ever be
		}
		if err == io.EOF || errors.Is(err, errPartialLine) {
			break // a partial line: the rest of it is still to come
		}
		if err != nil {
			return published, err
		}
		if holding {
			if err := flush(false); err != nil {
				return published, err
			}
		}
		r.metrics.bytes.Add(uint64(l.end - heldEnd))
		held, heldEnd, holding = r.decode(held, l), l.end, true
	}
	if holding {
		if err := flush(true); err != nil {
			return published, err
		}
	}
	return published, nil
}

// decode turns one line into its documents (one record, or an error document).
func (r *storageRun) decode(into []beat.Event, l line) []beat.Event {
	if l.length > int64(len(l.data)) {
		r.metrics.linesTooLong.Inc()
		err := fmt.Errorf("line of %d bytes is longer than %d bytes, the most a record may take; its first %d bytes are kept", l.length, maxLineBytes, len(l.data))
		return append(into, transform.ErrorEvent(l.data, err, r.opts, r.tune.now()))
	}
	if len(strings.TrimSpace(string(l.data))) == 0 {
		return into // a blank line holds no record
	}
	sum, err := safeDecode(Decoder{}, l.data, r.opts, func(ev beat.Event) { into = append(into, ev) })
	if err != nil {
		return append(into, transform.ErrorEvent(l.data, err, r.opts, r.tune.now()))
	}
	r.metrics.unknownCategories.Add(uint64(sum.Unknown))
	return into
}

// publish hands one line's documents to the publisher and moves the blob's offset past the
// line, under the state's lock, so that a cursor taken here covers exactly the lines published
// before it; withCursor attaches that cursor to the line's last document.
func (r *storageRun) publish(ts *tableState, name string, docs []beat.Event, end int64, withCursor bool) error {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if b := ts.blobs[name]; b != nil {
		b.offset = end
	}
	for i, doc := range docs {
		if eventKind(doc.Fields) == "pipeline_error" {
			r.metrics.errorDocuments.Inc()
		} else {
			r.metrics.records.Inc()
		}
		inputkit.Decorate(&doc, dataset, r.cfg.Namespace)
		var update any
		if withCursor && i == len(docs)-1 {
			r.advance(ts, r.tune.now().UTC())
			update = r.st.cursor()
		}
		if err := r.pub.Publish(doc, update); err != nil {
			return err
		}
	}
	return nil
}

// advance moves a container's low-water hour past every closed hour whose listed blobs were
// all published to their end, forgetting those blobs; the caller holds the state's lock. It
// runs before a cursor is taken, so the document that ends an hour carries the cursor that
// forgets it, and at the end of every poll.
func (r *storageRun) advance(ts *tableState, now time.Time) {
	for len(ts.listed) > 0 {
		lh := ts.listed[0]
		if !lh.hour.Equal(ts.low) || !hourClosed(lh.hour, now, r.tune.hourGrace) {
			return
		}
		for blobName, size := range lh.sizes {
			if b := ts.blobs[blobName]; b == nil || b.offset < size {
				return
			}
		}
		for blobName, b := range ts.blobs {
			if !b.hour.After(lh.hour) {
				delete(ts.blobs, blobName)
			}
		}
		ts.low = lh.hour.Add(time.Hour)
		ts.listed = ts.listed[1:]
	}
}

// explain adds what to fix to a storage failure.
func (r *storageRun) explain(err error) error {
	short := shortStorageError(err)
	where := fmt.Sprintf("storage account %q", r.cfg.account())
	var advice string
	switch {
	case r.cfg.entraID() && refusedToken(err):
		advice = tokenAdvice(err, r.cfg.TenantID)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed), strings.Contains(err.Error(), "failed to authenticate the request"):
		advice = "the storage account refused the key: check storage_account_key or the AccountKey of storage_account_connection_string"
	case bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationFailure, bloberror.InsufficientAccountPermissions):
		advice = fmt.Sprintf("access to %s is refused: the identity needs the %s role on the account (or its containers), and the account's firewall must let this host in", where, roleBlobReader)
	case strings.Contains(err.Error(), "no such host"):
		advice = fmt.Sprintf("%s does not resolve: check storage_account and cloud", where)
	default:
		if hint := msapi.Explain(err); hint != "" && hint != err.Error() {
			advice = hint
		}
	}
	return withAdvice(short, advice)
}

// storageMetrics are the storage input's counters in its /inputs/ registry.
type storageMetrics struct {
	bytes             *monitoring.Uint // blob bytes read
	records           *monitoring.Uint // documents published from records
	errorDocuments    *monitoring.Uint // documents published for unusable lines
	unknownCategories *monitoring.Uint // documents of tables the processing does not map
	rewritten         *monitoring.Uint // blobs found shorter than their offset, read again
	linesTooLong      *monitoring.Uint
	containers        *monitoring.Uint // table containers read in the last poll
}

func newStorageMetrics(reg *monitoring.Registry) *storageMetrics {
	if reg == nil {
		reg = monitoring.NewRegistry()
	}
	return &storageMetrics{
		bytes:             monitoring.NewUint(reg, "received_bytes_total"),
		records:           monitoring.NewUint(reg, "records_published_total"),
		errorDocuments:    monitoring.NewUint(reg, "error_documents_total"),
		unknownCategories: monitoring.NewUint(reg, "unknown_categories_total"),
		rewritten:         monitoring.NewUint(reg, "blobs_rewritten_total"),
		linesTooLong:      monitoring.NewUint(reg, "lines_too_long_total"),
		containers:        monitoring.NewUint(reg, "containers"),
	}
}
