package msapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/elastic/elastic-agent-libs/logp"
)

// limitedTransport counts response bytes, enforces the body cap where the body is read (so that
// azcore's body download inside the retry loop stops at the cap instead of buffering an
// arbitrarily large answer) and enforces the idle timeout.
//
// The idle timeout is the only clock on an attempt. It runs while the request waits for its
// answer (connecting, sending, waiting for the headers) and then only while the reader waits
// for body bytes inside Read: a body whose reader is held back by its output or by enrichment
// lookups is never cut, however long it takes, but a connection that stops delivering is.
type limitedTransport struct {
	client  *http.Client
	limit   int64 // 0: no cap
	metrics *Metrics
	idle    time.Duration // default idle timeout; a request's context may carry its own
}

// idleTimeoutKey is a context key for a per-call idle timeout (export downloads have their own).
type idleTimeoutKey struct{}

func (t *limitedTransport) Do(r *http.Request) (*http.Response, error) {
	idle := t.idle
	if idle <= 0 {
		idle = DefaultHTTPClientTimeout
	}
	if d, ok := r.Context().Value(idleTimeoutKey{}).(time.Duration); ok && d > 0 {
		idle = d
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	timer := time.AfterFunc(idle, func() { cancel(errIdle) })
	resp, err := t.client.Do(r.WithContext(ctx))
	timer.Stop()
	if err != nil {
		stalled := errors.Is(context.Cause(ctx), errIdle)
		cancel(nil)
		switch {
		case stalled:
			return nil, &IdleTimeoutError{Idle: idle}
		case isCertificateError(err):
			// Retrying cannot make an untrusted certificate trusted.
			return nil, &nonRetriableError{err}
		}
		return nil, err
	}
	limit := t.limit
	if r.Context().Value(uncappedBody{}) != nil && resp.StatusCode < 400 {
		// Streamed pages are capped per record by StreamPage; error answers are read whole.
		limit = 0
	}
	if limit > 0 && resp.ContentLength > limit {
		resp.Body.Close()
		cancel(nil)
		return nil, &bodyTooLargeError{limit: limit}
	}
	resp.Body = &idleBody{
		rc:     &countingBody{rc: resp.Body, limit: limit, metrics: t.metrics},
		timer:  timer,
		idle:   idle,
		ctx:    ctx,
		cancel: cancel,
	}
	return resp, nil
}

var errIdle = errors.New("idle timeout")

// idleBody runs the idle timer only inside Read, and reports a read cut by it as such.
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
	// clean end): a truncated body must never pass for a complete one.
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
func metricsPolicy(m *Metrics, log *logp.Logger, sc scrubber) policy.Policy {
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
			// net/http quotes the whole URL, SAS signature included.
			log.Debugw("HTTP attempt failed.", "url.original", redactURL(req.Raw().URL), "error", sc.scrub(err.Error()))
		case resp.StatusCode == http.StatusTooManyRequests:
			m.ThrottledTotal.Inc()
			log.Debugw("Throttled by the API (HTTP 429).", "retry_after", resp.Header.Get("Retry-After"))
		case resp.StatusCode >= 500:
			log.Debugw("The API answered a server error.", "http.response.status_code", resp.StatusCode)
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
		log.Debug("The API answered 401; acquiring a new token and retrying once.")
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
	log     *logp.Logger
	sc      scrubber
	logBody bool
	maxBody int
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
	p.log.Debugw("HTTP request.", fields...)

	start := time.Now()
	resp, err := req.Next()
	if err != nil {
		p.log.Debugw("HTTP request failed.", "url.original", p.sc.scrub(redactURL(r.URL)), "error", p.sc.scrub(err.Error()), "event.duration", time.Since(start).Nanoseconds())
		return resp, err
	}
	fields = []any{
		"url.original", p.sc.scrub(redactURL(r.URL)),
		"http.response.status_code", resp.StatusCode,
		"http.response.header", p.sc.scrub(redactHeaders(resp.Header)),
		"event.duration", time.Since(start).Nanoseconds(),
	}
	if p.logBody {
		if b, perr := p.body(r, resp); perr == nil {
			// Any answer may be a token: managed identity endpoints have no fixed path.
			text := redactTokenJSON(b)
			fields = append(fields, "http.response.body.content", truncate(p.sc.scrub(text), p.maxBody))
		}
	}
	p.log.Debugw("HTTP response.", fields...)
	return resp, nil
}

// body returns what the trace shows of a response body. A streamed page is left streaming: only
// its beginning is read ahead and put back in front of the rest (a read error stays for the
// reader to meet, as net/http's bodies repeat it).
func (p *tracerPolicy) body(r *http.Request, resp *http.Response) ([]byte, error) {
	if r.Context().Value(uncappedBody{}) == nil {
		return runtime.Payload(resp)
	}
	head := make([]byte, p.maxBody+1)
	n, _ := io.ReadFull(resp.Body, head)
	head = head[:n]
	resp.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
	return head, nil
}

type prefixedBody struct {
	io.Reader
	io.Closer
}
