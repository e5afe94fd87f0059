package event

import (
	"sync"
	"time"
)

// position is where a message sits in its partition: what a checkpoint records.
type position struct {
	sequence int64
	offset   string
	enqueued time.Time
}

// message is one Event Hubs message on its way through the publisher: its documents carry it
// as their Private value, and it is complete once every one of them is acknowledged.
type message struct {
	pos       position
	published int  // documents handed to the publisher
	acked     int  // of those, acknowledged by the output
	sealed    bool // every document of the message has been handed over
}

func (m *message) complete() bool { return m.sealed && m.acked == m.published }

// partitionACKs decides how far a partition's checkpoint may move: to the newest message
// that is complete and follows only complete messages. The output acknowledges a client's
// documents in order, but the tracker does not rely on it: a message completed out of turn
// waits for the ones before it, so the checkpoint never passes an unacknowledged document.
type partitionACKs struct {
	mu      sync.Mutex
	pending []*message // in the partition's order; the head is the oldest incomplete one
	done    position   // the newest message completed in order
	moved   bool       // done changed since take
}

// begin registers the next message of the partition, before any of its documents is published.
func (p *partitionACKs) begin(pos position) *message {
	m := &message{pos: pos}
	p.mu.Lock()
	p.pending = append(p.pending, m)
	p.mu.Unlock()
	return m
}

// published counts one more document of m handed to the publisher (before Publish is called,
// so its acknowledgement cannot arrive first).
func (p *partitionACKs) published(m *message) {
	p.mu.Lock()
	m.published++
	p.mu.Unlock()
}

// seal marks m as fully handed over; a message without documents completes here.
func (p *partitionACKs) seal(m *message) {
	p.mu.Lock()
	m.sealed = true
	p.advanceLocked()
	p.mu.Unlock()
}

// acked takes the Private values of documents the output acknowledged (or the pipeline
// dropped, which counts the same: the processors chose so) and reports whether the
// checkpoint may move.
func (p *partitionACKs) acked(privates []any) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, priv := range privates {
		if m, ok := priv.(*message); ok {
			m.acked++
		}
	}
	p.advanceLocked()
	return p.moved
}

func (p *partitionACKs) advanceLocked() {
	n := 0
	for n < len(p.pending) && p.pending[n].complete() {
		p.done = p.pending[n].pos
		p.moved = true
		n++
	}
	if n > 0 {
		clear(p.pending[:n])
		p.pending = p.pending[n:]
	}
}

// take returns the position the checkpoint may move to, once per change.
func (p *partitionACKs) take() (position, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.moved {
		return position{}, false
	}
	p.moved = false
	return p.done, true
}

// retry makes the next take return the newest position again, after a failed write.
func (p *partitionACKs) retry() {
	p.mu.Lock()
	p.moved = true
	p.mu.Unlock()
}

// inFlight is how many messages wait for acknowledgements.
func (p *partitionACKs) inFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}
