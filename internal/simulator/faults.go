package simulator

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// FaultKind selects how a matching request is spoiled.
type FaultKind int

const (
	// FaultStatus answers with Status (default 500), an error body and optional Retry-After.
	FaultStatus FaultKind = iota
	// FaultMalformedJSON answers 200 with JSON cut off in the middle of a record.
	FaultMalformedJSON
	// FaultForeignNextLink serves the real page but points @odata.nextLink at another host.
	FaultForeignNextLink
	// FaultHugeBody answers 200 with a syntactically valid body of HugeBytes bytes.
	FaultHugeBody
	// FaultPartial answers 206 with a Warning header and the real page.
	FaultPartial
	// FaultDropConnection closes the connection without answering.
	FaultDropConnection
	// FaultNoNextLink serves the real page without its @odata.nextLink, as Graph
	// sometimes does at its paging limits: clients must continue by timestamp.
	FaultNoNextLink
	// FaultSASExpireMidDownload streams HugeBytes of an export file (default
	// half of it), cuts the connection, and from then on rejects every SAS
	// issued so far for that file with Azure Blob's 403 "Signature not valid
	// in the specified time frame": the client must re-request the export.
	FaultSASExpireMidDownload
	// FaultEmptyBody answers an export file download with 200 and no body.
	FaultEmptyBody
	// FaultTruncatedGzip serves an export file whose gzip stream ends before
	// its last block and trailer.
	FaultTruncatedGzip
	// FaultBadRow serves an export file in which one line is not JSON.
	FaultBadRow
	// FaultCutPage serves the first half of a page's records (at least one; a
	// Graph page or a vulnerability delta page) and then cuts the connection,
	// as a network failure mid-page does.
	FaultCutPage
	// FaultCrowdedTimestamp spoils no request: AddFault adds Records alerts
	// (default 2000) that share one lastUpdateDateTime, a minute before now, as
	// a bulk update in the Defender portal does. More records on one instant
	// than Graph's $skip limit (500) plus a page cannot be paged by timestamp.
	FaultCrowdedTimestamp
	// FaultSlowBody serves the real answer with its headers at once and its body in
	// small pieces spread over Trickle (default 45s), never more than a second
	// apart: slower in total than a client's request timeout, yet never idle. The
	// body is held in memory meanwhile: meant for pages, not export files.
	FaultSlowBody
)

func (k FaultKind) String() string {
	switch k {
	case FaultStatus:
		return "status"
	case FaultMalformedJSON:
		return "malformed-json"
	case FaultForeignNextLink:
		return "foreign-next-link"
	case FaultHugeBody:
		return "huge-body"
	case FaultPartial:
		return "partial"
	case FaultDropConnection:
		return "drop-connection"
	case FaultNoNextLink:
		return "no-next-link"
	case FaultSASExpireMidDownload:
		return "sas-expire-mid-download"
	case FaultEmptyBody:
		return "empty-body"
	case FaultTruncatedGzip:
		return "truncated-gzip"
	case FaultBadRow:
		return "bad-row"
	case FaultCutPage:
		return "cut-page"
	case FaultCrowdedTimestamp:
		return "crowded-timestamp"
	case FaultSlowBody:
		return "slow-body"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Fault spoils requests whose path and query match. Faults are tried in the
// order they were added; the first one that matches and has uses left applies.
type Fault struct {
	// Path is a prefix of the URL path; "{tenant}" stands for the tenant id,
	// so "/{tenant}/oauth2/v2.0/token" targets the token endpoint.
	Path string
	// ExactPath makes Path match only itself, e.g. the incident list without
	// the per-incident "/v1.0/security/incidents/{id}" requests.
	ExactPath bool
	// Query must occur in the raw or the decoded query string (e.g. "$expand=alerts").
	Query      string
	Status     int
	RetryAfter string
	// Body replaces the default error body (Graph or Entra shaped, by path).
	Body string
	// Times is how many matching requests the fault spoils; 0 means once, -1 forever.
	Times int
	Kind  FaultKind
	// HugeBytes is the body size of FaultHugeBody (default 32 MiB), and the
	// bytes FaultSASExpireMidDownload sends before cutting (default half the file).
	HugeBytes int
	// Warning replaces FaultPartial's Warning header value.
	Warning string
	// Records is how many alerts FaultCrowdedTimestamp adds (default 2000).
	Records int
	// Trickle is how long FaultSlowBody takes to send the body (default 45s).
	Trickle time.Duration
}

const (
	defaultHugeBytes      = 32 << 20
	defaultPartialWarning = "Microsoft/DefenderATP/500/1234"
	defaultCrowdedRecords = 2000
	// Longer than the clients' default http_client_timeout (30s).
	defaultTrickle = 45 * time.Second
)

type faultList struct {
	mu     sync.Mutex
	faults []*activeFault
}

type activeFault struct {
	Fault
	left int // -1 = forever
}

func (fl *faultList) add(f Fault) {
	left := f.Times
	if left == 0 {
		left = 1
	}
	fl.mu.Lock()
	fl.faults = append(fl.faults, &activeFault{Fault: f, left: left})
	fl.mu.Unlock()
}

func (fl *faultList) clear() {
	fl.mu.Lock()
	fl.faults = nil
	fl.mu.Unlock()
}

// take consumes one use of the first fault matching r that accept allows.
func (fl *faultList) take(r *http.Request, tenant string, accept func(Fault) bool) (Fault, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	decodedQuery, err := url.QueryUnescape(r.URL.RawQuery)
	if err != nil {
		decodedQuery = r.URL.RawQuery
	}
	for i, f := range fl.faults {
		path := strings.ReplaceAll(f.Path, "{tenant}", tenant)
		if f.ExactPath {
			if strings.TrimSuffix(r.URL.Path, "/") != strings.TrimSuffix(path, "/") {
				continue
			}
		} else if !strings.HasPrefix(r.URL.Path, path) {
			continue
		}
		if f.Query != "" && !strings.Contains(r.URL.RawQuery, f.Query) && !strings.Contains(decodedQuery, f.Query) {
			continue
		}
		if !accept(f.Fault) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				fl.faults = append(fl.faults[:i:i], fl.faults[i+1:]...)
			}
		}
		return f.Fault, true
	}
	return Fault{}, false
}

