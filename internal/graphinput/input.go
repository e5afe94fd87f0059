// Package graphinput is the input shared by the alert and incident datasets: both read a Graph
// security collection incrementally by lastUpdateDateTime, with the same paging, cursor and
// failure handling. Each dataset supplies a Spec (path, limits, its transform).
package graphinput

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

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

// Spec describes one Graph collection.
type Spec struct {
	InputType       string // fixed forever: it is part of every stored cursor key
	Name            string // the dataset: alert | incident
	Path            string // e.g. /v1.0/security/alerts_v2
	Permission      string // the application permission the collection needs
	DefaultInterval time.Duration
	MaxBatch        int // Graph's $top ceiling for the collection
	// Filterable are the properties Graph allows in $filter on the collection, as Microsoft
	// documents them; the filter options may use these.
	Filterable []string
	Transform  transform.Func

	// Reader, when set, reads the dataset's own options and returns how it reads the records
	// Graph lists (incidents: with their alerts). Without it a record is published as listed.
	Reader func(cfg *conf.C) (NewReader, []error)
	// ReaderOptions is the struct Reader unpacks, which names the dataset's own options.
	ReaderOptions any

	// Timings are the loop's and client's waits; tests shorten them.
	Timings inputkit.Timings
}

// Reader is a dataset's hook into the shared paging: it shapes the listing and may read more
// of each listed record before it is published.
type Reader interface {
	// Poll is called as a poll starts; it returns why the reader works in a lesser way, if it
	// does, for the status of this poll.
	Poll(now time.Time) (degraded string)
	// Params adds the dataset's parameters to a listing request.
	Params(q url.Values)
	// Failed is told that a listing request failed after `records` records. It returns why
	// the listing is asked again in the reader's new shape, or "" to fail the poll.
	Failed(err error, records int) (retry string)
	// Record returns the body to publish for a listed record, or an error that fails the
	// poll without moving the cursor past it; degraded explains a body published in a lesser
	// form.
	Record(ctx context.Context, id string, listed json.RawMessage) (body json.RawMessage, degraded string, err error)
}

// NewReader builds a dataset's Reader for one run.
type NewReader func(Env) Reader

// Env is what a Reader may use.
type Env struct {
	Client  *msapi.Client
	Log     *logp.Logger
	Path    string
	Headers http.Header
	// Degrade logs why the input works in a lesser way and reports DEGRADED at once.
	Degrade func(msg string)
}

// maxSkip is Graph's ceiling for $skip on the security collections.
const maxSkip = 500

// Dataset describes the collection to the beat.
func (spec Spec) Dataset() inputkit.Dataset {
	return spec.cursorInput().Dataset(spec.Name, spec.Transform)
}

func (spec Spec) cursorInput() inputkit.CursorInput[Config] {
	return inputkit.CursorInput[Config]{
		Type:      spec.InputType,
		Info:      "Microsoft Graph " + spec.Path,
		Configure: func(cfg *conf.C) (Config, error) { return Configure(spec, cfg) },
		Tenant:    func(c Config) string { return c.TenantID },
		Probe:     spec.probe,
		Run:       spec.run,
		Options:   inputkit.OptionsOf(Config{}, spec.ReaderOptions),
		Cursor:    cursorTools,
	}
}

// Configure unpacks and validates an input's options.
func Configure(spec Spec, cfg *conf.C) (Config, error) {
	c := defaultConfig(spec)
	if err := cfg.Unpack(&c); err != nil {
		return c, fmt.Errorf("input type %s: %w", spec.InputType, err)
	}
	spec.Timings.Tune(&c.Options)
	errs := c.resolve(spec)
	if spec.Reader != nil {
		var more []error
		c.newReader, more = spec.Reader(cfg)
		errs = append(errs, more...)
	}
	return c, inputkit.Report(spec.InputType, c.ID, errs)
}

func (spec Spec) probe(ctx context.Context, c Config, log *logp.Logger) error {
	q := url.Values{"$top": {"1"}}
	if c.filter != "" {
		// Graph judges the clause's grammar, which the start-up check leaves to it.
		q.Set("$filter", c.filter)
	}
	return inputkit.Probe(ctx, c.Options, msapi.Graph, log, spec.Path, q, "the application permission "+spec.Permission)
}

