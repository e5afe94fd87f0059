package eventhubfake

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"time"
)

const (
	// ourMaxFrameSize is what the fake accepts; 64 KiB keeps big events multi-frame, which is
	// what the SDK sees from Azure too.
	ourMaxFrameSize = 65536
	// sessionWindow is the fake's incoming window; it re-opens the window at half.
	sessionWindow = 5000
	// linkCreditGrant is the credit given to every client sender; refilled at half.
	linkCreditGrant = 1000
	// maxPumpBatch bounds how many events one consumer write carries.
	maxPumpBatch     = 128
	handshakeTimeout = 10 * time.Second
)

type linkKind int

const (
	kindCBSRequests linkKind = iota // client sends put-token requests
	kindMgmtRequests
	kindReplies // the fake sends RPC replies
	kindProducer
	kindConsumer
)

type conn struct {
	srv *Server
	nc  net.Conn

	mu           sync.Mutex          // guards everything below until the writer fields
	sessions     map[uint16]*session // by the client's channel
	usedChannels map[uint16]bool
	peerMaxFrame uint32
	heartbeat    time.Duration
	closed       bool
	claims       map[string]bool // entity paths authorised through $cbs (lower case)
	after        []func()        // run by the reader after it releases mu

	wmu       sync.Mutex
	wq        [][]byte
	wclose    bool
	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type session struct {
	remoteCh, localCh uint16
	nextOutgoingID    uint32 // transfer-id of the fake's next transfer frame
	peerNextIncoming  uint32 // the client's next-incoming-id from its last flow
	peerWindow        uint32 // the client's incoming-window from its last flow
	nextIncomingID    uint32 // transfer-id expected from the client
	receivedSinceFlow uint32
	nextDeliveryID    uint32
	links             map[uint32]*link // by the client's handle
	usedHandles       map[uint32]bool
}

// remoteWindow is how many more transfer frames the client will accept on this session.
func (s *session) remoteWindow() uint32 {
	w := int64(s.peerNextIncoming) + int64(s.peerWindow) - int64(s.nextOutgoingID)
	if w < 0 {
		return 0
	}
	return uint32(w)
}

type link struct {
	c            *conn
	sess         *session
	name         string
	kind         linkKind
	remote       uint32 // client's handle
	local        uint32 // fake's handle
	address      string // reply links: the client's address that replies are routed to
	detached     bool   // no more frames may be sent on it
	detachSent   bool
	maxMsgSize   uint64
	wake         chan struct{}
	replyQueue   [][]byte
	hub          *hub
	part         *partition // producer to one partition, or consumer
	group        string
	epoch        *int64
	receiverName string
	nextSeq      int64

	// Fake as sender: credit per the client's last flow.
	deliveryCount uint32
	credit        uint32
	drain         bool

	// Fake as receiver.
	rcvDeliveryCount uint32
	rcvCredit        uint32
	inDelivery       bool
	deliveryID       uint32
	deliveryFormat   uint32
	deliverySettled  bool
	deliveryTooBig   bool
	buf              []byte
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func newConn(srv *Server, nc net.Conn) *conn {
	return &conn{
		srv: srv, nc: nc,
		sessions: map[uint16]*session{}, usedChannels: map[uint16]bool{}, claims: map[string]bool{},
		peerMaxFrame: minMaxFrameSize, heartbeat: 15 * time.Second,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// send queues bytes for the writer; callers that must order frames against state changes hold mu.
func (c *conn) send(b []byte) {
	c.wmu.Lock()
	c.wq = append(c.wq, b)
	c.wmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) sendFrame(channel uint16, code uint64, list List, payload []byte) {
	b, err := appendFrame(nil, frameAMQP, channel, code, list, payload)
	if err != nil {
		c.srv.logf("encoding frame 0x%02x: %v", code, err)
		c.shutdown()
		return
	}
	c.send(b)
}

// closeAfterFlush makes the writer close the socket once everything queued is written.
func (c *conn) closeAfterFlush() {
	c.wmu.Lock()
	c.wclose = true
	c.wmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) writeLoop() {
	c.mu.Lock()
	hb := c.heartbeat
	c.mu.Unlock()
	ticker := time.NewTicker(hb)
	defer ticker.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-ticker.C:
			c.mu.Lock()
			if c.heartbeat != hb {
				hb = c.heartbeat
				ticker.Reset(hb)
			}
			c.mu.Unlock()
			c.send(emptyFrame)
		}
		c.wmu.Lock()
		q, closing := c.wq, c.wclose
		c.wq = nil
		c.wmu.Unlock()
		if len(q) > 0 {
			bufs := net.Buffers(q)
			_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := bufs.WriteTo(c.nc); err != nil {
				c.shutdown()
				return
			}
		}
		if closing {
			c.shutdown()
			return
		}
	}
}

// shutdown tears the connection down at once: no frame can be sent after it.
func (c *conn) shutdown() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		for _, s := range c.sessions {
			for _, l := range s.links {
				c.markDetached(l)
			}
		}
		c.mu.Unlock()
		close(c.done)
		_ = c.nc.Close()
		c.srv.forget(c)
	})
}

