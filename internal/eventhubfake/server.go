// Package eventhubfake is an AMQP 1.0 peer that behaves like Azure Event Hubs closely enough for
// the unmodified azeventhubs/v2 SDK (producer, consumer, processor) to run against it over plain
// TCP in the SDK's emulator mode. The Event Hubs tests use it, and it is built to ship inside the
// binary as the simulated tenant's hub (the event dataset's `defenderbeat simulate`): small, a
// bounded window of events per partition, loopback by default.
//
// What the SDK asks of a peer (CBS token puts, management requests, start-position filters,
// ownership by epoch, recovery after faults) is pinned by the contract tests in sdk_test.go,
// processor_test.go and faults_test.go, which run the unmodified SDK against it.
package eventhubfake

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// Config describes the namespace the fake serves.
type Config struct {
	// ListenAddr defaults to 127.0.0.1:0. The port is part of the namespace the SDK sees (and so
	// of checkpoint blob names): a restarted fake must reuse it to find its checkpoints.
	ListenAddr string
	// Namespace is the container-id the fake announces; defaults to "eventhubfake".
	Namespace string
	// Hubs to serve; at least one.
	Hubs []HubConfig
	// RetentionEvents and RetentionBytes bound each partition (defaults 100000 events, 16 MiB);
	// the oldest events go first and begin_sequence_number moves on.
	RetentionEvents int
	RetentionBytes  int64
	// MaxMessageSize is announced on every link (default 1 MiB, Event Hubs standard tier).
	MaxMessageSize uint64
	// SASKeyName/SASKey go into ConnectionString. When SASKey is set, $cbs tokens are verified
	// and links need a matching claim; otherwise any token is accepted.
	SASKeyName string
	SASKey     string
	// IdleTimeout is announced in open and enforced on reads (default 60 s).
	IdleTimeout time.Duration
	// Logf receives diagnostics (protocol errors); nil discards them.
	Logf func(format string, args ...any)
}

// HubConfig is one event hub.
type HubConfig struct {
	Name       string
	Partitions int // default 4
	// ConsumerGroups besides $Default, which always exists.
	ConsumerGroups []string
}

// Server is a running fake namespace.
type Server struct {
	cfg    Config
	ln     net.Listener
	hubs   map[string]*hub // lower-cased name
	faults faults

	mu     sync.Mutex
	conns  map[*conn]bool
	closed bool
	wg     sync.WaitGroup
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "eventhubfake"
	}
	if cfg.RetentionEvents <= 0 {
		cfg.RetentionEvents = 100000
	}
	if cfg.RetentionBytes <= 0 {
		cfg.RetentionBytes = 16 << 20
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = 1 << 20
	}
	if cfg.SASKeyName == "" {
		cfg.SASKeyName = "RootManageSharedAccessKey"
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if len(cfg.Hubs) == 0 {
		return nil, errors.New("eventhubfake: no hubs configured")
	}
	s := &Server{cfg: cfg, hubs: map[string]*hub{}, conns: map[*conn]bool{}}
	for _, hc := range cfg.Hubs {
		if hc.Name == "" || strings.Contains(hc.Name, "/") {
			return nil, fmt.Errorf("eventhubfake: invalid hub name %q", hc.Name)
		}
		if hc.Partitions <= 0 {
			hc.Partitions = 4
		}
		key := strings.ToLower(hc.Name)
		if s.hubs[key] != nil {
			return nil, fmt.Errorf("eventhubfake: duplicate hub %q", hc.Name)
		}
		s.hubs[key] = newHub(hc, cfg.RetentionEvents, cfg.RetentionBytes)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return nil, fmt.Errorf("eventhubfake: %w", err)
	}
	s.ln = ln
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
		}()
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// endpointHost is what clients dial: the listen address, with an unspecified host replaced by
// loopback.
func (s *Server) endpointHost() string {
	addr := s.ln.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(addr.Port))
	}
	return addr.String()
}

// ConnectionString is an emulator-mode connection string (plain TCP, port in the endpoint);
// hub may be empty to leave out EntityPath.
func (s *Server) ConnectionString(hub string) string {
	key := s.cfg.SASKey
	if key == "" {
		key = "unused"
	}
	cs := fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=%s", s.endpointHost(), s.cfg.SASKeyName, key)
	if hub != "" {
		cs += ";EntityPath=" + hub
	}
	return cs + ";UseDevelopmentEmulator=true"
}

// Close stops listening and drops every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	err := s.ln.Close()
	for _, c := range conns {
		c.shutdown()
	}
	s.wg.Wait()
	return err
}

func (s *Server) hub(name string) *hub { return s.hubs[strings.ToLower(name)] }

