// Package graphinput is the input shared by the alert and incident datasets: both read a Graph
// security collection incrementally by lastUpdateDateTime, with the same paging, cursor and
// failure handling. Each dataset supplies a Spec (path, limits, its transform).
package graphinput

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	cursor "github.com/elastic/beats/v7/filebeat/input/v2/input-cursor"
	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/feature"
	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/beats/v7/libbeat/statestore"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/monitoring"
	"github.com/elastic/go-concert/ctxtool"
	"github.com/elastic/go-concert/timed"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Spec describes one Graph collection.
type Spec struct {
	InputType       string // fixed forever: it is part of every stored cursor key
	Dataset         string // alert | incident
	Path            string // e.g. /v1.0/security/alerts_v2
	Permission      string // the application permission the collection needs
	DefaultInterval time.Duration
	MaxBatch        int  // Graph's $top ceiling for the collection
	CanExpandAlerts bool // incidents: $expand=alerts
	Transform       transform.Func

	// tuneClient lets tests shorten the client's retry backoff.
	tuneClient func(*msapi.Options)
	// Tests shorten the waits after a failed poll; zero means the defaults below.
	firstRetryWait, maxRetryAfterWait time.Duration
}

// maxSkip is Graph's ceiling for $skip on the security collections.
const maxSkip = 500

// cursorLifetime keeps an input's cursor for 30 days after it was last used: a Graph cursor
// cannot be rebuilt, and an input that is paused over a holiday must resume, not restart.
const cursorLifetime = 30 * 24 * time.Hour

// Plugin registers the collection as a cursor input.
func (spec Spec) Plugin(log *logp.Logger, store statestore.States) v2.Plugin {
	return v2.Plugin{
		Name:       spec.InputType,
		Stability:  feature.Stable,
		Deprecated: false,
		Info:       "Microsoft Graph " + spec.Path,
		Manager: &cursor.InputManager{
			Logger:              log,
			StateStore:          store,
			Type:                spec.InputType,
			DefaultCleanTimeout: cursorLifetime,
			Configure: func(cfg *conf.C, _ *logp.Logger) ([]cursor.Source, cursor.Input, error) {
				c, err := Configure(spec, cfg)
				if err != nil {
					return nil, nil, err
				}
				return []cursor.Source{source{tenant: c.TenantID}}, &input{spec: spec, cfg: c}, nil
			},
		},
	}
}

// CheckConfig reports every problem of an input's options (start-up and `test config`).
func (spec Spec) CheckConfig(cfg *conf.C) error {
	_, err := Configure(spec, cfg)
	return err
}

// Configure unpacks and validates an input's options.
func Configure(spec Spec, cfg *conf.C) (Config, error) {
	c := defaultConfig(spec)
	if err := cfg.Unpack(&c); err != nil {
		return c, fmt.Errorf("input type %s: %w", spec.InputType, err)
	}
	if spec.tuneClient != nil {
		spec.tuneClient(&c.Options)
	}
	return c, c.resolve(spec)
}

// source is keyed by tenant, so pointing an input id at another tenant starts a fresh cursor
// instead of applying one tenant's position to another.
type source struct{ tenant string }

func (s source) Name() string { return "tenant-" + s.tenant }

type input struct {
	spec Spec
	cfg  Config
}

func (in *input) Name() string { return in.spec.InputType }

func (in *input) Test(_ cursor.Source, ctx v2.TestContext) error {
	return in.spec.probe(ctxtool.FromCanceller(ctx.Cancelation), in.cfg, ctx.Logger)
}

// Probe acquires a token and reads one record with an input's options: what
// `defenderbeat test credentials` reports for it.
func (spec Spec) Probe(ctx context.Context, cfg *conf.C, log *logp.Logger) error {
	c, err := Configure(spec, cfg)
	if err != nil {
		return err
	}
	return spec.probe(ctx, c, log)
}

func (spec Spec) probe(ctx context.Context, c Config, log *logp.Logger) error {
	client, err := msapi.NewClient(c.Options, msapi.Graph, log, msapi.NewMetrics(nil))
	if err != nil {
		return err
	}
	if _, err := client.GetPage(ctx, spec.Path, url.Values{"$top": {"1"}}, nil); err != nil {
		if hint := msapi.Explain(err); hint != "" {
			return fmt.Errorf("%w: %s (this input needs the application permission %s with admin consent)", err, hint, spec.Permission)
		}
		return err
	}
	return nil
}