var errClientClosed = errors.New("client closed the connection")

func (c *conn) serve() {
	defer c.shutdown()
	r := bufio.NewReaderSize(c.nc, 64*1024)
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.handshake(r); err != nil {
		c.srv.logf("handshake: %v", err)
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	go c.writeLoop()
	hdr := make([]byte, 8)
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
		f, err := readFrame(r, ourMaxFrameSize, hdr)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.srv.logf("read: %v", err)
			}
			return
		}
		if f.typ != frameAMQP || f.fields == nil && f.code == 0 {
			continue // keep-alive
		}
		c.mu.Lock()
		err = c.dispatch(f)
		after := c.after
		c.after = nil
		c.mu.Unlock()
		for _, fn := range after {
			fn()
		}
		if err != nil {
			if errors.Is(err, errClientClosed) {
				// Let the writer flush our close before the socket goes away.
				select {
				case <-c.done:
				case <-time.After(5 * time.Second):
				}
			} else if !errors.Is(err, net.ErrClosed) {
				c.srv.logf("protocol: %v", err)
			}
			return
		}
	}
}

// handshake runs the protocol headers, SASL ANONYMOUS (the only mechanism the SDK uses) and
// the open exchange.
func (c *conn) handshake(r *bufio.Reader) error {
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return err
	}
	if bytes.Equal(hdr, headerSASL) {
		if _, err := c.nc.Write(headerSASL); err != nil {
			return err
		}
		mechs, _ := appendFrame(nil, frameSASL, 0, codeSASLMechanisms, List{Array{Symbol("ANONYMOUS")}}, nil)
		if _, err := c.nc.Write(mechs); err != nil {
			return err
		}
		f, err := readFrame(r, ourMaxFrameSize, make([]byte, 8))
		if err != nil {
			return err
		}
		code := uint8(0)
		if f.typ != frameSASL || f.code != codeSASLInit || f.fields.str(0) != "ANONYMOUS" {
			code = 1 // auth failure
		}
		outcome, _ := appendFrame(nil, frameSASL, 0, codeSASLOutcome, List{code}, nil)
		if _, err := c.nc.Write(outcome); err != nil {
			return err
		}
		if code != 0 {
			return errors.New("client did not choose SASL ANONYMOUS")
		}
		if _, err := io.ReadFull(r, hdr); err != nil {
			return err
		}
	}
	if !bytes.Equal(hdr, headerAMQP) {
		_, _ = c.nc.Write(headerAMQP)
		return fmt.Errorf("unsupported protocol header %q", hdr)
	}
	if _, err := c.nc.Write(headerAMQP); err != nil {
		return err
	}
	f, err := readFrame(r, ourMaxFrameSize, hdr)
	if err != nil {
		return err
	}
	if f.code != codeOpen {
		return fmt.Errorf("expected open, got performative 0x%02x", f.code)
	}
	c.peerMaxFrame = uint32(min(f.fields.uintOr(2, math.MaxUint32), math.MaxUint32))
	if c.peerMaxFrame < minMaxFrameSize {
		return fmt.Errorf("peer max-frame-size %d below the minimum", c.peerMaxFrame)
	}
	if idle := time.Duration(f.fields.uintOr(4, 0)) * time.Millisecond; idle > 0 {
		c.heartbeat = min(c.heartbeat, idle/2)
	}
	open, _ := appendFrame(nil, frameAMQP, 0, codeOpen, List{
		c.srv.cfg.Namespace, nil, uint32(ourMaxFrameSize), uint16(math.MaxUint16),
		uint32(c.srv.cfg.IdleTimeout / time.Millisecond),
	}, nil)
	_, err = c.nc.Write(open)
	return err
}