func (spec Spec) run(ctx v2.Context, cfg Config, cur cursor.Cursor, pub cursor.Publisher) error {
	log := ctx.Logger
	var stored Cursor
	client, metrics, err := inputkit.Start(ctx, cfg.Options, msapi.Graph, cur, &stored)
	if err != nil {
		return err
	}
	p := &poller{spec: spec, cfg: cfg, client: client, pub: pub, log: log, metrics: metrics, gaps: newGapMetrics(ctx.MetricsRegistry), ctx: ctx}
	pos, resumed := positionOf(stored)
	switch {
	case resumed && pos.filter != "" && pos.filter != cfg.filter:
		// A cursor stored without a filter (or moved by `defenderbeat cursor`) stands after
		// every record up to it, which covers whatever a new filter admits. One stored with a
		// filter does not: records the new filter admits and the old one did not may lie
		// before the cursor. Read
		// again, with the new filter, from the earlier of the cursor and initial_interval ago:
		// what was already published keeps its _id and is not indexed twice.
		p.firstFrom = time.Now().Add(-cfg.InitialInterval)
		if pos.ts.Before(p.firstFrom) {
			p.firstFrom = pos.ts
		}
		log.Warnw("The server-side filter changed since the cursor was stored; reading again from the earlier of the cursor and initial_interval ago with the new filter.",
			"previous_filter", pos.filter, "filter", cfg.filter, "last_update", pos.raw, "from", p.firstFrom.UTC().Format(time.RFC3339))
		pos = position{}
	case resumed:
		log.Infow("Resuming from the stored cursor.", "last_update", pos.raw, "ids_at_last_update", len(pos.ids))
		metrics.SetCursor(pos.ts)
	}
	pos.filter = cfg.filter
	if cfg.newReader != nil {
		p.reader = cfg.newReader(Env{Client: client, Log: log, Path: spec.Path, Headers: p.headers(), Degrade: p.degrade})
	}
	failure := inputkit.Failure{What: spec.Path, Permission: "application permission " + spec.Permission, TenantID: cfg.TenantID}
	return inputkit.Loop(ctx, cfg.Interval, spec.Timings, failure, func(run context.Context) (bool, error) {
		before := pos
		var err error
		pos, err = p.poll(run, pos)
		return pos.movedFrom(before), err
	})
}

// poller runs one interval's worth of requests.
type poller struct {
	spec    Spec
	cfg     Config
	client  *msapi.Client
	reader  Reader // nil: records are published as listed
	pub     cursor.Publisher
	log     *logp.Logger
	metrics *msapi.Metrics
	gaps    gapMetrics
	ctx     v2.Context

	degraded string // why this poll works in a lesser way, for its final status
	// firstFrom, when set, is where a run without a position starts instead of
	// initial_interval ago: the stored position of a changed filter, or earlier.
	firstFrom time.Time
}

// degrade logs why the input works in a lesser way and reports it at once.
func (p *poller) degrade(msg string) {
	p.degraded = msg
	p.log.Warn(msg)
	p.ctx.UpdateStatus(status.Degraded, msg)
}

// record is what the cursor needs from any Graph security record.
type record struct {
	ID         string `json:"id"`
	LastUpdate string `json:"lastUpdateDateTime"`
}

func (p *poller) poll(ctx context.Context, pos position) (position, error) {
	cfg := &p.cfg
	p.degraded = ""
	if p.reader != nil {
		p.degraded = p.reader.Poll(time.Now())
	}

	// The first request: from the cursor, or from initial_interval ago on a first run, or
	// overlap before the cursor.
	first := func() url.Values {
		if pos.raw != "" && cfg.Overlap == 0 {
			return p.resumeQuery(pos, 0)
		}
		lower := time.Now().UTC().Add(-cfg.InitialInterval)
		if pos.raw != "" {
			lower = pos.ts.Add(-cfg.Overlap)
		} else if !p.firstFrom.IsZero() && p.firstFrom.Before(lower) {
			lower = p.firstFrom
		}
		return p.listQuery("ge", lower.UTC().Format(graphTimeLayout), 0)
	}
	next, query := p.spec.Path, first()
	for {
		page, st, err := p.readPage(ctx, next, query, &pos)
		if err != nil && p.reader != nil && ctx.Err() == nil {
			if why := p.reader.Failed(err, st.records); why != "" {
				// The reader now lists in another shape: ask again from where we are.
				p.degrade(why)
				next, query = p.spec.Path, first()
				if pos.raw != "" {
					query = p.resumeQuery(pos, 0)
				}
				continue
			}
		}
		if err != nil {
			return pos, err
		}
		if page.Partial {
			// Graph's security API is federated: a provider that did not answer leaves its
			// records out of this page.
			p.degraded = fmt.Sprintf("Graph answered %s with partial data (HTTP 206, Warning: %q): records of a provider that did not answer may be missing", p.spec.Path, page.Warning)
		}
		if page.NextLink == "" && st.records < cfg.BatchSize {
			break
		}
		// Graph's nextLinks page by offset: a growing $skip, or a $skiptoken that may be an
		// offset as well. A record updated while we page moves to the end of the ordering and
		// shifts the others, so the one at the page boundary would be passed over. Instead the
		// input continues from the newest timestamp it has read; records already sent at that
		// instant are skipped by id. The same holds for a full page without nextLink.
		crowded := st.records > 0 && st.oneTS && st.firstTS.Equal(pos.ts) && !pos.exhausted
		if crowded && page.NextLink != "" && !growsSkip(page.NextLink) {
			// Within one instant a timestamp tells records apart no better than an offset, and
			// an opaque link reaches beyond $skip's limit: follow it.
			next, query = page.NextLink, nil
			continue
		}
		skip := 0
		if crowded {
			// Every record of the page shares the cursor's instant, so `ge` alone would return
			// the same page again: step over the ones we have within that instant.
			skip = min(len(pos.ids), maxSkip)
		}
		resume := p.resumeQuery(pos, skip)
		if next == p.spec.Path && sameQuery(query, resume) {
			// The same request again would bring back the same records, all sent by now.
			if !crowded {
				p.degraded = fmt.Sprintf("a full page without nextLink brought no record that moves the cursor (lastUpdateDateTime %s); stopping this run to avoid a loop", pos.raw)
				p.log.Warn(p.degraded)
				break
			}
			if err := p.skipRestOfInstant(ctx, &pos); err != nil {
				return pos, err
			}
			resume = p.resumeQuery(pos, 0)
		}
		next, query = p.spec.Path, resume
	}
	if p.degraded != "" {
		// Logged where it happened; the status holds it for this poll.
		p.ctx.UpdateStatus(status.Degraded, p.degraded)
	} else {
		p.ctx.UpdateStatus(status.Running, "")
	}
	return pos, nil
}

