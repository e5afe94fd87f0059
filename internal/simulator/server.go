// Package simulator is a simulated Microsoft tenant served over TLS with its
// own CA: an Entra ID (OAuth2 v2.0) authority, the Microsoft Graph security
// APIs (alerts_v2, incidents) and the Defender for Endpoint vulnerability
// export and delta APIs, with seeded, changing data, Microsoft-like paging and
// limits, and injectable faults; optionally the Streaming API's event hub.
// Integration tests and `defenderbeat simulate` point real clients (azidentity,
// azcore, azeventhubs) at it.
//
// Files: server.go (lifecycle, routing, request log), ca.go (certificates),
// oauth.go (authority and tokens), graph.go (Graph endpoints), query.go
// ($filter/$orderby), store.go (records), data.go + evidence.go (generated
// tenant data and its changes), faults.go (fault injection), mde*.go
// (Defender for Endpoint, see mde.go), streaming.go (Advanced Hunting records
// on the Event Hubs fake).
package simulator

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Config describes the simulated tenant.
type Config struct {
	Addr string // listen address, default "127.0.0.1:0"
	Seed int64  // data and default credentials are deterministic for a seed

	// TenantID, ClientID and ClientSecret default to values derived from Seed.
	TenantID, ClientID, ClientSecret string

	Alerts    int // alerts at start (default 200), lastUpdateDateTime spread over the last 48h
	Incidents int // incidents at start (default 50); one groups many alerts, a few are redirected
	// AlertsPerIncident, when > 0, gives every incident exactly that many alerts
	// (Alerts is then ignored and no incident is redirected); for load tests.
	AlertsPerIncident int

	// ChangeEvery > 0 applies Tick periodically so a running client keeps receiving data.
	ChangeEvery time.Duration
	// SkipNextLinks makes Graph's @odata.nextLink carry a growing $skip (as some Graph
	// collections do) instead of a $skiptoken; $skip above 500 is then refused like Graph does.
	SkipNextLinks bool
	// MDE sizes the Defender for Endpoint vulnerability export and delta data.
	MDE MDEConfig
	// GraphLimits, when set, limits the security API's requests per application
	// and answers 429 with Retry-After beyond them, as Graph does
	// (GraphSecurityLimits are Graph's documented ones; tests scale them down).
	GraphLimits []CallLimit
	// Streaming, when set, also serves the Streaming API's event hub (streaming.go).
	Streaming *StreamingConfig
	Now       func() time.Time                 // default time.Now
	Logf      func(format string, args ...any) // optional request log
}

// Request is one recorded request. Header is a copy in which Authorization
// only tells whether a credential was sent ("Bearer <present>").
type Request struct {
	Time     time.Time
	Method   string
	Path     string
	RawQuery string
	Header   http.Header
	Status   int // 0 when the connection was dropped or the request is still running
}