func (c *conn) dispatch(f *frame) error {
	if c.closed {
		return net.ErrClosed
	}
	switch f.code {
	case codeBegin:
		return c.onBegin(f)
	case codeClose:
		c.closed = true
		for _, s := range c.sessions {
			for _, l := range s.links {
				c.markDetached(l)
			}
		}
		c.sendFrame(0, codeClose, List{}, nil)
		c.closeAfterFlush()
		return errClientClosed
	case codeOpen:
		return errors.New("second open")
	}
	s := c.sessions[f.channel]
	if s == nil {
		return fmt.Errorf("performative 0x%02x on unknown channel %d", f.code, f.channel)
	}
	switch f.code {
	case codeAttach:
		return c.onAttach(s, f)
	case codeFlow:
		return c.onFlow(s, f)
	case codeTransfer:
		return c.onTransfer(s, f)
	case codeDisposition:
		return nil // the fake only sends pre-settled deliveries
	case codeDetach:
		return c.onDetach(s, f)
	case codeEnd:
		for _, l := range s.links {
			c.markDetached(l)
		}
		delete(c.sessions, s.remoteCh)
		delete(c.usedChannels, s.localCh)
		c.sendFrame(s.localCh, codeEnd, List{}, nil)
		return nil
	}
	return fmt.Errorf("unexpected performative 0x%02x", f.code)
}

func (c *conn) onBegin(f *frame) error {
	if _, dup := c.sessions[f.channel]; dup {
		return fmt.Errorf("begin on channel %d already in use", f.channel)
	}
	s := &session{
		remoteCh:       f.channel,
		nextIncomingID: uint32(f.fields.uintOr(1, 0)),
		peerWindow:     uint32(f.fields.uintOr(2, 0)),
		links:          map[uint32]*link{},
		usedHandles:    map[uint32]bool{},
	}
	for c.usedChannels[s.localCh] {
		s.localCh++
	}
	s.peerNextIncoming = s.nextOutgoingID
	c.usedChannels[s.localCh] = true
	c.sessions[f.channel] = s
	c.sendFrame(s.localCh, codeBegin, List{f.channel, s.nextOutgoingID, uint32(sessionWindow), uint32(math.MaxUint32), uint32(math.MaxUint16)}, nil)
	return nil
}

// terminus is the address and filter of a source or target.
type terminus struct {
	address string
	filter  *Map
}

func parseTerminus(v any) terminus {
	_, l, ok := describedCode(v)
	if !ok {
		return terminus{}
	}
	f := fields(l)
	t := terminus{address: f.str(0)}
	t.filter, _ = f.get(7).(*Map)
	return t
}

