package inputkit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	v2 "github.com/elastic/beats/v7/filebeat/input/v2"
	"github.com/elastic/beats/v7/libbeat/management/status"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/monitoring"
	"github.com/elastic/go-concert/ctxtool"
	"github.com/elastic/go-concert/timed"

	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

// Timings are the waits of an input's collection loop and client. Users get the defaults;
// tests shorten them, through this one type for every input.
type Timings struct {
	// FirstRetry is the pause after a failed collection. Most failures pass (a connection cut
	// mid-page, a server hiccup beyond the client's retries), so the input tries again soon,
	// doubling the pause while it keeps failing without progress, up to its interval.
	FirstRetry time.Duration
	// MaxRetry bounds that doubling pause; zero means the input's interval.
	MaxRetry time.Duration
	// MaxRetryAfter bounds how long a Retry-After can hold the input. The client waits within
	// a call for short ones; a longer one (or a date far ahead) ends the collection, and the
	// input waits what the API asked, but no longer than this.
	MaxRetryAfter time.Duration
	// ClientRetry, when set, replaces the client's retry backoff (first and longest wait).
	ClientRetry [2]time.Duration
}

// DefaultTimings are the production waits of an input that polls every few minutes.
func DefaultTimings() Timings {
	return Timings{FirstRetry: 2 * time.Second, MaxRetryAfter: 10 * time.Minute}
}

// CapRetryAfter bounds a Retry-After the input honours, and logs when it cuts one short.
func (t Timings) CapRetryAfter(d time.Duration, log *logp.Logger) time.Duration {
	limit := cmp.Or(t.MaxRetryAfter, DefaultTimings().MaxRetryAfter)
	if d <= limit {
		return d
	}
	log.Warnw("The API asked to wait longer than this input honours (Retry-After); waiting the cap instead.",
		"retry_after", d.String(), "cap", limit.String())
	return limit
}

// Deferred is a failure that retrying soon cannot mend: the loop waits a whole interval, and
// reports what the input does meanwhile.
type Deferred struct {
	Err       error
	Meanwhile string // e.g. "changes are still read through the delta API"
}

func (d *Deferred) Error() string { return d.Err.Error() }
func (d *Deferred) Unwrap() error { return d.Err }

// Tune applies the client part of the timings to an input's API options.
func (t Timings) Tune(o *msapi.Options) {
	if t.ClientRetry[0] > 0 {
		o.SetRetryBackoff(t.ClientRetry[0], t.ClientRetry[1])
	}
}

// Failure describes, for the reports of a failed collection, what the input reads and what it
// needs, so an operator sees in the log and in Fleet which permission is missing where.
type Failure struct {
	What       string // e.g. "/v1.0/security/alerts_v2"
	Permission string // e.g. "application permission SecurityAlert.Read.All"
	TenantID   string
}

// Collect runs one collection. It reports whether the stored position moved, so that a
// failure after progress starts the retry pauses afresh.
type Collect func(ctx context.Context) (progressed bool, err error)

// Loop runs collect every interval until the input is stopped, reporting failures and
// retrying them sooner than the interval (see Timings). A failure never stops the input: the
// cursor stays where the output's ACKs left it, and the next collection starts from there.
func Loop(ctx v2.Context, interval time.Duration, t Timings, f Failure, collect Collect) error {
	run := ctxtool.FromCanceller(ctx.Cancelation)
	lastSuccess := monitoring.NewString(metricsOf(ctx), LastSuccessMetric)
	ctx.UpdateStatus(status.Running, "")
	failures := 0 // failed collections in a row without progress
	for {
		wait := interval
		progressed, err := collect(run)
		switch {
		case err != nil && run.Err() != nil:
			return nil
		case err != nil:
			if progressed {
				failures = 0
			}
			failures++
			var why string
			wait, why = t.retryWait(err, failures, interval)
			f.report(ctx, err, wait, why)
		default:
			failures = 0
			lastSuccess.Set(time.Now().UTC().Format(time.RFC3339))
		}
		if err := timed.Wait(ctx.Cancelation, wait); err != nil {
			return nil
		}
	}
}