// resumeQuery lists what follows pos: the records at its instant not yet sent and all later
// ones, or only the later ones once its instant is exhausted.
func (p *poller) resumeQuery(pos position, skip int) url.Values {
	if pos.exhausted {
		return p.listQuery("gt", pos.raw, 0)
	}
	return p.listQuery("ge", pos.raw, skip)
}

func sameQuery(a, b url.Values) bool {
	return a != nil && b != nil && a.Encode() == b.Encode()
}

// skipRestOfInstant gives up on the records at pos's instant that Graph lets no one read:
// more of them than $skip can step over, and no nextLink. It counts them as a gap (metric, log,
// DEGRADED for this poll) and moves pos past that instant, so the input goes on with the later
// records instead of asking for the same page forever.
func (p *poller) skipRestOfInstant(ctx context.Context, pos *position) error {
	read := len(pos.ids)
	total, err := p.countAt(ctx, pos.raw)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	p.gaps.instants.Inc()
	var msg string
	if err != nil {
		msg = fmt.Sprintf("more than %d records share lastUpdateDateTime %s and Graph gives no nextLink past them: %d were read, the rest (not counted: %v) cannot be paged by timestamp (Graph allows $skip <= %d) and are skipped; collection continues after that instant",
			maxSkip, pos.raw, read, err, maxSkip)
	} else {
		gap := max(total-read, 0)
		p.gaps.records.Add(uint64(gap))
		msg = fmt.Sprintf("%d records share lastUpdateDateTime %s and Graph gives no nextLink past them: %d were read, %d cannot be paged by timestamp (Graph allows $skip <= %d) and are skipped; collection continues after that instant",
			total, pos.raw, read, gap, maxSkip)
	}
	p.log.Error(msg)
	p.degraded = msg
	pos.exhaust()
	return nil
}