func (c *conn) onAttach(s *session, f *frame) error {
	handle, ok := f.fields.uint(1)
	if !ok {
		return errors.New("attach without handle")
	}
	if _, dup := s.links[uint32(handle)]; dup {
		return fmt.Errorf("attach on handle %d already in use", handle)
	}
	clientReceives := f.fields.boolOr(2, false)
	l := &link{c: c, sess: s, name: f.fields.str(0), remote: uint32(handle), wake: make(chan struct{}, 1),
		maxMsgSize: c.srv.cfg.MaxMessageSize}
	for s.usedHandles[l.local] {
		l.local++
	}
	s.usedHandles[l.local] = true
	s.links[l.remote] = l
	src, tgt := parseTerminus(f.fields.get(5)), parseTerminus(f.fields.get(6))

	reply := List{l.name, l.local, !clientReceives, f.fields.get(3), f.fields.get(4), f.fields.get(5), f.fields.get(6),
		nil, nil, nil, c.srv.cfg.MaxMessageSize}
	if clientReceives {
		reply[9] = uint32(0) // initial-delivery-count
	}
	refuse := func(err *linkError) error {
		reply[5], reply[6] = nil, nil
		c.sendFrame(s.localCh, codeAttach, reply, nil)
		c.sendFrame(s.localCh, codeDetach, List{l.local, true, amqpError(err.condition, err.description)}, nil)
		l.detachSent = true
		l.detached = true
		return nil
	}

	var victims []*link
	if clientReceives {
		switch src.address {
		case "$cbs", "$management":
			l.kind, l.address = kindReplies, tgt.address
		default:
			if err := c.attachConsumer(l, src, f.fields.get(13)); err != nil {
				return refuse(err)
			}
			var err error
			if victims, err = l.part.attachReceiver(l.group, l, l.startFilter(src)); err != nil {
				var le *linkError
				if !errors.As(err, &le) {
					le = &linkError{condition: "amqp:internal-error", description: err.Error()}
				}
				if le.condition != errStolen.condition {
					return refuse(le)
				}
				// Event Hubs attaches a receiver that loses on epoch and detaches it at once; the
				// SDK only maps a detach (not a failed attach) to OwnershipLost.
				c.sendFrame(s.localCh, codeAttach, reply, nil)
				c.sendFrame(s.localCh, codeDetach, List{l.local, true, amqpError(le.condition, le.description)}, nil)
				l.detachSent, l.detached = true, true
				return nil
			}
		}
	} else {
		switch tgt.address {
		case "$cbs":
			l.kind = kindCBSRequests
		case "$management":
			l.kind = kindMgmtRequests
		default:
			if err := c.attachProducer(l, tgt.address); err != nil {
				return refuse(err)
			}
		}
	}
	c.sendFrame(s.localCh, codeAttach, reply, nil)
	if !clientReceives {
		l.rcvCredit = linkCreditGrant
		c.sendFlow(l)
	}
	if l.kind == kindConsumer {
		go c.pump(l)
	}
	for _, v := range victims {
		v := v
		desc := fmt.Sprintf("new receiver %q with epoch %d took over partition %s; receiver %q is disconnected",
			l.receiverName, *l.epoch, l.part.id, v.receiverName)
		c.after = append(c.after, func() { v.c.detachFromServer(v, errStolen.condition, desc) })
	}
	return nil
}

func (l *link) startFilter(src terminus) *startFilter {
	if src.filter == nil {
		return nil
	}
	for _, e := range src.filter.Entries {
		if d, ok := e.Value.(Described); ok {
			if expr, ok := d.Value.(string); ok {
				if f, err := parseSelector(expr); err == nil {
					return &f
				}
			}
		}
	}
	return nil
}

// authorised checks that a $cbs token covered the entity, when the fake verifies tokens.
func (c *conn) authorised(path string) *linkError {
	if c.srv.cfg.SASKey == "" || c.claims[strings.ToLower(path)] {
		return nil
	}
	return &linkError{condition: "amqp:unauthorized-access", description: "no valid $cbs token for " + path}
}