// Server is a running simulated tenant.
type Server struct {
	cfg       Config
	tenantID  string
	clientID  string
	secret    string
	auth      *authority
	caFile    string
	tmpDir    string
	listener  net.Listener
	http      *http.Server
	url       string
	store     *store
	data      *generator
	mde       *mdeState
	streaming *streamer // nil without Config.Streaming
	tokens    *tokenStore
	faults    faultList
	appLimits *callLimits // GraphLimits and MDEConfig.APILimits
	served    servedLog
	log       requestLog
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start generates the tenant and serves it until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Alerts <= 0 {
		cfg.Alerts = 200
	}
	if cfg.Incidents <= 0 {
		cfg.Incidents = 50
	}
	if cfg.AlertsPerIncident <= 0 && cfg.Incidents > cfg.Alerts {
		// Graph has no incident without an alert; its times come from its alerts.
		cfg.Incidents = cfg.Alerts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ids := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed1d5))
	s := &Server{
		cfg:       cfg,
		tenantID:  firstNonEmpty(cfg.TenantID, newGUID(ids)),
		clientID:  firstNonEmpty(cfg.ClientID, newGUID(ids)),
		store:     newStore(),
		appLimits: newCallLimits(),
		stop:      make(chan struct{}),
	}
	s.secret = firstNonEmpty(cfg.ClientSecret, newClientSecret(ids))
	s.tokens = newTokenStore(s.tenantID, s.clientID)
	s.log.limit = maxRecordedRequests

	auth, err := newAuthority()
	if err != nil {
		return nil, err
	}
	s.auth = auth
	if s.tmpDir, err = os.MkdirTemp("", "defenderbeat-simulator-"); err != nil {
		return nil, err
	}
	s.caFile = filepath.Join(s.tmpDir, "ca.pem")
	if err := os.WriteFile(s.caFile, auth.caPEM, 0o600); err != nil {
		os.RemoveAll(s.tmpDir)
		return nil, err
	}

	s.data = newGenerator(cfg, s.tenantID)
	s.data.populate(s.store)
	s.mde = newMDEState(cfg.MDE, cfg.Seed, s.tenantID, cfg.Now())

	if cfg.Streaming != nil {
		if s.streaming, err = startStreaming(*cfg.Streaming, cfg.Seed, s.tenantID, cfg.Addr, cfg.Now); err != nil {
			os.RemoveAll(s.tmpDir)
			return nil, fmt.Errorf("simulator event hub: %w", err)
		}
		// A first backlog, so a reader starting from the earliest position has every table.
		if err := s.streaming.send(2 * s.streaming.cfg.MessagesPerTick); err != nil {
			s.streaming.close()
			os.RemoveAll(s.tmpDir)
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if s.streaming != nil {
			s.streaming.close()
		}
		os.RemoveAll(s.tmpDir)
		return nil, fmt.Errorf("simulator listen on %s: %w", cfg.Addr, err)
	}
	s.listener = ln
	s.url = "https://" + ln.Addr().String()
	errorLog := log.New(io.Discard, "", 0)
	if cfg.Logf != nil {
		errorLog = log.New(logfWriter(cfg.Logf), "simulator: ", 0)
	}
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errorLog,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{auth.serverCert},
			MinVersion:   tls.VersionTLS12,
		},
		// HTTP/1.1 only: FaultDropConnection hijacks the connection.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.http.Serve(tls.NewListener(ln, s.http.TLSConfig))
	}()
	if cfg.ChangeEvery > 0 {
		s.wg.Add(1)
		go s.changeLoop(cfg.ChangeEvery)
	}
	return s, nil
}

func (s *Server) changeLoop(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Tick()
		}
	}
}

// URL is the base of both the login authority and Graph ("https://127.0.0.1:PORT").
func (s *Server) URL() string { return s.url }

// Hostname is URL's host without the port: the host export files are served from, which a
// client must be told to accept (download_hosts) since it is not Azure Storage.
func (s *Server) Hostname() string {
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(s.url, "https://"))
	return host
}

// GraphScope is the client-credentials scope for this Graph ("<URL>/.default").
// Tokens for https://graph.microsoft.com/.default are accepted as well.
func (s *Server) GraphScope() string { return s.url + "/.default" }

// CAFile is a PEM file holding the simulator's CA; it is removed by Close.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM is the simulator's CA certificate in PEM form.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.auth.caPEM...) }

func (s *Server) TenantID() string     { return s.tenantID }
func (s *Server) ClientID() string     { return s.clientID }
func (s *Server) ClientSecret() string { return s.secret }

// Close stops serving and removes the CA file.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if shutdownErr := s.http.Shutdown(ctx); shutdownErr != nil {
			err = s.http.Close()
		}
		s.wg.Wait()
		if s.streaming != nil {
			s.streaming.close()
		}
		if rmErr := os.RemoveAll(s.tmpDir); rmErr != nil && err == nil {
			err = rmErr
		}
	})
	return err
}