func (in *input) Run(ctx v2.Context, _ cursor.Source, cur cursor.Cursor, pub cursor.Publisher) error {
	log := ctx.Logger
	var stored Cursor
	client, metrics, err := inputkit.Start(ctx, in.cfg.Options, msapi.Graph, cur, &stored)
	if err != nil {
		return err
	}
	pos, resumed := positionOf(stored)
	if resumed {
		log.Infow("Resuming from the stored cursor.", "last_update", pos.raw, "ids_at_last_update", len(pos.ids))
		metrics.SetCursor(pos.ts)
	}

	p := &poller{in: in, client: client, pub: pub, log: log, metrics: metrics, gaps: newGapMetrics(ctx.MetricsRegistry), ctx: ctx}
	runCtx := ctxtool.FromCanceller(ctx.Cancelation)
	ctx.UpdateStatus(status.Running, "")
	failures := 0 // failed polls in a row without progress
	for {
		wait := in.cfg.Interval
		before := pos
		pos, err = p.poll(runCtx, pos)
		if err != nil {
			if runCtx.Err() != nil {
				return nil
			}
			if pos.movedFrom(before) {
				failures = 0
			}
			failures++
			var why string
			wait, why = p.retryWait(err, failures)
			p.report(err, wait, why)
		} else {
			failures = 0
		}
		if err := timed.Wait(ctx.Cancelation, wait); err != nil {
			return nil
		}
	}
}

const (
	// defaultFirstRetryWait is the pause after a failed poll: most failures pass (a connection
	// cut mid-page, a server hiccup beyond the client's retries), so the input tries again
	// soon, doubling the pause while it keeps failing without progress, up to interval.
	defaultFirstRetryWait = 2 * time.Second
	// defaultMaxRetryAfterWait bounds how long a Retry-After can hold the input: the client
	// waits up to 2 minutes within a call; a longer Retry-After (or a date far ahead) ends the
	// poll, and the input waits what Graph asked, but no longer than this.
	defaultMaxRetryAfterWait = 10 * time.Minute
)

// retryWait is how long to wait after the n-th failed poll in a row, and why, when Graph's
// Retry-After was cut short.
func (p *poller) retryWait(err error, n int) (time.Duration, string) {
	interval := p.in.cfg.Interval
	if msapi.IsAuth(err) {
		return interval, "" // a credential or permission is not mended by trying again soon
	}
	first := cmp.Or(p.in.spec.firstRetryWait, defaultFirstRetryWait)
	wait := min(interval, first<<min(n-1, 20))
	var apiErr *msapi.APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
		limit := cmp.Or(p.in.spec.maxRetryAfterWait, defaultMaxRetryAfterWait)
		if apiErr.RetryAfter > limit {
			return max(wait, limit), fmt.Sprintf("Graph asked to wait %s (Retry-After); the input waits at most %s", apiErr.RetryAfter.Round(time.Second), limit)
		}
		return apiErr.RetryAfter, ""
	}
	return wait, ""
}

// poller runs one interval's worth of requests.
type poller struct {
	in      *input
	client  *msapi.Client
	pub     cursor.Publisher
	log     *logp.Logger
	metrics *msapi.Metrics
	gaps    gapMetrics
	ctx     v2.Context

	// expandBroken is set once $expand=alerts keeps failing (5xx after retries, or an incident
	// too large with its alerts): incidents are then listed without it and each one's alerts
	// fetched on its own, until expandRetryAt, so that every poll does not first spend the
	// whole retry budget on a listing known to fail.
	expandBroken  bool
	expandRetryAt time.Time
	degraded      string
}

// expandRetryAfter is how long incidents are read without $expand once it has kept failing.
const expandRetryAfter = time.Hour

// giveUpExpand switches to reading alerts per incident and reports why.
func (p *poller) giveUpExpand(reason string) {
	p.expandBroken = true
	p.expandRetryAt = time.Now().Add(expandRetryAfter)
	p.degraded = reason + fmt.Sprintf("; reading each incident's alerts separately until %s", p.expandRetryAt.UTC().Format(time.RFC3339))
	p.log.Warn(p.degraded)
	p.ctx.UpdateStatus(status.Degraded, p.degraded)
}