func (c *conn) attachProducer(l *link, address string) *linkError {
	parts := strings.Split(address, "/")
	h := c.srv.hub(parts[0])
	if h == nil {
		return &linkError{condition: "amqp:not-found", description: fmt.Sprintf("event hub %q not found", parts[0])}
	}
	l.kind, l.hub = kindProducer, h
	switch {
	case len(parts) == 1:
	case len(parts) == 3 && strings.EqualFold(parts[1], "Partitions"):
		if l.part = h.partition(parts[2]); l.part == nil {
			return &linkError{condition: "com.microsoft:argument-out-of-range", description: fmt.Sprintf("partition %q does not exist", parts[2])}
		}
	default:
		return &linkError{condition: "amqp:not-found", description: fmt.Sprintf("unknown entity %q", address)}
	}
	return c.authorised(address)
}

func (c *conn) attachConsumer(l *link, src terminus, props any) *linkError {
	parts := strings.Split(src.address, "/")
	if len(parts) != 5 || !strings.EqualFold(parts[1], "ConsumerGroups") || !strings.EqualFold(parts[3], "Partitions") {
		return &linkError{condition: "amqp:not-found", description: fmt.Sprintf("unknown entity %q", src.address)}
	}
	h := c.srv.hub(parts[0])
	if h == nil {
		return &linkError{condition: "amqp:not-found", description: fmt.Sprintf("event hub %q not found", parts[0])}
	}
	l.group = strings.ToLower(parts[2])
	if !h.groups[l.group] {
		return &linkError{condition: "amqp:not-found", description: fmt.Sprintf("consumer group %q not found", parts[2])}
	}
	if l.part = h.partition(parts[4]); l.part == nil {
		return &linkError{condition: "com.microsoft:argument-out-of-range", description: fmt.Sprintf("partition %q does not exist", parts[4])}
	}
	l.kind, l.hub = kindConsumer, h
	if m, ok := props.(*Map); ok {
		if v, ok := m.Get("com.microsoft:epoch"); ok {
			if e, ok := toInt64(v); ok {
				l.epoch = &e
			}
		}
		if v, ok := m.Get("com.microsoft:receiver-name"); ok {
			l.receiverName, _ = stringish(v)
		}
	}
	if l.receiverName == "" {
		l.receiverName = l.name
	}
	if err := c.authorised(src.address); err != nil {
		return err
	}
	return nil
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	return 0, false
}

// sendFlow sends the session state plus l's link state.
func (c *conn) sendFlow(l *link) {
	s := l.sess
	list := List{s.nextIncomingID, uint32(sessionWindow), s.nextOutgoingID, uint32(math.MaxUint32)}
	if l.kind == kindConsumer || l.kind == kindReplies {
		list = append(list, l.local, l.deliveryCount, l.credit)
	} else {
		list = append(list, l.local, l.rcvDeliveryCount, l.rcvCredit)
	}
	c.sendFrame(s.localCh, codeFlow, list, nil)
}

func (c *conn) sendSessionFlow(s *session) {
	c.sendFrame(s.localCh, codeFlow, List{s.nextIncomingID, uint32(sessionWindow), s.nextOutgoingID, uint32(math.MaxUint32)}, nil)
}

func (c *conn) onFlow(s *session, f *frame) error {
	nextIncoming, ok := f.fields.uint(0)
	if !ok {
		return errors.New("flow without next-incoming-id")
	}
	s.peerNextIncoming = uint32(nextIncoming)
	s.peerWindow = uint32(f.fields.uintOr(1, 0))
	for _, l := range s.links {
		if l.kind == kindConsumer {
			l.signal()
		}
	}
	handle, ok := f.fields.uint(4)
	if !ok {
		return nil
	}
	l := s.links[uint32(handle)]
	if l == nil || l.detached {
		return nil
	}
	if l.kind == kindConsumer || l.kind == kindReplies {
		// Credit as the receiver sees it, translated to the fake's delivery count (part 2, 2.6.7).
		rcvCount := uint32(f.fields.uintOr(5, uint64(l.deliveryCount)))
		l.credit = rcvCount + uint32(f.fields.uintOr(6, 0)) - l.deliveryCount
		if int32(l.credit) < 0 {
			l.credit = 0
		}
		l.drain = f.fields.boolOr(8, false)
		if l.kind == kindReplies {
			c.flushReplies(l)
		} else {
			l.signal()
		}
	}
	if f.fields.boolOr(9, false) {
		c.sendFlow(l)
	}
	return nil
}

