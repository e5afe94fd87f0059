package simulator

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Graph limits as documented (alerts_v2 $top ≤ 1000, $skip ≤ 500) and observed
// (incidents $top ≤ 50); default page sizes when $top is absent.
const (
	maxAlertTop         = 1000
	maxIncidentTop      = 50
	maxSkip             = 500
	defaultAlertPage    = 100
	defaultIncidentPage = 20
	foreignHost         = "https://evil.example.test"
	odataJSONType       = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
)

// graphAudiences are the token audiences Graph accepts besides the
// simulator's own URL: the public Graph hosts of every cloud and Graph's app id.
var graphAudiences = set(
	"https://graph.microsoft.com", "https://graph.microsoft.us", "https://dod-graph.microsoft.us",
	"00000003-0000-0000-c000-000000000000",
)

func (s *Server) isGraphAudience(aud string) bool {
	if graphAudiences[aud] {
		return true
	}
	u, err := url.Parse(aud)
	if err != nil || u.Scheme != "https" {
		return false
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(s.url, "https://"), ":")
	host := u.Hostname()
	return (host == "127.0.0.1" || host == "localhost" || host == "::1") && u.Port() == port
}

// authorize answers 401 like Graph when the bearer token is missing, unknown,
// expired, revoked by ExpireTokens or minted for a resource the API does not
// accept. Other APIs of the tenant (Defender for Endpoint) reuse it with their
// own audiences.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, acceptsAudience func(string) bool) bool {
	authz := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(strings.TrimSpace(authz), " ")
	tok = strings.TrimSpace(tok)
	if authz == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		s.writeUnauthorized(w, r, "Access token is empty.")
		return false
	}
	info, ok := s.tokens.lookup(tok)
	if !ok || info.revoked || !s.cfg.Now().Before(info.expires) {
		s.writeUnauthorized(w, r, "Access token has expired or is not yet valid.")
		return false
	}
	if !acceptsAudience(info.audience) {
		s.writeUnauthorized(w, r, "Access token validation failure. Invalid audience.")
		return false
	}
	return true
}

func (s *Server) writeUnauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+baseURL(r)+`/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	writeGraphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
}

func writeGraphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	reqID := setGraphHeaders(w, r)
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"innerError": map[string]any{
			"date":              nowUTCString(),
			"request-id":        reqID,
			"client-request-id": firstNonEmpty(r.Header.Get("client-request-id"), reqID),
		},
	}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func setGraphHeaders(w http.ResponseWriter, r *http.Request) string {
	reqID := newRandomGUID()
	h := w.Header()
	h.Set("request-id", reqID)
	h.Set("client-request-id", firstNonEmpty(r.Header.Get("client-request-id"), reqID))
	h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"SIM"}}`)
	h.Set("Strict-Transport-Security", "max-age=31536000")
	return reqID
}

type graphRoute struct {
	kind       entityKind
	collection string // "alerts_v2" or "incidents"
	id         string // "" for the collection
	version    string // "v1.0" or "beta"
}

func parseGraphRoute(p string) (graphRoute, bool) {
	version, rest, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	segs := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(segs) < 2 || len(segs) > 3 || segs[0] != "security" {
		return graphRoute{}, false
	}
	rt := graphRoute{collection: segs[1], version: version}
	switch segs[1] {
	case "alerts_v2":
		rt.kind = kindAlert
	case "incidents":
		rt.kind = kindIncident
	default:
		return graphRoute{}, false
	}
	if len(segs) == 3 {
		id, err := url.PathUnescape(segs[2])
		if err != nil || id == "" {
			return graphRoute{}, false
		}
		rt.id = id
	}
	return rt, true
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r, s.isGraphAudience) {
		return
	}
	if ok, wait := s.appLimits.allow("graph", s.cfg.GraphLimits, time.Now()); !ok {
		setRetryAfter(w, wait)
		writeGraphError(w, r, http.StatusTooManyRequests, "TooManyRequests", "Too many requests from this application for this tenant; retry after the time in Retry-After.")
		return
	}
	rt, ok := parseGraphRoute(r.URL.Path)
	if !ok {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", lastSegment(r.URL.Path)))
		return
	}
	if r.Method != http.MethodGet {
		writeGraphError(w, r, http.StatusMethodNotAllowed, "BadRequest", fmt.Sprintf("The request method '%s' is not supported for this resource.", r.Method))
		return
	}
	q, err := parseGraphQuery(rt, r.URL.RawQuery)
	if err != nil {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	includeUnknown := strings.Contains(strings.ToLower(strings.Join(r.Header.Values("Prefer"), ",")), "include-unknown-enum-members")
	if rt.id != "" {
		s.serveEntity(w, r, rt, q, includeUnknown)
		return
	}
	s.serveCollection(w, r, rt, q, includeUnknown)
}