// countAt asks Graph how many records carry exactly the lastUpdateDateTime raw.
func (p *poller) countAt(ctx context.Context, raw string) (int, error) {
	q := url.Values{
		"$filter": {p.withFilter("lastUpdateDateTime eq " + raw)},
		"$count":  {"true"},
		"$top":    {"1"},
	}
	resp, err := p.client.Get(ctx, p.spec.Path, q, p.headers())
	if err != nil {
		return 0, err
	}
	var body struct {
		Count *int `json:"@odata.count"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil || body.Count == nil {
		return 0, errors.New("the answer to $count=true carries no @odata.count")
	}
	return *body.Count, nil
}

// gapMetrics count what could not be read: instants given up on, and records at them.
type gapMetrics struct {
	instants *monitoring.Uint
	records  *monitoring.Uint
}

func newGapMetrics(reg *monitoring.Registry) gapMetrics {
	if reg == nil {
		reg = monitoring.NewRegistry()
	}
	return gapMetrics{
		instants: monitoring.NewUint(reg, "gap_instants_total"),
		records:  monitoring.NewUint(reg, "gap_records_total"),
	}
}

func (p *poller) listQuery(op, from string, skip int) url.Values {
	q := url.Values{
		"$filter":  {p.withFilter("lastUpdateDateTime " + op + " " + from)},
		"$orderby": {"lastUpdateDateTime asc"},
		"$top":     {strconv.Itoa(p.cfg.BatchSize)},
	}
	if skip > 0 {
		q.Set("$skip", strconv.Itoa(skip))
	}
	if p.reader != nil {
		p.reader.Params(q)
	}
	return q
}

// withFilter ANDs the configured server-side filter with the cursor's condition.
func (p *poller) withFilter(cursorClause string) string {
	if p.cfg.filter == "" {
		return cursorClause
	}
	return cursorClause + " and " + p.cfg.filter
}

func (p *poller) headers() http.Header {
	h := http.Header{}
	if p.cfg.IncludeUnknownEnumMembers {
		h.Set("Prefer", "include-unknown-enum-members")
	}
	return h
}

// pageState is what the paging decision needs to know of the page just read.
type pageState struct {
	records   int
	published int
	firstTS   time.Time
	oneTS     bool // every record shares firstTS
}

// readPage streams one page, publishing each record not yet sent and advancing pos.
func (p *poller) readPage(ctx context.Context, next string, query url.Values, pos *position) (*msapi.PageInfo, pageState, error) {
	st := pageState{oneTS: true}
	handle := func(raw json.RawMessage) error { return p.handleRecord(ctx, raw, pos, &st) }
	page, err := p.client.StreamPage(ctx, next, query, p.headers(), handle)
	return page, st, err
}

// growsSkip reports whether a nextLink pages by $skip, which Graph refuses above 500: within a
// crowded instant the input steps with $skip itself rather than follow such a link.
func growsSkip(nextLink string) bool {
	u, err := url.Parse(nextLink)
	return err == nil && u.Query().Has("$skip")
}

// handleRecord publishes one record unless it was already sent at the cursor's instant.
func (p *poller) handleRecord(ctx context.Context, raw json.RawMessage, pos *position, st *pageState) error {
	st.records++
	var rec record
	err := json.Unmarshal(raw, &rec)
	var ts time.Time
	if err == nil {
		ts, err = time.Parse(time.RFC3339Nano, rec.LastUpdate)
		if err == nil && rec.ID == "" {
			err = errors.New("record has no id")
		}
	}
	if err != nil {
		// Without an id and time the record cannot move the cursor, but it is kept.
		p.publishOne(transform.ErrorEvent(raw, fmt.Errorf("unusable Graph record: %w", err), p.opts(), time.Now()), nil)
		return nil
	}
	if st.records == 1 {
		st.firstTS = ts
	} else if !ts.Equal(st.firstTS) {
		st.oneTS = false
	}
	if pos.seen(rec.ID, ts) {
		return nil
	}
	body := raw
	if p.reader != nil {
		var degraded string
		if body, degraded, err = p.reader.Record(ctx, rec.ID, raw); err != nil {
			// Neither published nor passed: the poll fails here and the next one starts
			// again from the last record published.
			return err
		}
		if degraded != "" {
			p.log.Error(degraded)
			p.degraded = degraded
		}
	}
	pos.advance(rec.ID, rec.LastUpdate, ts)
	p.publishRecord(body, pos.cursor())
	st.published++
	p.metrics.SetCursor(pos.ts)
	return ctx.Err()
}

// publishRecord transforms one record and publishes its documents; the cursor update rides on
// the last one, so the cursor moves only when the whole record is ACKed.
func (p *poller) publishRecord(raw []byte, cur Cursor) {
	opts := p.opts()
	var pending *beat.Event
	err := p.spec.Transform(raw, opts, func(ev beat.Event) {
		if pending != nil {
			p.publishOne(*pending, nil)
		}
		pending = &ev
	})
	if err != nil {
		if pending != nil {
			p.publishOne(*pending, nil)
		}
		ev := transform.ErrorEvent(raw, err, opts, time.Now())
		pending = &ev
	}
	if pending == nil {
		// The processing dropped the record: nothing to publish, and the cursor moves with
		// the next record that is published.
		return
	}
	p.publishOne(*pending, cur)
}

func (p *poller) opts() transform.Options { return transform.Options{Tags: p.cfg.Tags} }

func (p *poller) publishOne(ev beat.Event, cur any) {
	inputkit.Decorate(&ev, p.spec.Name, p.cfg.Namespace)
	if err := p.pub.Publish(ev, cur); err != nil {
		return // shutting down; the cursor stays at the last ACKed record
	}
	p.metrics.AddEvents(1)
}