// Faults that replace the answer entirely are applied before authentication;
// those that decorate a real page need an authenticated, successful request.
func isPreAuthFault(f Fault) bool {
	switch f.Kind {
	case FaultPartial, FaultForeignNextLink, FaultNoNextLink, FaultCutPage, FaultSlowBody:
		return false
	case FaultSASExpireMidDownload, FaultEmptyBody, FaultTruncatedGzip, FaultBadRow:
		return false // they spoil a download whose SAS was accepted
	case FaultStatus:
		return f.Status != http.StatusPartialContent
	}
	return true
}

func isPageFault(f Fault) bool { return !isPreAuthFault(f) && !isDownloadFault(f) && !isSlowFault(f) }

// isSlowFault tells the fault that slows down whatever answer its request gets.
func isSlowFault(f Fault) bool { return f.Kind == FaultSlowBody }

// isDownloadFault tells the faults that spoil an export file download.
func isDownloadFault(f Fault) bool {
	switch f.Kind {
	case FaultSASExpireMidDownload, FaultEmptyBody, FaultTruncatedGzip, FaultBadRow:
		return true
	}
	return false
}

// namedFaults are the presets of `defenderbeat simulate --faults`.
var namedFaults = map[string]struct {
	help   string
	faults []Fault
}{
	"429":         {"Graph answers 429 twice with Retry-After: 1", []Fault{{Path: "/v1.0/", Status: 429, RetryAfter: "1", Times: 2}}},
	"429noretry":  {"Graph answers 429 twice without Retry-After", []Fault{{Path: "/v1.0/", Status: 429, Times: 2}}},
	"500":         {"Graph answers 500 three times", []Fault{{Path: "/v1.0/", Status: 500, Times: 3}}},
	"503":         {"Graph answers 503 twice with Retry-After: 2", []Fault{{Path: "/v1.0/", Status: 503, RetryAfter: "2", Times: 2}}},
	"401":         {"Graph rejects the next request's token once", []Fault{{Path: "/v1.0/", Status: 401, Times: 1}}},
	"403":         {"alerts_v2 answers 403 (missing SecurityAlert.Read.All) once", []Fault{{Path: "/v1.0/security/alerts_v2", Status: 403, Times: 1}}},
	"expand500":   {"incident listing with $expand=alerts always answers 500", []Fault{{Path: "/v1.0/security/incidents", ExactPath: true, Query: "$expand=alerts", Status: 500, Times: -1}}},
	"token500":    {"the token endpoint answers 500 once", []Fault{{Path: "/{tenant}/oauth2/v2.0/token", Status: 500, Times: 1}}},
	"malformed":   {"one alerts_v2 page is truncated JSON", []Fault{{Path: "/v1.0/security/alerts_v2", Kind: FaultMalformedJSON, Times: 1}}},
	"partial":     {"one Graph page is a 206 with a Warning header", []Fault{{Path: "/v1.0/security/", Kind: FaultPartial, Times: 1}}},
	"foreignlink": {"one alerts_v2 page links to https://evil.example.test", []Fault{{Path: "/v1.0/security/alerts_v2", Kind: FaultForeignNextLink, Times: 1}}},
	"huge":        {"one alerts_v2 page is a 64 MiB body", []Fault{{Path: "/v1.0/security/alerts_v2", Kind: FaultHugeBody, HugeBytes: 64 << 20, Times: 1}}},
	"nonextlink":  {"alerts_v2 pages never carry @odata.nextLink", []Fault{{Path: "/v1.0/security/alerts_v2", Kind: FaultNoNextLink, Times: -1}}},
	"drop":        {"one Graph request has its connection dropped", []Fault{{Path: "/v1.0/security/", Kind: FaultDropConnection, Times: 1}}},
	"cutpage":     {"one alerts_v2 page is cut off halfway by a dropped connection", []Fault{{Path: "/v1.0/security/alerts_v2", Kind: FaultCutPage, Times: 1}}},
	"alertread500": {"incident listing with $expand=alerts always answers 500, and the next 12 reads of single incidents (two reads' retries) answer 503, all with Retry-After: 1", []Fault{
		{Path: "/v1.0/security/incidents", ExactPath: true, Query: "$expand=alerts", Status: 500, RetryAfter: "1", Times: -1},
		{Path: "/v1.0/security/incidents/", Status: 503, RetryAfter: "1", Times: 12},
	}},
	"crowded": {"2000 more alerts share one lastUpdateDateTime and alerts_v2 pages carry no nextLink: beyond $skip's 500 plus a page they cannot be read", []Fault{
		{Kind: FaultCrowdedTimestamp, Records: defaultCrowdedRecords},
		{Path: "/v1.0/security/alerts_v2", Kind: FaultNoNextLink, Times: -1},
	}},
	"sasexpire": {"one export file download is cut halfway and its SAS expires", []Fault{{Path: blobPathPrefix, Kind: FaultSASExpireMidDownload, Times: 1}}},
	"emptyfile": {"one export file download answers 200 with an empty body", []Fault{{Path: blobPathPrefix, Kind: FaultEmptyBody, Times: 1}}},
	"truncgzip": {"one export file is a gzip stream cut before its trailer", []Fault{{Path: blobPathPrefix, Kind: FaultTruncatedGzip, Times: 1}}},
	"badrow":    {"one export file holds a line that is not JSON", []Fault{{Path: blobPathPrefix, Kind: FaultBadRow, Times: 1}}},
	"export429": {"the vulnerability export call answers 429 twice with Retry-After: 1", []Fault{{Path: mdeExportPath, Status: 429, RetryAfter: "1", Times: 2}}},
	"deltacut":  {"one vulnerability delta page is cut halfway (connection closed mid-body)", []Fault{{Path: mdeDeltaPath, Kind: FaultCutPage, Times: 1}}},
	"slowpage":  {"one alerts_v2 page trickles in over 45s (> http_client_timeout), never idle for a second", []Fault{{Path: "/v1.0/security/alerts_v2", Kind: FaultSlowBody, Times: 1}}},
	"slowdelta": {"one vulnerability delta page trickles in over 45s (> http_client_timeout), never idle for a second", []Fault{{Path: mdeDeltaPath, Kind: FaultSlowBody, Times: 1}}},
}