func (c *conn) onTransfer(s *session, f *frame) error {
	s.nextIncomingID++
	if s.receivedSinceFlow++; s.receivedSinceFlow >= sessionWindow/2 {
		s.receivedSinceFlow = 0
		c.sendSessionFlow(s)
	}
	handle, _ := f.fields.uint(0)
	l := s.links[uint32(handle)]
	if l == nil {
		return fmt.Errorf("transfer on unattached handle %d", handle)
	}
	if l.detached {
		return nil // raced with a detach the fake sent
	}
	if l.kind == kindConsumer || l.kind == kindReplies {
		return errors.New("transfer on a link where the client is the receiver")
	}
	if !l.inDelivery {
		id, ok := f.fields.uint(1)
		if !ok {
			return errors.New("first transfer of a delivery without delivery-id")
		}
		l.inDelivery, l.deliveryID = true, uint32(id)
		l.deliveryFormat = uint32(f.fields.uintOr(3, 0))
		l.deliverySettled = f.fields.boolOr(4, false)
		l.deliveryTooBig = false
		l.buf = l.buf[:0]
	}
	if uint64(len(l.buf)+len(f.payload)) > l.maxMsgSize {
		l.deliveryTooBig = true
		l.buf = l.buf[:0]
	} else if !l.deliveryTooBig {
		l.buf = append(l.buf, f.payload...)
	}
	if f.fields.boolOr(5, false) { // more
		return nil
	}
	l.inDelivery = false
	if f.fields.boolOr(9, false) { // aborted
		return nil
	}
	l.rcvDeliveryCount++
	l.rcvCredit--
	var outcome Described
	if l.deliveryTooBig {
		outcome = rejected("amqp:link:message-size-exceeded", fmt.Sprintf("message exceeds %d bytes", l.maxMsgSize))
	} else {
		payload := append([]byte(nil), l.buf...)
		outcome = c.deliver(l, l.deliveryFormat, payload)
	}
	if !l.deliverySettled {
		c.sendFrame(s.localCh, codeDisposition, List{true, l.deliveryID, nil, true, outcome}, nil)
	}
	if l.rcvCredit < linkCreditGrant/2 {
		l.rcvCredit = linkCreditGrant
		c.sendFlow(l)
	}
	return nil
}

var accepted = Described{Descriptor: uint64(codeAccepted), Value: List{}}

func rejected(condition, description string) Described {
	return Described{Descriptor: uint64(codeRejected), Value: List{amqpError(condition, description)}}
}

func (c *conn) deliver(l *link, format uint32, payload []byte) Described {
	switch l.kind {
	case kindCBSRequests, kindMgmtRequests:
		c.handleRPC(l, payload)
		return accepted
	case kindProducer:
		if err := c.srv.produce(l.hub, l.part, format, payload); err != nil {
			var le *linkError
			if errors.As(err, &le) {
				return rejected(le.condition, le.description)
			}
			return rejected("amqp:decode-error", err.Error())
		}
		return accepted
	}
	return rejected("amqp:not-allowed", "unexpected delivery")
}

func (c *conn) onDetach(s *session, f *frame) error {
	handle, _ := f.fields.uint(0)
	l := s.links[uint32(handle)]
	if l == nil {
		return fmt.Errorf("detach of unattached handle %d", handle)
	}
	delete(s.links, l.remote)
	delete(s.usedHandles, l.local)
	if !l.detachSent {
		c.sendFrame(s.localCh, codeDetach, List{l.local, true}, nil)
	}
	c.markDetached(l)
	return nil
}

