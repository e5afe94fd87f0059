package msapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/elastic/elastic-agent-libs/logp"
)

// limitedTransport counts response bytes and enforces the body cap where the body is read, so
// that azcore's body download inside the retry loop stops at the cap instead of buffering an
// arbitrarily large answer.
type limitedTransport struct {
	client  *http.Client
	limit   int64 // 0: no cap
	metrics *Metrics
}

func (t *limitedTransport) Do(r *http.Request) (*http.Response, error) {
	resp, err := t.client.Do(r)
	if err != nil {
		if isCertificateError(err) {
			// Retrying cannot make an untrusted certificate trusted.
			return nil, &nonRetriableError{err}
		}
		return nil, err
	}
	limit := t.limit
	if r.Context().Value(uncappedBody{}) != nil {
		limit = 0
	}
	if limit > 0 && resp.ContentLength > limit {
		resp.Body.Close()
		return nil, &bodyTooLargeError{limit: limit}
	}
	resp.Body = &countingBody{rc: resp.Body, limit: limit, metrics: t.metrics}
	return resp, nil
}

func isCertificateError(err error) bool {
	var (
		uae x509.UnknownAuthorityError
		hne x509.HostnameError
		cie x509.CertificateInvalidError
		cve *tls.CertificateVerificationError
	)
	return errors.As(err, &uae) || errors.As(err, &hne) || errors.As(err, &cie) || errors.As(err, &cve)
}

// nonRetriableError stops azcore's retry policy (it looks for a NonRetriable method).
type nonRetriableError struct{ error }

func (e *nonRetriableError) Unwrap() error { return e.error }
func (e *nonRetriableError) NonRetriable() {}

type countingBody struct {
	rc      io.ReadCloser
	limit   int64
	read    int64
	metrics *Metrics
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.read += int64(n)
	if b.metrics != nil && n > 0 {
		b.metrics.BytesTotal.Add(uint64(n))
	}
	if b.limit > 0 && b.read > b.limit {
		return 0, &bodyTooLargeError{limit: b.limit}
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// callState is shared by every attempt of one call (operation values survive retries).
type callState struct{ attempts int }

// metricsPolicy runs once per attempt.
func metricsPolicy(m *Metrics, log *logp.Logger) policy.Policy {
	return newPolicyFunc(func(req *policy.Request) (*http.Response, error) {
		var st *callState
		if req.OperationValue(&st) && st != nil {
			st.attempts++
			if st.attempts > 1 {
				m.RetriesTotal.Inc()
			}
		}
		m.RequestsTotal.Inc()
		resp, err := req.Next()
		switch {
		case err != nil:
			log.Debugw("HTTP attempt failed", "error", err.Error())
		case resp.StatusCode == http.StatusTooManyRequests:
			m.ThrottledTotal.Inc()
			log.Debugw("throttled by the API (HTTP 429)", "retry_after", resp.Header.Get("Retry-After"))
		case resp.StatusCode >= 500:
			log.Debugw("API answered a server error", "http.response.status_code", resp.StatusCode)
		}
		return resp, err
	})
}

type policyFunc func(*policy.Request) (*http.Response, error)

func (f policyFunc) Do(req *policy.Request) (*http.Response, error) { return f(req) }

func newPolicyFunc(f func(*policy.Request) (*http.Response, error)) policy.Policy {
	return policyFunc(f)
}

// reauthPolicy sits in front of the bearer-token policy: on 401 it drops the cached credential
// and resends once with a freshly acquired token.
func reauthPolicy(cred *renewableCredential, log *logp.Logger) policy.Policy {
	return newPolicyFunc(func(req *policy.Request) (*http.Response, error) {
		resp, err := req.Next()
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			return resp, err
		}
		log.Debug("API answered 401; acquiring a new token and retrying once")
		cred.renew()
		runtime.Drain(resp)
		if err := req.RewindBody(); err != nil {
			return nil, err
		}
		return req.Next()
	})
}

// tracerPolicy logs every attempt at debug level with credentials redacted.
type tracerPolicy struct {
	log      *logp.Logger
	sc       scrubber
	logBody  bool
	maxBody  int
	tokenish func(*http.Request) bool
}

func (p *tracerPolicy) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	fields := []any{
		"http.request.method", r.Method,
		"url.original", p.sc.scrub(redactURL(r.URL)),
		"http.request.header", p.sc.scrub(redactHeaders(r.Header)),
	}
	if body := req.Body(); body != nil {
		b, _ := io.ReadAll(body)
		_ = req.RewindBody()
		fields = append(fields, "http.request.body.content", p.sc.scrub(redactForm(b)))
	}
	p.log.Debugw("HTTP request", fields...)

	start := time.Now()
	resp, err := req.Next()
	if err != nil {
		p.log.Debugw("HTTP request failed", "url.original", p.sc.scrub(redactURL(r.URL)), "error", p.sc.scrub(err.Error()), "event.duration", time.Since(start).Nanoseconds())
		return resp, err
	}
	fields = []any{
		"url.original", p.sc.scrub(redactURL(r.URL)),
		"http.response.status_code", resp.StatusCode,
		"http.response.header", p.sc.scrub(redactHeaders(resp.Header)),
		"event.duration", time.Since(start).Nanoseconds(),
	}
	if p.logBody {
		if b, perr := runtime.Payload(resp); perr == nil {
			text := string(b)
			if p.tokenish(r) {
				text = redactTokenJSON(b)
			}
			fields = append(fields, "http.response.body.content", truncate(p.sc.scrub(text), p.maxBody))
		}
	}
	p.log.Debugw("HTTP response", fields...)
	return resp, nil
}

var errIdle = errors.New("idle timeout")

type idleSetting struct{ d time.Duration }

// idlePolicy aborts an attempt that receives nothing for the idle timeout: while waiting for the
// headers, and within each Read of the body.
// Downloads have no total timeout: an export file may legitimately take long, but a stalled
// connection must not hang the input.
func idlePolicy() policy.Policy {
	return newPolicyFunc(func(req *policy.Request) (*http.Response, error) {
		var it idleSetting
		if !req.OperationValue(&it) || it.d <= 0 {
			return req.Next()
		}
		ctx, cancel := context.WithCancelCause(req.Raw().Context())
		timer := time.AfterFunc(it.d, func() { cancel(errIdle) })
		resp, err := req.WithContext(ctx).Next()
		if err != nil {
			timer.Stop()
			cause := context.Cause(ctx)
			cancel(nil)
			if errors.Is(cause, errIdle) {
				return nil, &IdleTimeoutError{Idle: it.d}
			}
			return nil, err
		}
		// From here the clock runs only while the caller waits in Read: a caller held back by
		// its output must not lose a healthy download.
		timer.Stop()
		resp.Body = &idleBody{rc: resp.Body, timer: timer, idle: it.d, ctx: ctx, cancel: cancel}
		return resp, nil
	})
}

type idleBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	idle   time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	// After the idle abort even io.EOF is suspect (net/http can report a cut connection as a
	// clean end): a truncated export file must never pass for a complete one.
	if err != nil && errors.Is(context.Cause(b.ctx), errIdle) {
		return n, &IdleTimeoutError{Idle: b.idle}
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.timer.Stop()
		b.cancel(nil)
	})
	return err
}

func isTokenRequest(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") ||
		strings.Contains(r.URL.Path, "/metadata/identity/oauth2/token")
}
