package eventhubfake

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-amqp"
)

// Annotation keys Event Hubs stamps on every stored event (read by the SDK's event_data.go).
const (
	annSequenceNumber = "x-opt-sequence-number"
	annOffset         = "x-opt-offset"
	annEnqueuedTime   = "x-opt-enqueued-time"
	annPartitionKey   = "x-opt-partition-key"

	// batchMessageFormat marks a transfer whose data sections are each a whole encoded message.
	batchMessageFormat = 0x80013700
	// maxReceiversPerGroup is Event Hubs' limit of non-epoch receivers per partition and group.
	maxReceiversPerGroup = 5
)

// Record is one stored event as a test sees it.
type Record struct {
	SequenceNumber int64
	Offset         string
	EnqueuedTime   time.Time
	PartitionKey   string
	Body           []byte
	Properties     map[string]any
}

// storedEvent keeps the delivery-ready encoding, so delivering never re-encodes.
type storedEvent struct {
	seq      int64
	offset   int64
	enqueued time.Time
	encoded  []byte
}

type hub struct {
	name       string
	created    time.Time
	partitions []*partition
	groups     map[string]bool // lower-cased: Event Hubs names are case-insensitive

	mu         sync.Mutex
	roundRobin int
}

type partition struct {
	hubName   string
	id        string
	maxEvents int
	maxBytes  int64

	mu         sync.Mutex
	events     []storedEvent // retained window, oldest first
	beginSeq   int64         // sequence number of events[0] (== nextSeq when empty)
	nextSeq    int64
	nextOffset int64
	bytes      int64
	lastTime   time.Time
	paused     bool
	changed    chan struct{} // closed and replaced on every append or unpause
	// receivers holds the attached consumer links per lower-cased consumer group.
	receivers map[string][]*link
}

func newHub(cfg HubConfig, maxEvents int, maxBytes int64) *hub {
	h := &hub{name: cfg.Name, created: time.Now().UTC().Truncate(time.Millisecond), groups: map[string]bool{"$default": true}}
	for _, g := range cfg.ConsumerGroups {
		h.groups[strings.ToLower(g)] = true
	}
	for i := 0; i < cfg.Partitions; i++ {
		h.partitions = append(h.partitions, &partition{
			hubName: cfg.Name, id: strconv.Itoa(i), maxEvents: maxEvents, maxBytes: maxBytes,
			changed: make(chan struct{}), receivers: map[string][]*link{},
		})
	}
	return h
}

func (h *hub) partition(id string) *partition {
	for _, p := range h.partitions {
		if p.id == id {
			return p
		}
	}
	return nil
}

func (h *hub) partitionIDs() []string {
	ids := make([]string, len(h.partitions))
	for i, p := range h.partitions {
		ids[i] = p.id
	}
	return ids
}

// route picks the partition for a send to the hub itself: by key hash when a key is given
// (so one key always lands on one partition), round robin otherwise.
func (h *hub) route(key string) *partition {
	if key != "" {
		f := fnv.New32a()
		_, _ = f.Write([]byte(key))
		return h.partitions[int(f.Sum32()%uint32(len(h.partitions)))]
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.partitions[h.roundRobin%len(h.partitions)]
	h.roundRobin++
	return p
}

// appendMessages stores messages atomically as consecutive events, stamping the Event Hubs
// annotations, then trims the retained window.
func (p *partition) appendMessages(msgs []*amqp.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, m := range msgs {
		if m.Annotations == nil {
			m.Annotations = amqp.Annotations{}
		}
		m.Annotations[annSequenceNumber] = p.nextSeq
		m.Annotations[annOffset] = strconv.FormatInt(p.nextOffset, 10)
		m.Annotations[annEnqueuedTime] = now
		enc, err := m.MarshalBinary()
		if err != nil {
			return fmt.Errorf("encoding stored event: %w", err)
		}
		p.events = append(p.events, storedEvent{seq: p.nextSeq, offset: p.nextOffset, enqueued: now, encoded: enc})
		p.nextSeq++
		p.nextOffset += int64(len(enc))
		p.bytes += int64(len(enc))
		p.lastTime = now
	}
	p.trim()
	close(p.changed)
	p.changed = make(chan struct{})
	return nil
}

// trim drops the oldest events beyond the retention limits (always keeping the newest one).
func (p *partition) trim() {
	drop := 0
	for len(p.events)-drop > 1 && (len(p.events)-drop > p.maxEvents || p.bytes > p.maxBytes) {
		p.bytes -= int64(len(p.events[drop].encoded))
		drop++
	}
	if drop == 0 {
		p.beginSeq = p.nextSeq - int64(len(p.events))
		return
	}
	clear(p.events[:drop])
	p.events = p.events[drop:]
	// Re-slicing alone would pin the dropped prefix's backing array forever.
	if cap(p.events) > 2*len(p.events)+64 {
		p.events = append([]storedEvent(nil), p.events...)
	}
	p.beginSeq = p.nextSeq - int64(len(p.events))
}

// read returns up to max events from sequence number seq on (or from the oldest retained one),
// or, when there are none (or the partition is paused), a channel closed on the next change.
func (p *partition) read(seq int64, max int) ([]storedEvent, int64, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq < p.beginSeq {
		seq = p.beginSeq
	}
	if p.paused || seq >= p.nextSeq {
		return nil, seq, p.changed
	}
	i := int(seq - p.beginSeq)
	n := min(max, len(p.events)-i)
	return append([]storedEvent(nil), p.events[i:i+n]...), seq, nil
}

func (p *partition) setPaused(paused bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = paused
	close(p.changed)
	p.changed = make(chan struct{})
}

// properties answers $management READ for this partition.
func (p *partition) properties() map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	lastOffset := int64(-1)
	if n := len(p.events); n > 0 {
		lastOffset = p.events[n-1].offset
	}
	last := p.lastTime
	if last.IsZero() {
		last = time.Unix(0, 0).UTC()
	}
	return map[string]any{
		"name":                          p.hubName,
		"partition":                     p.id,
		"begin_sequence_number":         p.beginSeq,
		"last_enqueued_sequence_number": p.nextSeq - 1,
		"last_enqueued_offset":          strconv.FormatInt(lastOffset, 10),
		"last_enqueued_time_utc":        last,
		"is_partition_empty":            len(p.events) == 0,
	}
}