// record is what the cursor needs from any Graph security record.
type record struct {
	ID         string `json:"id"`
	LastUpdate string `json:"lastUpdateDateTime"`
}

func (p *poller) poll(ctx context.Context, pos position) (position, error) {
	cfg := &p.in.cfg
	p.expandBroken, p.degraded = time.Now().Before(p.expandRetryAt), ""
	if p.expandBroken {
		p.degraded = fmt.Sprintf("listing incidents with $expand=alerts failed earlier; reading each incident's alerts separately until %s", p.expandRetryAt.UTC().Format(time.RFC3339))
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
		}
		return p.listQuery("ge", lower.UTC().Format(graphTimeLayout), 0)
	}
	next, query := p.in.spec.Path, first()
	for {
		page, st, err := p.readPage(ctx, next, query, &pos)
		if errors.Is(err, msapi.ErrBodyTooLarge) && p.expands() {
			// One incident with its alerts is more than max_response_bytes: list without
			// $expand and read each incident's alerts on their own, so the cursor moves on.
			p.giveUpExpand(fmt.Sprintf("an incident with its alerts is larger than max_response_bytes (%v)", err))
			next, query = p.in.spec.Path, first()
			if pos.raw != "" {
				query = p.resumeQuery(pos, 0)
			}
			continue
		}
		if err != nil {
			return pos, err
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
		if next == p.in.spec.Path && sameQuery(query, resume) {
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
		next, query = p.in.spec.Path, resume
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
		"$filter": {"lastUpdateDateTime eq " + raw},
		"$count":  {"true"},
		"$top":    {"1"},
	}
	resp, err := p.client.Get(ctx, p.in.spec.Path, q, p.headers())
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
		"$filter":  {"lastUpdateDateTime " + op + " " + from},
		"$orderby": {"lastUpdateDateTime asc"},
		"$top":     {strconv.Itoa(p.in.cfg.BatchSize)},
	}
	if skip > 0 {
		q.Set("$skip", strconv.Itoa(skip))
	}
	if p.expands() {
		q.Set("$expand", "alerts")
	}
	return q
}

func (p *poller) expands() bool {
	return p.in.spec.CanExpandAlerts && p.in.cfg.includeAlerts() && !p.expandBroken
}