// markDetached stops all sending on l; the caller holds mu.
func (c *conn) markDetached(l *link) {
	if l.kind == kindConsumer && l.part != nil && !l.detached {
		l.part.detachReceiver(l.group, l)
	}
	l.detached = true
	l.signal()
}

// detachFromServer detaches l with an error (ownership stolen, or a fault hook).
func (c *conn) detachFromServer(l *link, condition, description string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.detached || c.closed {
		return
	}
	c.sendFrame(l.sess.localCh, codeDetach, List{l.local, true, amqpError(condition, description)}, nil)
	l.detachSent = true
	c.markDetached(l)
}

// appendTransfer appends the frames of one pre-settled delivery, split to the client's
// max-frame-size; message-format is only on the first frame (part 2, 2.7.5).
func (c *conn) appendTransfer(buf []byte, l *link, payload []byte, format uint32) []byte {
	s := l.sess
	chunk := int(min(c.peerMaxFrame, ourMaxFrameSize)) - 64
	id := s.nextDeliveryID
	s.nextDeliveryID++
	var tag [8]byte
	binary.BigEndian.PutUint64(tag[:], uint64(id))
	first := true
	for {
		n := min(chunk, len(payload))
		more := n < len(payload)
		var list List
		if first {
			list = List{l.local, id, tag[:], format, true, more}
		} else {
			list = List{l.local, nil, nil, nil, nil, more}
		}
		buf, _ = appendFrame(buf, frameAMQP, s.localCh, codeTransfer, list, payload[:n])
		s.nextOutgoingID++
		payload = payload[n:]
		first = false
		if !more {
			break
		}
	}
	l.deliveryCount++
	l.credit--
	return buf
}

func (c *conn) framesFor(n int) uint32 {
	chunk := int(min(c.peerMaxFrame, ourMaxFrameSize)) - 64
	return uint32(max(1, (n+chunk-1)/chunk))
}

// pump delivers a consumer link's partition events as credit and the session window allow.
// Every send happens under mu after re-checking the link, so nothing follows a detach or end.
func (c *conn) pump(l *link) {
	p := l.part
	for {
		c.mu.Lock()
		if l.detached {
			c.mu.Unlock()
			return
		}
		credit, window, next, drain := l.credit, l.sess.remoteWindow(), l.nextSeq, l.drain
		c.mu.Unlock()

		var events []storedEvent
		var changed <-chan struct{}
		if credit > 0 && window > 0 {
			events, next, changed = p.read(next, int(min(credit, maxPumpBatch)))
		}
		if len(events) == 0 {
			if drain && credit > 0 && changed != nil {
				c.mu.Lock()
				if !l.detached && l.drain {
					l.deliveryCount += l.credit
					l.credit, l.drain = 0, false
					c.sendFlow(l)
				}
				c.mu.Unlock()
				continue
			}
			select {
			case <-changed:
			case <-l.wake:
			case <-c.done:
				return
			}
			continue
		}
		c.mu.Lock()
		var buf []byte
		for _, e := range events {
			if l.detached || l.credit == 0 || l.sess.remoteWindow() < c.framesFor(len(e.encoded)) {
				break
			}
			buf = c.appendTransfer(buf, l, e.encoded, 0)
			next = e.seq + 1
		}
		l.nextSeq = next
		if len(buf) > 0 {
			c.send(buf) // under mu: ordered before any later detach or end
		}
		c.mu.Unlock()
		if len(buf) > 0 {
			continue
		}
		// Nothing fitted (the next event needs more of the session window than the client has
		// opened): wait for its next flow rather than spin.
		select {
		case <-l.wake:
		case <-c.done:
			return
		}
	}
}
