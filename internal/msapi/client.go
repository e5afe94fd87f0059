package msapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/transport/httpcommon"
	"github.com/elastic/elastic-agent-libs/transport/tlscommon"
)

const (
	pipelineModule  = "defenderbeat-msapi"
	pipelineVersion = "v1"
	// Error bodies are only read for their error code and message.
	maxErrorBody = 64 << 10
	// Token answers are small; anything bigger is not an authority.
	maxTokenBody = 1 << 20
)

// Client calls one Microsoft API (Graph or Defender for Endpoint) for one input.
type Client struct {
	opts     Options
	api      API
	base     *url.URL
	scopes   []string
	log      *logp.Logger
	metrics  *Metrics
	sc       scrubber
	cred     *renewableCredential
	pipeline runtime.Pipeline
	download runtime.Pipeline
}

// Response is a complete API answer with a 2xx status.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	// Partial is HTTP 206: a federated provider failed and the data may be incomplete.
	Partial bool
	Warning string
}

// Page is one page of an OData collection.
type Page struct {
	Values   []json.RawMessage
	NextLink string
	Partial  bool
	Warning  string
}

// NewClient builds a client from Resolve()d options. log and m may be nil.
func NewClient(o Options, api API, log *logp.Logger, m *Metrics) (*Client, error) {
	if log == nil {
		log = logp.NewNopLogger()
	}
	log = log.Named("msapi")
	if m == nil {
		m = NewMetrics(nil)
	}
	base, err := url.Parse(o.RequestURL)
	if err != nil || base.Scheme != "https" || base.Host == "" {
		return nil, errors.New("request_url: must be an https URL (were the options resolved?)")
	}
	if len(o.TokenScopes) == 0 || o.LoginURL == "" {
		return nil, errors.New("msapi: options must be resolved with Resolve before NewClient")
	}
	o.setDefaults()

	c := &Client{
		opts:    o,
		api:     api,
		base:    base,
		scopes:  append([]string(nil), o.TokenScopes...),
		log:     log,
		metrics: m,
		sc:      newScrubber(o.ClientSecret, o.CertificatePassword, proxyPassword(o.ProxyURL)),
	}
	if o.AuthType == AuthManagedIdentity {
		// The identity endpoints' header secrets (App Service, Service Fabric, Azure ML).
		c.sc = newScrubber(proxyPassword(o.ProxyURL), os.Getenv("IDENTITY_HEADER"), os.Getenv("MSI_SECRET"))
	}

	apiHTTP, err := newHTTPClient(o, log, true, refuseRedirects)
	if err != nil {
		return nil, err
	}
	downloadHTTP, err := newHTTPClient(o, log, true, c.checkDownloadRedirect)
	if err != nil {
		return nil, err
	}
	if c.cred, err = sharedCredential(o, log, c.sc); err != nil {
		return nil, err
	}

	perRetry := []policy.Policy{
		metricsPolicy(m, log, c.sc),
		reauthPolicy(c.cred, log),
		runtime.NewBearerTokenPolicy(c.cred, c.scopes, nil),
		// Last before the wire: Microsoft counts a request when it arrives, so nothing (a token
		// request) should come between taking the budget and sending.
		&budgetPolicy{budget: budgetFor(o, api), metrics: m, log: log, api: api},
	}
	if o.EnableRequestTracer {
		perRetry = append(perRetry, c.tracer(true))
	}
	// No per-try total timeout: a streamed page is read as fast as its consumer goes, which under
	// output back-pressure may be far slower than the network. The transport's idle timeout
	// bounds every wait on the network instead.
	c.pipeline = runtime.NewPipeline(pipelineModule, pipelineVersion, runtime.PipelineOptions{PerRetry: perRetry}, &policy.ClientOptions{
		Transport: &limitedTransport{client: apiHTTP, limit: o.MaxResponseBytes, metrics: m, idle: o.HTTPClientTimeout},
		Retry:     c.retryOptions(0),
		Telemetry: policy.TelemetryOptions{ApplicationID: "defenderbeat"},
	})

	// Export files sit behind SAS URLs on storage hosts: no bearer token, the caller's idle timeout.
	dlPerRetry := []policy.Policy{metricsPolicy(m, log, c.sc)}
	if o.EnableRequestTracer {
		dlPerRetry = append(dlPerRetry, c.tracer(false))
	}
	c.download = runtime.NewPipeline(pipelineModule, pipelineVersion, runtime.PipelineOptions{PerRetry: dlPerRetry}, &policy.ClientOptions{
		Transport: &limitedTransport{client: downloadHTTP, metrics: m, idle: o.HTTPClientTimeout},
		Retry:     c.retryOptions(0),
		Telemetry: policy.TelemetryOptions{ApplicationID: "defenderbeat"},
	})
	return c, nil
}