func (p *partition) records() []Record {
	p.mu.Lock()
	events := append([]storedEvent(nil), p.events...)
	p.mu.Unlock()
	out := make([]Record, 0, len(events))
	for _, e := range events {
		var m amqp.Message
		if err := m.UnmarshalBinary(e.encoded); err != nil {
			continue // cannot happen: the fake encoded it
		}
		r := Record{SequenceNumber: e.seq, Offset: strconv.FormatInt(e.offset, 10), EnqueuedTime: e.enqueued, Properties: m.ApplicationProperties}
		if k, ok := m.Annotations[annPartitionKey].(string); ok {
			r.PartitionKey = k
		}
		for _, d := range m.Data {
			r.Body = append(r.Body, d...)
		}
		out = append(out, r)
	}
	return out
}

// startFilter is a parsed Event Hubs selector: amqp.annotation.<field> >[=] '<value>'.
type startFilter struct {
	field     string
	inclusive bool
	value     string
}

var selectorRE = regexp.MustCompile(`^\s*amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>)\s*'([^']*)'\s*$`)

func parseSelector(expr string) (startFilter, error) {
	m := selectorRE.FindStringSubmatch(expr)
	if m == nil {
		return startFilter{}, fmt.Errorf("unsupported selector %q", expr)
	}
	return startFilter{field: m[1], inclusive: m[2] == ">=", value: m[3]}, nil
}

// startSeq resolves a filter to the first sequence number to deliver; the caller holds p.mu.
func (p *partition) startSeq(f *startFilter) (int64, error) {
	if f == nil {
		return p.beginSeq, nil
	}
	// first returns the first retained event for which after is true (events are ordered).
	first := func(after func(e storedEvent) bool) int64 {
		i := sort.Search(len(p.events), func(i int) bool { return after(p.events[i]) })
		return p.beginSeq + int64(i)
	}
	switch f.field {
	case annOffset:
		switch f.value {
		case "-1":
			return p.beginSeq, nil
		case "@latest":
			return p.nextSeq, nil
		}
		off, err := strconv.ParseInt(f.value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid offset %q", f.value)
		}
		return first(func(e storedEvent) bool { return e.offset > off || (f.inclusive && e.offset == off) }), nil
	case annSequenceNumber:
		seq, err := strconv.ParseInt(f.value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid sequence number %q", f.value)
		}
		if !f.inclusive {
			seq++
		}
		return max(seq, p.beginSeq), nil
	case annEnqueuedTime:
		ms, err := strconv.ParseInt(f.value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid enqueued time %q", f.value)
		}
		return first(func(e storedEvent) bool {
			t := e.enqueued.UnixMilli()
			return t > ms || (f.inclusive && t == ms)
		}), nil
	}
	return 0, errors.New("unsupported filter field")
}

// errStolen and errTooManyReceivers carry the conditions the SDK maps to OwnershipLost and to a
// fatal quota error.
var (
	errStolen           = &linkError{condition: "amqp:link:stolen"}
	errTooManyReceivers = &linkError{condition: "amqp:resource-limit-exceeded"}
)

type linkError struct {
	condition, description string
}

func (e *linkError) Error() string { return e.condition + ": " + e.description }

// attachReceiver applies owner-level (epoch) rules and registers l. It returns the receivers l
// displaces; the caller detaches them with amqp:link:stolen outside its connection lock.
func (p *partition) attachReceiver(group string, l *link, f *startFilter) ([]*link, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	current := p.receivers[group]
	var victims, kept []*link
	for _, r := range current {
		switch {
		case l.epoch != nil && r.epoch != nil && *r.epoch > *l.epoch:
			return nil, &linkError{condition: errStolen.condition, description: fmt.Sprintf(
				"receiver %q with epoch %d cannot be created: a receiver with higher epoch %d exists", l.receiverName, *l.epoch, *r.epoch)}
		case l.epoch == nil && r.epoch != nil:
			return nil, &linkError{condition: errStolen.condition, description: fmt.Sprintf(
				"receiver %q without epoch cannot be created: a receiver with epoch %d exists", l.receiverName, *r.epoch)}
		case l.epoch != nil:
			victims = append(victims, r)
		default:
			kept = append(kept, r)
		}
	}
	if l.epoch == nil && len(kept) >= maxReceiversPerGroup {
		return nil, &linkError{condition: errTooManyReceivers.condition, description: fmt.Sprintf(
			"at most %d receivers per partition and consumer group", maxReceiversPerGroup)}
	}
	start, err := p.startSeq(f)
	if err != nil {
		return nil, &linkError{condition: "amqp:invalid-field", description: err.Error()}
	}
	l.nextSeq = start
	p.receivers[group] = append(kept, l)
	return victims, nil
}

func (p *partition) detachReceiver(group string, l *link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.receivers[group]
	for i, r := range rs {
		if r == l {
			p.receivers[group] = append(rs[:i:i], rs[i+1:]...)
			return
		}
	}
}