// PutAlert inserts or replaces an alert by its "id". The map is copied.
// It panics when the record has no id: that is a mistake in the calling test.
func (s *Server) PutAlert(raw map[string]any) { s.put(kindAlert, raw) }

// PutIncident inserts or replaces an incident by its "id". Its alerts are the
// stored alerts whose incidentId matches, unless raw carries an "alerts" array,
// which is then served as is with $expand=alerts.
func (s *Server) PutIncident(raw map[string]any) { s.put(kindIncident, raw) }

func (s *Server) put(kind entityKind, raw map[string]any) {
	own, err := cloneRaw(raw)
	if err != nil {
		panic(fmt.Sprintf("simulator: record is not JSON-encodable: %v", err))
	}
	rec, err := newRecord(kind, own)
	if err != nil {
		panic(fmt.Sprintf("simulator: %v", err))
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if kind == kindAlert {
		s.store.putAlertLocked(rec)
	} else {
		s.store.putIncidentLocked(rec)
	}
}

// Reset removes every alert and incident.
func (s *Server) Reset() { s.store.reset() }

// Tick applies one change step now: some alerts and their incidents are
// updated (lastUpdateDateTime = now) and new alerts, sometimes in new
// incidents, appear; Defender for Endpoint records MDEConfig.DeltaChangesPerTick
// vulnerability changes (eventTimestamp = now); with Streaming, new messages
// reach the event hub.
func (s *Server) Tick() {
	s.data.tick(s.store)
	s.mde.tick(s.cfg.Now())
	if s.streaming != nil {
		_ = s.streaming.send(s.streaming.cfg.MessagesPerTick) // the fake only refuses when closed
	}
}

// Alerts returns a copy of every current alert, in id order.
func (s *Server) Alerts() []map[string]any {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	return snapshot(s.store.alerts)
}

// Incidents returns a copy of every current incident (without alerts), in id order.
func (s *Server) Incidents() []map[string]any {
	s.store.mu.RLock()
	defer s.store.mu.RUnlock()
	return snapshot(s.store.incidents)
}

// AddFault queues a fault; see Fault for matching rules. FaultCrowdedTimestamp
// changes the tenant's data at once instead.
func (s *Server) AddFault(f Fault) {
	if f.Kind == FaultCrowdedTimestamp {
		s.crowdOneInstant(f.Records)
		return
	}
	s.faults.add(f)
}

// ClearFaults removes every queued fault.
func (s *Server) ClearFaults() { s.faults.clear() }

// Requests returns the recorded requests, oldest first (the last 10,000 are kept).
func (s *Server) Requests() []Request { return s.log.list() }

// TokensIssued counts the access tokens the token endpoint has issued.
func (s *Server) TokensIssued() int { return s.tokens.issuedCount() }

// ExpireTokens makes every token issued so far fail with 401 on Graph.
func (s *Server) ExpireTokens() { s.tokens.expireAll() }

// ServeHTTP routes a request; exported only through Server being an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	started := time.Now()
	seq := s.log.add(r, s.cfg.Now())
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.log.setStatus(seq, sw.status)
		if s.cfg.Logf != nil {
			s.cfg.Logf("simulator: %s %s -> %d (%s)", r.Method, r.URL.Path, sw.status, time.Since(started).Round(time.Millisecond))
		}
	}()

	if f, ok := s.faults.take(r, s.tenantID, isPreAuthFault); ok {
		s.serveFault(sw, r, f)
		return
	}
	var out http.ResponseWriter = sw
	if f, ok := s.faults.take(r, s.tenantID, isSlowFault); ok {
		tw := &trickleWriter{ResponseWriter: sw, over: f.Trickle, done: r.Context().Done()}
		defer tw.finish()
		out = tw
	}
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/v1.0/") || strings.HasPrefix(path, "/beta/"):
		s.serveGraph(out, r)
	case isMDEPath(path):
		s.serveMDE(out, r)
	case isBlobPath(path):
		s.serveBlob(out, r)
	case path == "/common/discovery/instance":
		s.serveInstanceDiscovery(out, r)
	case strings.HasSuffix(path, "/v2.0/.well-known/openid-configuration"):
		s.serveOpenIDConfiguration(out, r)
	case strings.HasSuffix(path, "/oauth2/v2.0/token"):
		s.serveToken(out, r)
	default:
		writeGraphError(out, r, http.StatusNotFound, "NotFound", fmt.Sprintf("Resource not found for the segment '%s'.", strings.Trim(path, "/")))
	}
}