// setDefaults fills what a zero Options (one not built from DefaultOptions) lacks.
func (o *Options) setDefaults() {
	if o.retryDelay == 0 {
		o.retryDelay = defaultRetryDelay
	}
	if o.maxRetryDelay == 0 {
		o.maxRetryDelay = defaultMaxRetryDelay
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.HTTPClientTimeout <= 0 {
		o.HTTPClientTimeout = DefaultHTTPClientTimeout
	}
}

func (c *Client) retryOptions(tryTimeout time.Duration) policy.RetryOptions {
	return retryOptions(c.opts, tryTimeout)
}

func retryOptions(o Options, tryTimeout time.Duration) policy.RetryOptions {
	maxRetries := int32(o.MaxRetries)
	if maxRetries == 0 {
		maxRetries = -1 // azcore reads 0 as "default (3)"
	}
	return policy.RetryOptions{
		MaxRetries:    maxRetries,
		TryTimeout:    tryTimeout,
		RetryDelay:    o.retryDelay,
		MaxRetryDelay: o.maxRetryDelay,
		StatusCodes: []int{
			http.StatusTooManyRequests,
			http.StatusInternalServerError,
			http.StatusBadGateway,
			http.StatusServiceUnavailable,
			http.StatusGatewayTimeout,
		},
	}
}

func (c *Client) tracer(logBody bool) policy.Policy { return newTracer(c.log, c.sc, logBody) }

func newTracer(log *logp.Logger, sc scrubber, logBody bool) policy.Policy {
	return &tracerPolicy{log: log.Named("trace"), sc: sc, logBody: logBody, maxBody: 4096}
}

// newHTTPClient builds the transport in libbeat's shape (ssl, proxy_url) with per-host TLS
// verification. checkRedirect decides about redirects as http.Client.CheckRedirect does.
func newHTTPClient(o Options, log *logp.Logger, useProxy bool, checkRedirect func(*http.Request, []*http.Request) error) (*http.Client, error) {
	settings := httpcommon.HTTPTransportSettings{
		TLS:     o.SSL,
		Timeout: o.HTTPClientTimeout,
		Proxy:   httpcommon.DefaultHTTPClientProxySettings(),
	}
	if o.ProxyURL != "" {
		p, err := httpcommon.NewProxyURIFromString(o.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("proxy_url: %w", redactErr(err, o.ProxyURL))
		}
		settings.Proxy.URL = p
	}
	settings.Proxy.Disable = !useProxy
	rt, err := settings.RoundTripper(httpcommon.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("ssl: %w", err)
	}
	if t, ok := rt.(*http.Transport); ok && o.SSL.IsEnabled() {
		tlsCfg, err := tlscommon.LoadTLSConfig(o.SSL, log)
		if err != nil {
			return nil, fmt.Errorf("ssl: %w", err)
		}
		// Through a proxy, net/http does the TLS handshake with TLSClientConfig, whose verifier
		// was built without a host name and so would skip hostname verification.
		t.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			verify := tlsCfg.BuildModuleClientConfig(cs.ServerName).VerifyConnection
			if verify == nil {
				return nil
			}
			return verify(cs)
		}
	}
	return &http.Client{Transport: rt, CheckRedirect: checkRedirect}, nil
}

// refuseRedirects hands a redirect back as the answer: following it would carry the request
// (and its token) to a host nobody vetted.
func refuseRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// checkDownloadRedirect follows a redirect of an export download only to an allowed host.
func (c *Client) checkDownloadRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return c.checkDownloadURL(req.URL)
}