func lastSegment(p string) string {
	p = strings.TrimSuffix(p, "/")
	return p[strings.LastIndex(p, "/")+1:]
}

type graphQuery struct {
	filter  predicate
	order   ordering
	top     int
	offset  int
	count   bool
	expand  bool
	rawKeep []string // query parts a nextLink repeats (all but $skip/$skiptoken)
}

// parseGraphQuery reads OData system query options; Graph v1.0 accepts them
// with or without the "$" prefix and rejects the ones it does not support.
func parseGraphQuery(rt graphRoute, rawQuery string) (graphQuery, error) {
	q := graphQuery{top: defaultAlertPage}
	maxTop := maxAlertTop
	if rt.kind == kindIncident {
		q.top, maxTop = defaultIncidentPage, maxIncidentTop
	}
	seen := map[string]bool{}
	skip, skipToken := 0, -1
	for _, part := range strings.Split(rawQuery, "&") {
		if part == "" {
			continue
		}
		rawKey, rawVal, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			return q, badRequestf("Malformed query string.")
		}
		val, err := url.QueryUnescape(rawVal)
		if err != nil {
			return q, badRequestf("Malformed value for query option '%s'.", key)
		}
		name := strings.ToLower(strings.TrimPrefix(key, "$"))
		switch name {
		case "filter", "orderby", "top", "skip", "skiptoken", "expand", "count", "select", "search", "format":
		default:
			if strings.HasPrefix(key, "$") {
				return q, badRequestf("Query option '%s' is not supported.", key)
			}
			continue // ordinary parameters are ignored, as Graph does
		}
		if seen[name] {
			return q, badRequestf("Query option '$%s' was specified more than once, but it must be specified at most once.", name)
		}
		seen[name] = true
		if name != "skip" && name != "skiptoken" {
			q.rawKeep = append(q.rawKeep, part)
		}
		switch name {
		case "filter":
			if q.filter, err = parseFilter(rt.kind, val); err != nil {
				return q, err
			}
		case "orderby":
			if q.order, err = parseOrderBy(rt.kind, val); err != nil {
				return q, err
			}
		case "top":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 0 {
				return q, badRequestf("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", val)
			}
			if n > maxTop {
				return q, badRequestf("The limit of '%d' for Top query has been exceeded. The value from the incoming request is '%d'.", maxTop, n)
			}
			q.top = n
		case "skip":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 0 {
				return q, badRequestf("Invalid value '%s' for $skip query option found. The $skip query option requires a non-negative integer value.", val)
			}
			if n > maxSkip {
				return q, badRequestf("The limit of '%d' for Skip query has been exceeded. The value from the incoming request is '%d'.", maxSkip, n)
			}
			skip = n
		case "skiptoken":
			if skipToken, err = decodeSkipToken(val); err != nil {
				return q, err
			}
		case "expand":
			if rt.kind != kindIncident || !strings.EqualFold(strings.TrimSpace(val), "alerts") {
				return q, badRequestf("Could not find a property named '%s' on type '%s'.", val, entityTypeName(rt.kind))
			}
			q.expand = true
		case "count":
			switch strings.ToLower(val) {
			case "true":
				q.count = true
			case "false":
			default:
				return q, badRequestf("'%s' is not a valid count option.", val)
			}
		case "search":
			return q, badRequestf("Search is not supported on '%s'.", rt.collection)
		}
	}
	q.offset = skip
	if skipToken >= 0 {
		q.offset = skipToken
	}
	return q, nil
}

// Skip tokens carry an absolute offset, so following nextLinks is not bound
// by the $skip limit (as on Graph, whose tokens are opaque to clients).
func encodeSkipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("sim-offset:" + strconv.Itoa(offset)))
}

func decodeSkipToken(tok string) (int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimPrefix(string(raw), "sim-offset:")); err == nil && n >= 0 && strings.HasPrefix(string(raw), "sim-offset:") {
			return n, nil
		}
	}
	return 0, badRequestf("The $skiptoken value '%s' is invalid.", tok)
}

type listPage struct {
	items    []*record
	total    int
	more     bool
	embedded map[string][][]byte // incident id → alert payloads, with $expand=alerts
}