// LastSuccessMetric names the input metric holding when the last collection ended without
// error (RFC 3339), which the health endpoint shows beside the status.
const LastSuccessMetric = "last_success_time"

func metricsOf(ctx v2.Context) *monitoring.Registry {
	if ctx.MetricsRegistry != nil {
		return ctx.MetricsRegistry
	}
	return monitoring.NewRegistry()
}

// retryWait is how long to wait after the n-th failed collection in a row, and why, when the
// API's Retry-After was cut short.
func (t Timings) retryWait(err error, n int, interval time.Duration) (time.Duration, string) {
	var deferred *Deferred
	if msapi.IsAuth(err) || errors.As(err, &deferred) {
		return interval, "" // a credential or permission is not mended by trying again soon
	}
	def := DefaultTimings()
	first := cmp.Or(t.FirstRetry, def.FirstRetry)
	wait := min(interval, cmp.Or(t.MaxRetry, interval), first<<min(n-1, 20))
	var apiErr *msapi.APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
		limit := cmp.Or(t.MaxRetryAfter, def.MaxRetryAfter)
		if apiErr.RetryAfter > limit {
			return max(wait, limit), fmt.Sprintf("the API asked to wait %s (Retry-After); the input waits at most %s", apiErr.RetryAfter.Round(time.Second), limit)
		}
		return apiErr.RetryAfter, ""
	}
	return wait, ""
}

// report logs a failed collection once and sets the status an operator sees in Fleet: FAILED
// when the credentials do not work or the application lacks the input's permission (nothing
// can be collected until someone fixes them), DEGRADED when an export file download is refused
// or anything else failed; the input keeps running either way.
func (f Failure) report(ctx v2.Context, err error, wait time.Duration, why string) {
	retry := fmt.Sprintf("The cursor is kept; retrying in %s.", wait)
	var deferred *Deferred
	switch {
	case errors.As(err, &deferred):
		retry = fmt.Sprintf("Meanwhile %s; retrying in %s.", deferred.Meanwhile, wait)
	case why != "":
		retry = fmt.Sprintf("The cursor is kept; %s, retrying in %s.", why, wait)
	}
	subject := fmt.Sprintf("%v", err)
	if f.What != "" {
		subject = f.What + ": " + subject
	}
	hint := msapi.Explain(err)
	if hint == err.Error() {
		hint = "" // no advice beyond the error itself, which the subject already says
	}
	if msapi.IsAuth(err) {
		needs := "needs " + f.Permission
		if f.TenantID != "" {
			needs += ", tenant " + f.TenantID
		}
		msg := fmt.Sprintf("%s. %s (%s). %s", subject, hint, needs, retry)
		if hint == "" {
			msg = fmt.Sprintf("%s (%s). %s", subject, needs, retry)
		}
		ctx.Logger.Error(msg)
		var apiErr *msapi.APIError
		if errors.As(err, &apiErr) && apiErr.Download {
			// A refused SAS URL: the next export brings new ones.
			ctx.UpdateStatus(status.Degraded, msg)
		} else {
			ctx.UpdateStatus(status.Failed, msg)
		}
		return
	}
	msg := subject + ". " + retry
	if hint != "" {
		msg = strings.TrimSuffix(msg, ".") + " (" + hint + ")"
	}
	ctx.Logger.Error(msg)
	ctx.UpdateStatus(status.Degraded, msg)
}

// Probe acquires a token and reads one page of path with an input's API options: what
// `defenderbeat test credentials` reports for it. needs names the permission, for the hint.
func Probe(ctx context.Context, o msapi.Options, api msapi.API, log *logp.Logger, path string, query url.Values, needs string) error {
	client, err := msapi.NewClient(o, api, log, msapi.NewMetrics(nil))
	if err != nil {
		return err
	}
	if _, err := client.GetPage(ctx, path, query, nil); err != nil {
		if hint := msapi.Explain(err); hint != "" {
			return fmt.Errorf("%w: %s (this input needs %s with admin consent)", err, hint, needs)
		}
		return err
	}
	return nil
}