// checkDownloadURL admits an https URL on one of download_hosts.
func (c *Client) checkDownloadURL(u *url.URL) error {
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("download URL %s: must be an https URL", redactURL(u))
	}
	host := strings.ToLower(u.Hostname())
	for _, allowed := range c.opts.DownloadHosts {
		if suffix, ok := strings.CutPrefix(allowed, "*"); ok {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return nil
			}
		} else if host == allowed {
			return nil
		}
	}
	return &DownloadHostError{Host: host, Allowed: c.opts.DownloadHosts}
}

func proxyPassword(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		return pw
	}
	return ""
}

// BaseURL is request_url; a copy.
func (c *Client) BaseURL() *url.URL {
	u := *c.base
	return &u
}

// Token acquires a token once, for `test credentials`.
func (c *Client) Token(ctx context.Context) error {
	_, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: c.scopes, EnableCAE: true})
	return err
}

// resolveURL joins a path to request_url, or accepts an absolute URL only on request_url's
// scheme, host and port.
func (c *Client) resolveURL(pathOrURL string, query url.Values) (*url.URL, error) {
	ref, err := url.Parse(pathOrURL)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %w", truncate(pathOrURL, 200), err)
	}
	var u url.URL
	if ref.IsAbs() || ref.Host != "" {
		if !sameOrigin(ref, c.base) {
			return nil, &ForeignHostError{URL: redactURL(ref), Base: c.base.Scheme + "://" + c.base.Host}
		}
		u = *ref
	} else {
		u = *c.base
		u.Path = strings.TrimRight(c.base.Path, "/") + "/" + strings.TrimLeft(ref.Path, "/")
		u.RawPath = ""
		u.RawQuery = ref.RawQuery
	}
	if len(query) > 0 {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += encodeQuery(query)
	}
	return &u, nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// Get fetches pathOrURL with the bearer token and returns the whole 2xx answer; anything else is
// an error (*APIError, *TokenError, *ForeignHostError, ErrBodyTooLarge, ...).
func (c *Client) Get(ctx context.Context, pathOrURL string, query url.Values, header http.Header) (*Response, error) {
	resp, err := c.get(ctx, pathOrURL, query, header)
	if err != nil {
		c.metrics.ErrorsTotal.Inc()
	}
	return resp, err
}

func (c *Client) get(ctx context.Context, pathOrURL string, query url.Values, header http.Header) (*Response, error) {
	resp, u, err := c.send(ctx, pathOrURL, query, header, false)
	if err != nil {
		return nil, err
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return nil, c.transportError(ctx, http.MethodGet, u, err)
	}
	out := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}
	out.Partial, out.Warning = c.partial(resp, u)
	return out, nil
}

// send runs a GET through the API pipeline and returns a 2xx response; anything else becomes
// an error. With stream the body is left unread for the caller to decode as it arrives.
func (c *Client) send(ctx context.Context, pathOrURL string, query url.Values, header http.Header, stream bool) (*http.Response, *url.URL, error) {
	u, err := c.resolveURL(pathOrURL, query)
	if err != nil {
		return nil, nil, err
	}
	if stream {
		// A streamed page is read one record at a time: StreamPage caps each record instead of
		// the whole body.
		ctx = context.WithValue(ctx, uncappedBody{}, true)
	}
	req, err := runtime.NewRequest(ctx, http.MethodGet, u.String())
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Raw().Header.Add(k, v)
		}
	}
	if req.Raw().Header.Get("Accept") == "" {
		req.Raw().Header.Set("Accept", "application/json")
	}
	if req.Raw().Header.Get("client-request-id") == "" {
		if id, err := runtime.NewUUID(); err == nil {
			req.Raw().Header.Set("client-request-id", id)
		}
	}
	if stream {
		runtime.SkipBodyDownload(req)
	}
	req.SetOperationValue(&callState{})

	resp, err := c.pipeline.Do(req)
	if err != nil {
		return nil, nil, c.transportError(ctx, http.MethodGet, u, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var body []byte
		if stream {
			body, err = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
		} else {
			body, err = runtime.Payload(resp)
		}
		if err != nil {
			return nil, nil, c.transportError(ctx, http.MethodGet, u, err)
		}
		return nil, nil, newAPIError(resp, body, c.sc, false)
	}
	return resp, u, nil
}