// FaultNames lists the names ParseFaults accepts with a short description each.
func FaultNames() map[string]string {
	out := make(map[string]string, len(namedFaults))
	for name, nf := range namedFaults {
		out[name] = nf.help
	}
	return out
}

// ParseFaults turns a comma list of preset names ("429,500,expand500") into faults.
func ParseFaults(spec string) ([]Fault, error) {
	var out []Fault
	var unknown []string
	for _, part := range strings.Split(spec, ",") {
		name := strings.ToLower(strings.TrimSpace(part))
		if name == "" {
			continue
		}
		nf, ok := namedFaults[name]
		if !ok {
			unknown = append(unknown, part)
			continue
		}
		out = append(out, nf.faults...)
	}
	if len(unknown) > 0 {
		valid := make([]string, 0, len(namedFaults))
		for name := range namedFaults {
			valid = append(valid, name)
		}
		sort.Strings(valid)
		return nil, fmt.Errorf("unknown fault %q; valid faults: %s", strings.Join(unknown, ","), strings.Join(valid, ", "))
	}
	return out, nil
}

// serveFault answers a request with a fault that replaces the real answer.
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	switch f.Kind {
	case FaultDropConnection:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case FaultMalformedJSON:
		body := f.Body
		if body == "" {
			body = `{"@odata.context":"` + baseURL(r) + `/v1.0/$metadata#security/alerts_v2","value":[{"id":"da638412960000000000_-1735022781","status":"new","severity":"high","evidence":[{"@odata.type":"#microsoft.graph.security.deviceEvidence","deviceDnsName":"ws-fin-01`
		}
		setGraphHeaders(w, r)
		w.Header().Set("Content-Type", odataJSONType)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, body)
	case FaultHugeBody:
		writeHugeBody(w, r, f.HugeBytes)
	default:
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, f.Body)
			return
		}
		if strings.Contains(r.URL.Path, "/oauth2/") {
			errCode, code, msg := entraFaultError(status, s.clientID)
			s.writeEntraError(w, status, errCode, code, msg)
			return
		}
		if isBlobPath(r.URL.Path) {
			writeBlobFaultError(w, status)
			return
		}
		if isMDEPath(r.URL.Path) {
			writeMDEFaultError(w, status)
			return
		}
		code, msg := graphFaultError(status, r.URL.Path)
		if status == http.StatusUnauthorized {
			s.writeUnauthorized(w, r, msg)
			return
		}
		writeGraphError(w, r, status, code, msg)
	}
}