func (p *poller) headers() http.Header {
	h := http.Header{}
	if p.in.cfg.IncludeUnknownEnumMembers {
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

// readPage streams one page, publishing each record not yet sent and advancing pos. When an
// expanded incident listing keeps failing on the server side, it switches the run to listing
// without $expand (alerts are then fetched per incident).
func (p *poller) readPage(ctx context.Context, next string, query url.Values, pos *position) (*msapi.PageInfo, pageState, error) {
	st := pageState{oneTS: true}
	handle := func(raw json.RawMessage) error { return p.handleRecord(ctx, raw, pos, &st) }
	page, err := p.client.StreamPage(ctx, next, query, p.headers(), handle)
	if err != nil && p.expands() && isServerError(err) && st.records == 0 {
		p.giveUpExpand(fmt.Sprintf("listing incidents with $expand=alerts keeps failing (%v)", err))
		next, query = withoutExpand(next, query)
		page, err = p.client.StreamPage(ctx, next, query, p.headers(), handle)
	}
	if err == nil && page.Partial {
		p.log.Warnw("Graph answered 206: some providers did not respond, the page may be incomplete.", "warning", page.Warning)
	}
	return page, st, err
}

// growsSkip reports whether a nextLink pages by $skip, which Graph refuses above 500: within a
// crowded instant the input steps with $skip itself rather than follow such a link.
func growsSkip(nextLink string) bool {
	u, err := url.Parse(nextLink)
	return err == nil && u.Query().Has("$skip")
}

func withoutExpand(next string, query url.Values) (string, url.Values) {
	if query != nil {
		q := url.Values{}
		for k, v := range query {
			if k != "$expand" {
				q[k] = v
			}
		}
		return next, q
	}
	u, err := url.Parse(next)
	if err != nil {
		return next, nil
	}
	q := u.Query()
	q.Del("$expand")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func isServerError(err error) bool {
	var apiErr *msapi.APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode >= 500
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
	body := []byte(raw)
	if p.expandBroken && p.in.spec.CanExpandAlerts && p.in.cfg.includeAlerts() {
		if body, err = p.fetchExpanded(ctx, rec.ID, raw); err != nil {
			// Neither published nor passed: the poll fails here and the next one starts
			// again from the last record published.
			return err
		}
	}
	pos.advance(rec.ID, rec.LastUpdate, ts)
	p.publishRecord(body, pos.cursor())
	st.published++
	p.metrics.SetCursor(pos.ts)
	return ctx.Err()
}

// fetchExpanded reads one incident with its alerts. A failure that may pass (5xx, 429, a
// network or auth error, the input stopping) is returned, so that the incident is published
// later with its alerts instead of now without them. Only when the read can never succeed (the
// incident with its alerts exceeds max_response_bytes, or Graph no longer knows the incident)
// is the listed incident published without alerts, rather than holding the cursor on it for
// good; the alerts still reach the alert dataset.
func (p *poller) fetchExpanded(ctx context.Context, id string, listed json.RawMessage) (json.RawMessage, error) {
	resp, err := p.client.Get(ctx, p.in.spec.Path+"/"+url.PathEscape(id), url.Values{"$expand": {"alerts"}}, p.headers())
	switch {
	case err == nil:
		return resp.Body, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case readCanNeverSucceed(err):
		msg := fmt.Sprintf("incident %s is published without its alerts: reading them cannot succeed (%v)", id, err)
		p.log.Error(msg)
		p.degraded = msg
		return listed, nil
	}
	return nil, fmt.Errorf("reading the alerts of incident %s (it is published once they can be read): %w", id, err)
}

// readCanNeverSucceed tells the failures that retrying the same request cannot cure.
func readCanNeverSucceed(err error) bool {
	if errors.Is(err, msapi.ErrBodyTooLarge) {
		return true
	}
	var apiErr *msapi.APIError
	return errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusNotFound || apiErr.StatusCode == http.StatusGone)
}

// publishRecord transforms one record and publishes its documents; the cursor update rides on
// the last one, so the cursor moves only when the whole record is ACKed.
func (p *poller) publishRecord(raw []byte, cur Cursor) {
	opts := p.opts()
	var pending *beat.Event
	err := p.in.spec.Transform(raw, opts, func(ev beat.Event) {
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

func (p *poller) opts() transform.Options { return transform.Options{Tags: p.in.cfg.Tags} }

func (p *poller) publishOne(ev beat.Event, cur any) {
	inputkit.Decorate(&ev, p.in.spec.Dataset, p.in.cfg.Namespace)
	if err := p.pub.Publish(ev, cur); err != nil {
		return // shutting down; the cursor stays at the last ACKed record
	}
	p.metrics.AddEvents(1)
}

// report logs a failed run once and sets the status an operator sees in Fleet.
func (p *poller) report(err error, wait time.Duration, why string) {
	hint := msapi.Explain(err)
	retry := fmt.Sprintf("The cursor is kept; retrying in %s.", wait)
	if why != "" {
		retry = fmt.Sprintf("The cursor is kept; %s, retrying in %s.", why, wait)
	}
	if msapi.IsAuth(err) {
		msg := fmt.Sprintf("%s: %v. %s (needs application permission %s, tenant %s). %s",
			p.in.spec.Path, err, hint, p.in.spec.Permission, p.in.cfg.TenantID, retry)
		p.log.Error(msg)
		var apiErr *msapi.APIError
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusForbidden {
			p.ctx.UpdateStatus(status.Degraded, msg)
		} else {
			p.ctx.UpdateStatus(status.Failed, msg)
		}
		return
	}
	msg := fmt.Sprintf("%s: %v. %s", p.in.spec.Path, err, retry)
	if hint != "" {
		msg = strings.TrimSuffix(msg, ".") + " (" + hint + ")"
	}
	p.log.Error(msg)
	p.ctx.UpdateStatus(status.Degraded, msg)
}