func (s *Server) lookup(hubName, partitionID string) (*hub, *partition, error) {
	h := s.hub(hubName)
	if h == nil {
		return nil, nil, fmt.Errorf("eventhubfake: unknown hub %q", hubName)
	}
	p := h.partition(partitionID)
	if p == nil {
		return nil, nil, fmt.Errorf("eventhubfake: hub %q has no partition %q", hubName, partitionID)
	}
	return h, p, nil
}

// Send appends events with the given bodies to a partition, as a producer would.
func (s *Server) Send(hubName, partitionID string, bodies ...[]byte) error {
	_, p, err := s.lookup(hubName, partitionID)
	if err != nil {
		return err
	}
	msgs := make([]*amqp.Message, len(bodies))
	for i, b := range bodies {
		msgs[i] = &amqp.Message{Data: [][]byte{b}}
	}
	return p.appendMessages(msgs)
}

// Records returns the retained events of a partition, oldest first.
func (s *Server) Records(hubName, partitionID string) ([]Record, error) {
	_, p, err := s.lookup(hubName, partitionID)
	if err != nil {
		return nil, err
	}
	return p.records(), nil
}

// produce stores one delivery from a producer link: a single message, or a batch
// (message-format 0x80013700) whose data sections are whole messages, all to one partition.
func (s *Server) produce(h *hub, p *partition, format uint32, payload []byte) error {
	if s.faults.takeServerBusy() {
		return &linkError{condition: "com.microsoft:server-busy", description: "server busy (fault injection)"}
	}
	var env amqp.Message
	if err := env.UnmarshalBinary(payload); err != nil {
		return err
	}
	msgs := []*amqp.Message{&env}
	if format == batchMessageFormat {
		msgs = make([]*amqp.Message, 0, len(env.Data))
		for _, d := range env.Data {
			m := new(amqp.Message)
			if err := m.UnmarshalBinary(d); err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if p == nil {
		key, _ := env.Annotations[annPartitionKey].(string)
		if key == "" {
			key, _ = msgs[0].Annotations[annPartitionKey].(string)
		}
		p = h.route(key)
	}
	return p.appendMessages(msgs)
}

// faults holds the injected failures; each hook is one-shot or counted so tests stay bounded.
type faults struct {
	mu            sync.Mutex
	serverBusy    int
	claimRefusals int
	claimStatus   int32
	delay         time.Duration
}

func (f *faults) takeServerBusy() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.serverBusy > 0 {
		f.serverBusy--
		return true
	}
	return false
}

func (f *faults) takeClaimRefusal() (int32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claimRefusals > 0 {
		f.claimRefusals--
		return f.claimStatus, true
	}
	return 0, false
}

func (f *faults) claimDelay() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay
}

// ServerBusy makes the next n producer deliveries fail with com.microsoft:server-busy, which
// the SDK retries.
func (s *Server) ServerBusy(n int) {
	s.faults.mu.Lock()
	s.faults.serverBusy = n
	s.faults.mu.Unlock()
}

// RefuseClaims answers the next n $cbs put-token requests with status (e.g. 401 is fatal for
// the SDK, 503 is retried).
func (s *Server) RefuseClaims(n int, status int32) {
	s.faults.mu.Lock()
	s.faults.claimRefusals, s.faults.claimStatus = n, status
	s.faults.mu.Unlock()
}

// DelayClaims delays every $cbs reply by d (0 restores prompt replies).
func (s *Server) DelayClaims(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.delay = d
	s.faults.mu.Unlock()
}

// PausePartition stops (or resumes) delivery from a partition; sends still succeed.
func (s *Server) PausePartition(hubName, partitionID string, paused bool) error {
	_, p, err := s.lookup(hubName, partitionID)
	if err != nil {
		return err
	}
	p.setPaused(paused)
	return nil
}

// DropConnections closes every client connection abruptly (no close performative), as a
// network failure would, and returns how many there were.
func (s *Server) DropConnections() int {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	return len(conns)
}

// DetachLinks detaches every producer and consumer link with the given error condition (for
// example amqp:link:detach-forced, recovered by the SDK, or amqp:link:stolen) and returns how
// many it detached.
func (s *Server) DetachLinks(condition, description string) int {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range conns {
		c.mu.Lock()
		var targets []*link
		for _, sess := range c.sessions {
			for _, l := range sess.links {
				if (l.kind == kindProducer || l.kind == kindConsumer) && !l.detached {
					targets = append(targets, l)
				}
			}
		}
		c.mu.Unlock()
		for _, l := range targets {
			c.detachFromServer(l, condition, description)
			n++
		}
	}
	return n
}