// partial reports a 206: Graph's security API is federated and a provider that did not answer
// leaves the page incomplete.
func (c *Client) partial(resp *http.Response, u *url.URL) (bool, string) {
	if resp.StatusCode != http.StatusPartialContent {
		return false, ""
	}
	warning := c.sc.scrub(resp.Header.Get("Warning"))
	c.metrics.PartialTotal.Inc()
	c.log.Warnw("Partial answer from the API (HTTP 206): a provider failed, the data may be incomplete.",
		"url.original", redactURL(u), "warning", warning, "request_id", resp.Header.Get("request-id"))
	return true, warning
}

// transportError renders a failure that produced no usable answer without credentials: net/http
// errors quote the full URL (SAS signatures included) and azidentity errors quote responses.
func (c *Client) transportError(ctx context.Context, method string, u *url.URL, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		return ctxErr
	}
	var te *TokenError
	if errors.As(err, &te) {
		return te
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: redactURLString(ue.URL), Err: ue.Err}
	}
	return c.sc.scrubErr(fmt.Errorf("%s %s: %w", method, redactURL(u), err))
}

// GetPage fetches one page of an OData collection ({"value":[...],"@odata.nextLink":...}) and
// returns its records. StreamPage is the choice for pages that may be large.
func (c *Client) GetPage(ctx context.Context, pathOrURL string, query url.Values, header http.Header) (*Page, error) {
	page := &Page{}
	var size int64
	info, err := c.StreamPage(ctx, pathOrURL, query, header, func(raw json.RawMessage) error {
		// The page is held whole here, so the whole page is what max_response_bytes caps.
		if size += int64(len(raw)); size > c.opts.MaxResponseBytes {
			return &bodyTooLargeError{limit: c.opts.MaxResponseBytes}
		}
		page.Values = append(page.Values, raw)
		return nil
	})
	if err != nil {
		return nil, err
	}
	page.NextLink, page.Partial, page.Warning = info.NextLink, info.Partial, info.Warning
	return page, nil
}

// PageInfo describes a page whose records were handed over one by one.
type PageInfo struct {
	Records  int
	NextLink string
	Partial  bool
	Warning  string
}

