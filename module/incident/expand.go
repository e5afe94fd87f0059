package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	conf "github.com/elastic/elastic-agent-libs/config"

	"github.com/defenderbeat/defenderbeat/internal/graphinput"
	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

// expandRetryAfter is how long incidents are read without $expand once it has kept failing.
const expandRetryAfter = time.Hour

// alertsOptions are the incident dataset's own options.
type alertsOptions struct {
	IncludeAlerts bool `config:"include_alerts"`
}

// alertsOption reads `include_alerts` (default true): list incidents with $expand=alerts, so
// that each incident document carries its alerts as the integration's do.
func alertsOption(cfg *conf.C) (graphinput.NewReader, []error) {
	o := alertsOptions{IncludeAlerts: true}
	if err := cfg.Unpack(&o); err != nil {
		return nil, []error{err}
	}
	if !o.IncludeAlerts {
		return nil, nil
	}
	return func(env graphinput.Env) graphinput.Reader { return &alertReader{env: env} }, nil
}

// alertReader lists incidents with $expand=alerts. When that listing keeps failing (5xx after
// the client's retries, or an incident too large with its alerts for max_response_bytes), it
// lists them without $expand for an hour and reads each incident's alerts on its own, so that
// every poll does not first spend the whole retry budget on a listing known to fail.
type alertReader struct {
	env     graphinput.Env
	retryAt time.Time // while now is before it, alerts are read per incident
	broken  bool
}

func (r *alertReader) Poll(now time.Time) string {
	r.broken = now.Before(r.retryAt)
	if !r.broken {
		return ""
	}
	return fmt.Sprintf("listing incidents with $expand=alerts failed earlier; reading each incident's alerts separately until %s", r.retryAt.UTC().Format(time.RFC3339))
}

func (r *alertReader) Params(q url.Values) {
	if !r.broken {
		q.Set("$expand", "alerts")
	}
}

func (r *alertReader) Failed(err error, records int) string {
	if r.broken {
		return ""
	}
	var why string
	switch {
	case errors.Is(err, msapi.ErrBodyTooLarge):
		why = fmt.Sprintf("an incident with its alerts is larger than max_response_bytes (%v)", err)
	case isServerError(err) && records == 0:
		why = fmt.Sprintf("listing incidents with $expand=alerts keeps failing (%v)", err)
	default:
		return ""
	}
	r.broken = true
	r.retryAt = time.Now().Add(expandRetryAfter)
	return why + fmt.Sprintf("; reading each incident's alerts separately until %s", r.retryAt.UTC().Format(time.RFC3339))
}

// Record reads one listed incident with its alerts while the expanded listing is broken. A
// failure that may pass (5xx, 429, a network or auth error, the input stopping) is returned, so
// that the incident is published later with its alerts instead of now without them. Only when
// the read can never succeed (the incident with its alerts exceeds max_response_bytes, or Graph
// no longer knows the incident) is the listed incident published without alerts, rather than
// holding the cursor on it for good; the alerts still reach the alert dataset.
func (r *alertReader) Record(ctx context.Context, id string, listed json.RawMessage) (json.RawMessage, string, error) {
	if !r.broken {
		return listed, "", nil
	}
	resp, err := r.env.Client.Get(ctx, r.env.Path+"/"+url.PathEscape(id), url.Values{"$expand": {"alerts"}}, r.env.Headers)
	switch {
	case err == nil:
		return resp.Body, "", nil
	case ctx.Err() != nil:
		return nil, "", ctx.Err()
	case readCanNeverSucceed(err):
		return listed, fmt.Sprintf("incident %s is published without its alerts: reading them cannot succeed (%v)", id, err), nil
	}
	return nil, "", fmt.Errorf("reading the alerts of incident %s (it is published once they can be read): %w", id, err)
}

func isServerError(err error) bool {
	var apiErr *msapi.APIError
	return errors.As(err, &apiErr) && apiErr.StatusCode >= 500
}

// readCanNeverSucceed tells the failures that retrying the same request cannot cure.
func readCanNeverSucceed(err error) bool {
	if errors.Is(err, msapi.ErrBodyTooLarge) {
		return true
	}
	var apiErr *msapi.APIError
	return errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusNotFound || apiErr.StatusCode == http.StatusGone)
}