func (s *Server) list(kind entityKind, q graphQuery, includeUnknown bool) listPage {
	s.store.mu.RLock()
	src := s.store.alerts
	if kind == kindIncident {
		src = s.store.incidents
	}
	matched := make([]*record, 0, len(src))
	for _, rec := range src {
		if q.filter == nil || q.filter(rec) {
			matched = append(matched, rec)
		}
	}
	s.store.mu.RUnlock()

	sort.Slice(matched, func(i, j int) bool { return q.order.less(matched[i], matched[j]) })
	page := listPage{total: len(matched)}
	if q.offset < len(matched) {
		end := min(q.offset+q.top, len(matched))
		page.items = matched[q.offset:end]
		page.more = end < len(matched)
	}
	if q.expand {
		page.embedded = s.expandAlerts(page.items, includeUnknown)
	}
	return page
}

func (s *Server) expandAlerts(incidents []*record, includeUnknown bool) map[string][][]byte {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	out := make(map[string][][]byte, len(incidents))
	for _, inc := range incidents {
		if inc.hasEmbedded {
			out[inc.id] = inc.embedded
			continue
		}
		alerts := s.store.alertsOfLocked(inc.id)
		payloads := make([][]byte, len(alerts))
		for i, a := range alerts {
			payloads[i] = a.payload(includeUnknown)
		}
		out[inc.id] = payloads
	}
	return out
}

func (s *Server) serveCollection(w http.ResponseWriter, r *http.Request, rt graphRoute, q graphQuery, includeUnknown bool) {
	page := s.list(rt.kind, q, includeUnknown)
	base := baseURL(r)
	context := fmt.Sprintf("%s/%s/$metadata#security/%s", base, rt.version, rt.collection)
	if q.expand {
		context += "(alerts())"
	}
	var nextLink string
	if page.more {
		next := "$skiptoken=" + encodeSkipToken(q.offset+len(page.items))
		if s.cfg.SkipNextLinks {
			next = fmt.Sprintf("$skip=%d", q.offset+len(page.items))
		}
		parts := append(append([]string(nil), q.rawKeep...), next)
		nextLink = base + r.URL.Path + "?" + strings.Join(parts, "&")
	}
	fault, hasFault := s.faults.take(r, s.tenantID, isPageFault)
	if hasFault && fault.Kind == FaultForeignNextLink {
		parts := append(append([]string(nil), q.rawKeep...), "$skiptoken="+encodeSkipToken(q.offset+len(page.items)))
		nextLink = foreignHost + r.URL.Path + "?" + strings.Join(parts, "&")
	}
	if hasFault && fault.Kind == FaultNoNextLink {
		nextLink = ""
	}

	// Pages are streamed: 50 incidents × 400 alerts are ~70 MB of JSON, and a
	// simulator running inside `defenderbeat simulate` must not hold that twice.
	s.writeGraphHead(w, r, fault, hasFault, includeUnknown, -1)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`{"@odata.context":`)
	writeJSONString(bw, context)
	if q.count {
		fmt.Fprintf(bw, `,"@odata.count":%d`, page.total)
	}
	if nextLink != "" {
		bw.WriteString(`,"@odata.nextLink":`)
		writeJSONString(bw, nextLink)
	}
	bw.WriteString(`,"value":[`)
	cutAfter := -1
	if hasFault && fault.Kind == FaultCutPage {
		cutAfter = max(1, len(page.items)/2)
	}
	s.served.add(rt.collection, page.items)
	for i, rec := range page.items {
		if i == cutAfter {
			cutConnection(w, bw)
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		if q.expand {
			writeIncidentWithAlerts(bw, rec.payload(includeUnknown), page.embedded[rec.id])
		} else {
			bw.Write(rec.payload(includeUnknown))
		}
	}
	if cutAfter >= 0 {
		cutConnection(w, bw) // a page too short to cut inside is cut before its end
	}
	bw.WriteString("]}")
	_ = bw.Flush() // a client that hung up is not the simulator's problem
}

// cutConnection sends what was written so far and drops the connection without ending the
// chunked body, as a network failure mid-page does.
func cutConnection(w http.ResponseWriter, bw *bufio.Writer) {
	_ = bw.Flush()
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	panic(http.ErrAbortHandler)
}