// StreamPage fetches one page of an OData collection and hands each record of "value" to fn as
// soon as it is decoded, so reading a page takes memory for one record, not for the page: an
// incident page with hundreds of alerts per incident runs to tens of megabytes. An error from fn
// stops the read and is returned as is. When the page turns out malformed or is cut off, the
// records before the fault have already been handed over.
func (c *Client) StreamPage(ctx context.Context, pathOrURL string, query url.Values, header http.Header, fn func(json.RawMessage) error) (*PageInfo, error) {
	resp, u, err := c.send(ctx, pathOrURL, query, header, true)
	if err != nil {
		c.metrics.ErrorsTotal.Inc()
		return nil, err
	}
	defer func() {
		// Reading to EOF lets the connection be reused for the next page.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	info := &PageInfo{}
	info.Partial, info.Warning = c.partial(resp, u)
	var fnErr error
	body := &readErrorRecorder{r: resp.Body}
	next, err := decodeRecords(body, c.opts.MaxResponseBytes, func(raw json.RawMessage) error {
		if fnErr = fn(raw); fnErr != nil {
			return fnErr
		}
		info.Records++
		return nil
	})
	if err != nil {
		c.metrics.ErrorsTotal.Inc()
		if fnErr != nil {
			return info, fnErr
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return info, ctxErr
		}
		var tooLarge *bodyTooLargeError
		if errors.As(err, &tooLarge) {
			return info, err
		}
		if body.err != nil {
			// The connection failed, not the page: the error says which (a stall, a reset).
			return info, fmt.Errorf("page from %s cut off after %d records: %w",
				redactPathOrURL(pathOrURL), info.Records, c.sc.scrubErr(body.err))
		}
		return info, fmt.Errorf("malformed page from %s (HTTP %d, after %d records): %w",
			redactPathOrURL(pathOrURL), resp.StatusCode, info.Records, c.sc.scrubErr(err))
	}
	info.NextLink = next
	c.metrics.PagesTotal.Inc()
	return info, nil
}

// decodeRecords reads an OData page from r, calling fn for each element of "value" in order and
// returning @odata.nextLink, wherever in the object each of them stands. With limit > 0 no
// record (nor anything else between two records) may take more than limit bytes, so memory
// stays bounded however long the page is.
func decodeRecords(r io.Reader, limit int64, fn func(json.RawMessage) error) (next string, err error) {
	lr := &recordLimiter{r: r, limit: limit}
	dec := json.NewDecoder(lr)
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	if tok != json.Delim('{') {
		return "", errors.New("not a JSON object")
	}
	sawValue := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch key, _ := tok.(string); key {
		case "value":
			if sawValue {
				// Records of the first array are already handed over: a second is malformed.
				return "", errors.New(`more than one "value" array`)
			}
			if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
				return "", errors.New(`"value" is not an array`)
			}
			sawValue = true
			for dec.More() {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return "", err
				}
				lr.mark = dec.InputOffset()
				if err := fn(raw); err != nil {
					return "", err
				}
			}
			if _, err := dec.Token(); err != nil {
				return "", err
			}
		case "@odata.nextLink":
			if err := dec.Decode(&next); err != nil {
				return "", fmt.Errorf("@odata.nextLink: %w", err)
			}
		default:
			if err := dec.Decode(&skipValue{}); err != nil {
				return "", err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return "", err
	}
	if !sawValue {
		return "", errors.New(`no "value" array`)
	}
	return next, nil
}

// recordLimiter fails a read that would put more than limit bytes between the end of the last
// record and what the decoder holds: the decoder buffers one record at most, so this bounds it.
type recordLimiter struct {
	r     io.Reader
	limit int64
	read  int64 // bytes handed to the decoder
	mark  int64 // input offset just after the last record
}

func (l *recordLimiter) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.limit > 0 && l.read-l.mark > l.limit {
		return n, &bodyTooLargeError{limit: l.limit}
	}
	return n, err
}

// readErrorRecorder remembers the first failure to read, other than the end of the body.
type readErrorRecorder struct {
	r   io.Reader
	err error
}

func (r *readErrorRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// uncappedBody marks a request whose body is capped per record by StreamPage.
type uncappedBody struct{}

// skipValue lets the decoder validate and step over a value without building it.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }

func redactPathOrURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return redactURL(u)
	}
	return "<unparsable URL>"
}

// Download opens an export file behind a SAS URL: no bearer token (the URL carries its own
// signature), only on download_hosts (redirects included), retries on 429/5xx before the body
// starts, and an idle timeout (http_client_timeout when idleTimeout is 0) instead of a total
// one. The caller closes the body and applies any size cap.
func (c *Client) Download(ctx context.Context, rawURL string, idleTimeout time.Duration) (io.ReadCloser, error) {
	rc, err := c.openDownload(ctx, rawURL, idleTimeout)
	if err != nil {
		c.metrics.ErrorsTotal.Inc()
	}
	return rc, err
}

func (c *Client) openDownload(ctx context.Context, rawURL string, idleTimeout time.Duration) (io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("download URL %s: must be an https URL", redactURLString(rawURL))
	}
	if err := c.checkDownloadURL(u); err != nil {
		return nil, err
	}
	if idleTimeout > 0 {
		ctx = context.WithValue(ctx, idleTimeoutKey{}, idleTimeout)
	}
	req, err := runtime.NewRequest(ctx, http.MethodGet, u.String())
	if err != nil {
		return nil, fmt.Errorf("download URL %s: %w", redactURL(u), err)
	}
	runtime.SkipBodyDownload(req)
	req.SetOperationValue(&callState{})

	resp, err := c.download.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, http.MethodGet, u, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		return nil, newAPIError(resp, body, c.sc, true)
	}
	return resp.Body, nil
}