// baseURL is the scheme and host the client used, so links it follows keep
// the name it already trusts (127.0.0.1 or localhost).
func baseURL(r *http.Request) string { return "https://" + r.Host }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	return h.Hijack()
}

const maxRecordedRequests = 10000

type requestLog struct {
	mu    sync.Mutex
	limit int
	next  uint64 // sequence number of the next request
	ring  []Request
	seqs  []uint64
}

// add records a request before it is handled, so a client that has its answer
// always finds its request in Requests().
func (l *requestLog) add(r *http.Request, now time.Time) uint64 {
	h := make(http.Header, len(r.Header))
	for k, v := range r.Header {
		if strings.EqualFold(k, "Authorization") {
			h[k] = []string{redactAuthorization(v)}
			continue
		}
		h[k] = append([]string(nil), v...)
	}
	req := Request{Time: now, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: h}
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := l.next
	l.next++
	if len(l.ring) < l.limit {
		l.ring = append(l.ring, req)
		l.seqs = append(l.seqs, seq)
	} else {
		i := int(seq % uint64(l.limit))
		l.ring[i] = req
		l.seqs[i] = seq
	}
	return seq
}

func (l *requestLog) setStatus(seq uint64, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := int(seq % uint64(l.limit))
	if i < len(l.seqs) && l.seqs[i] == seq {
		l.ring[i].Status = status
	}
}

func (l *requestLog) list() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Request, 0, len(l.ring))
	start := 0
	if len(l.ring) == l.limit {
		start = int(l.next % uint64(l.limit))
	}
	for k := 0; k < len(l.ring); k++ {
		req := l.ring[(start+k)%len(l.ring)]
		h := make(http.Header, len(req.Header))
		for name, v := range req.Header {
			h[name] = append([]string(nil), v...)
		}
		req.Header = h
		out = append(out, req)
	}
	return out
}

func redactAuthorization(values []string) string {
	if len(values) == 0 || strings.TrimSpace(values[0]) == "" {
		return ""
	}
	scheme, _, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
	return scheme + " <present>"
}

type logfWriter func(format string, args ...any)

func (f logfWriter) Write(p []byte) (int, error) {
	f("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// crowdOneInstant adds n alerts (default 2000) sharing one lastUpdateDateTime a minute before
// now, shaped like the tenant's own: copies of its first alert with new ids, outside any incident.
func (s *Server) crowdOneInstant(n int) {
	if n <= 0 {
		n = defaultCrowdedRecords
	}
	stamp := formatGraphTime(s.cfg.Now().Add(-time.Minute))
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	template := map[string]any{"severity": "medium", "status": "new", "title": "Bulk-updated alert"}
	if all := snapshot(s.store.alerts); len(all) > 0 {
		template = all[0]
	}
	raw, _ := json.Marshal(template)
	for i := range n {
		var a map[string]any
		_ = json.Unmarshal(raw, &a)
		a["id"] = fmt.Sprintf("crowded-%s-%05d", strings.ReplaceAll(stamp, ":", ""), i)
		a["lastUpdateDateTime"] = stamp
		delete(a, "incidentId")
		delete(a, "incidentWebUrl")
		if rec, err := newRecord(kindAlert, a); err == nil {
			s.store.putAlertLocked(rec)
		}
	}
}