func graphFaultError(status int, path string) (code, msg string) {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest", "Invalid request."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
	case http.StatusForbidden:
		roles := "SecurityAlert.Read.All, SecurityAlert.ReadWrite.All"
		if strings.Contains(path, "/incidents") {
			roles = "SecurityIncident.Read.All, SecurityIncident.ReadWrite.All"
		}
		return "Forbidden", "Missing application roles. API required roles: " + roles + ". Application roles: ."
	case http.StatusNotFound:
		return "NotFound", "Resource not found."
	case http.StatusTooManyRequests:
		return "TooManyRequests", "Too many requests."
	case http.StatusBadGateway:
		return "BadGateway", "Bad gateway."
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable", "The service is temporarily unavailable. Please retry later."
	case http.StatusGatewayTimeout:
		return "GatewayTimeout", "The operation timed out."
	}
	if status >= 500 {
		return "InternalServerError", "An internal server error occurred while processing the request."
	}
	return http.StatusText(status), http.StatusText(status)
}

func entraFaultError(status int, clientID string) (errCode string, code int, msg string) {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_client", 7000215, "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + clientID + "'."
	case status == http.StatusForbidden:
		return "access_denied", 50105, "AADSTS50105: The signed in user is not assigned to a role for the application."
	case status == http.StatusTooManyRequests || status >= 500:
		return "temporarily_unavailable", 90033, "AADSTS90033: A transient error has occurred. Please try again."
	}
	return "invalid_request", 90014, "AADSTS90014: The request is invalid."
}

// writeHugeBody streams a syntactically valid Graph page of exactly n bytes
// (when n exceeds its frame), without a Content-Length, so only a client that
// caps what it reads is protected.
func writeHugeBody(w http.ResponseWriter, r *http.Request, n int) {
	if n <= 0 {
		n = defaultHugeBytes
	}
	head := `{"@odata.context":"` + baseURL(r) + `/v1.0/$metadata#security/alerts_v2","value":[{"id":"huge","description":"`
	tail := `"}]}`
	setGraphHeaders(w, r)
	w.Header().Set("Content-Type", odataJSONType)
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, head); err != nil {
		return
	}
	chunk := bytes.Repeat([]byte("A"), 32<<10)
	for left := n - len(head) - len(tail); left > 0; {
		c := chunk[:min(left, len(chunk))]
		if _, err := w.Write(c); err != nil {
			return // the client gave up, as it should
		}
		left -= len(c)
	}
	_, _ = io.WriteString(w, tail)
}

// trickleWriter holds back an answer's body and sends it in pieces spread over a
// duration (FaultSlowBody). The status line and headers go out at once.
type trickleWriter struct {
	http.ResponseWriter
	over        time.Duration
	done        <-chan struct{} // the client went away
	body        bytes.Buffer
	wroteHeader bool
}

func (t *trickleWriter) WriteHeader(code int) {
	if t.wroteHeader {
		return
	}
	t.wroteHeader = true
	t.ResponseWriter.WriteHeader(code)
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (t *trickleWriter) Write(p []byte) (int, error) {
	t.WriteHeader(http.StatusOK)
	return t.body.Write(p)
}

// Flush is a no-op: finish decides when bytes leave.
func (t *trickleWriter) Flush() {}

func (t *trickleWriter) finish() {
	t.WriteHeader(http.StatusOK)
	over := t.over
	if over <= 0 {
		over = defaultTrickle
	}
	step := min(time.Second, over/20)
	pieces := max(int(over/step), 1)
	body := t.body.Bytes()
	size := max((len(body)+pieces-1)/pieces, 1)
	flusher, _ := t.ResponseWriter.(http.Flusher)
	for len(body) > 0 {
		n := min(size, len(body))
		if _, err := t.ResponseWriter.Write(body[:n]); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if body = body[n:]; len(body) == 0 {
			return
		}
		select {
		case <-time.After(step):
		case <-t.done:
			return
		}
	}
}