func (s *Server) serveEntity(w http.ResponseWriter, r *http.Request, rt graphRoute, q graphQuery, includeUnknown bool) {
	s.store.mu.RLock()
	src := s.store.alerts
	if rt.kind == kindIncident {
		src = s.store.incidents
	}
	rec := src[rt.id]
	s.store.mu.RUnlock()
	if rec == nil {
		what := "Alert"
		if rt.kind == kindIncident {
			what = "Incident"
		}
		writeGraphError(w, r, http.StatusNotFound, "NotFound", fmt.Sprintf("%s '%s' was not found.", what, rt.id))
		return
	}
	context := fmt.Sprintf("%s/%s/$metadata#security/%s", baseURL(r), rt.version, rt.collection)
	if q.expand {
		context += "(alerts())"
	}
	context += "/$entity"
	payload := rec.payload(includeUnknown)
	var buf bytes.Buffer
	buf.WriteString(`{"@odata.context":`)
	writeJSONString(&buf, context)
	if body := bytes.TrimSpace(payload); len(body) > 2 {
		buf.WriteByte(',')
		var inner bytes.Buffer
		if q.expand {
			writeIncidentWithAlerts(&inner, payload, s.expandAlerts([]*record{rec}, includeUnknown)[rec.id])
		} else {
			inner.Write(payload)
		}
		b := bytes.TrimSpace(inner.Bytes())
		buf.Write(b[1:])
	} else {
		buf.WriteByte('}')
	}
	fault, hasFault := s.faults.take(r, s.tenantID, func(f Fault) bool {
		return isPageFault(f) && f.Kind != FaultForeignNextLink && f.Kind != FaultNoNextLink
	})
	body := buf.Bytes()
	s.served.add(rt.collection, []*record{rec})
	s.writeGraphHead(w, r, fault, hasFault, includeUnknown, len(body))
	_, _ = w.Write(body)
}

// writeGraphHead writes the status line and headers of a successful answer,
// turned into a 206 by a partial-content fault; contentLength < 0 streams.
func (s *Server) writeGraphHead(w http.ResponseWriter, r *http.Request, fault Fault, hasFault, includeUnknown bool, contentLength int) {
	setGraphHeaders(w, r)
	h := w.Header()
	h.Set("Content-Type", odataJSONType)
	h.Set("OData-Version", "4.0")
	if includeUnknown {
		h.Set("Preference-Applied", "include-unknown-enum-members")
	}
	status := http.StatusOK
	if hasFault {
		if fault.RetryAfter != "" {
			h.Set("Retry-After", fault.RetryAfter)
		}
		if fault.Kind == FaultPartial || (fault.Kind == FaultStatus && fault.Status == http.StatusPartialContent) {
			status = http.StatusPartialContent
			h.Set("Warning", firstNonEmpty(fault.Warning, defaultPartialWarning))
		}
	}
	if contentLength >= 0 {
		h.Set("Content-Length", strconv.Itoa(contentLength))
	}
	w.WriteHeader(status)
}

var alertTypeMember = []byte(`"@odata.type":"#microsoft.graph.security.alert",`)

// writeIncidentWithAlerts splices the alerts array into the incident object
// instead of decoding and re-encoding it.
func writeIncidentWithAlerts(buf jsonWriter, incident []byte, alerts [][]byte) {
	inc := bytes.TrimSpace(incident)
	buf.Write(inc[:len(inc)-1])
	if len(inc) > 2 {
		buf.WriteByte(',')
	}
	buf.WriteString(`"alerts":[`)
	for i, a := range alerts {
		if i > 0 {
			buf.WriteByte(',')
		}
		a = bytes.TrimSpace(a)
		if len(a) > 2 && a[0] == '{' && !bytes.Contains(a[:min(len(a), 64)], []byte(`"@odata.type"`)) {
			buf.WriteByte('{')
			buf.Write(alertTypeMember)
			buf.Write(a[1:])
			continue
		}
		buf.Write(a)
	}
	buf.WriteString("]}")
}

type jsonWriter interface {
	Write([]byte) (int, error)
	WriteByte(byte) error
	WriteString(string) (int, error)
}

func writeJSONString(buf jsonWriter, s string) {
	b, _ := json.Marshal(s)
	buf.Write(b)
}

func nowUTCString() string { return time.Now().UTC().Format("2006-01-02T15:04:05") }

// servedLog remembers which records Graph handed out, per collection, so tests
// can tell what a client asked for from what it kept.
type servedLog struct {
	mu  sync.Mutex
	ids map[string]map[string]int // collection → record id → times served
}

func (l *servedLog) add(collection string, recs []*record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ids == nil {
		l.ids = map[string]map[string]int{}
	}
	if l.ids[collection] == nil {
		l.ids[collection] = map[string]int{}
	}
	for _, rec := range recs {
		l.ids[collection][rec.id]++
	}
}

// Served returns how many times each record of a Graph collection ("alerts_v2",
// "incidents") was served, in a listing page or read by its id; alerts embedded
// in incidents by $expand are not counted as alerts_v2 records.
func (s *Server) Served(collection string) map[string]int {
	s.served.mu.Lock()
	defer s.served.mu.Unlock()
	out := make(map[string]int, len(s.served.ids[collection]))
	for id, n := range s.served.ids[collection] {
		out[id] = n
	}
	return out
}
