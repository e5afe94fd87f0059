package event

import (
	"math/rand/v2"
	"testing"
)

func pos(seq int64) position { return position{sequence: seq, offset: string(rune('a' + seq))} }

// publishAll registers a message with n documents and returns their Private values.
func publishAll(p *partitionACKs, seq int64, n int) []any {
	m := p.begin(pos(seq))
	privates := make([]any, n)
	for i := range privates {
		p.published(m)
		privates[i] = m
	}
	p.seal(m)
	return privates
}

func takeSeq(t *testing.T, p *partitionACKs) (int64, bool) {
	t.Helper()
	got, ok := p.take()
	return got.sequence, ok
}

func TestCheckpointMovesOnlyPastCompleteMessages(t *testing.T) {
	p := &partitionACKs{}
	a := publishAll(p, 0, 2)
	b := publishAll(p, 1, 1)
	publishAll(p, 2, 0) // a message whose records all failed to map still completes
	d := publishAll(p, 3, 3)

	if _, ok := takeSeq(t, p); ok {
		t.Fatal("moved before any acknowledgement")
	}
	p.acked(a[:1])
	if _, ok := takeSeq(t, p); ok {
		t.Fatal("moved past a message with an unacknowledged document")
	}
	p.acked(a[1:])
	if seq, ok := takeSeq(t, p); !ok || seq != 0 {
		t.Fatalf("after message 0: %d %v", seq, ok)
	}
	if _, ok := takeSeq(t, p); ok {
		t.Fatal("take reported the same position twice")
	}
	// Message 3 complete before message 1: the checkpoint waits for 1.
	p.acked(d)
	if _, ok := takeSeq(t, p); ok {
		t.Fatal("moved past message 1, which is not acknowledged")
	}
	p.acked(b)
	if seq, ok := takeSeq(t, p); !ok || seq != 3 {
		t.Fatalf("after message 1: %d %v, want 3 (2 had no documents, 3 was complete)", seq, ok)
	}
	if p.inFlight() != 0 {
		t.Fatalf("%d messages still pending", p.inFlight())
	}
}

func TestUnsealedMessageIsNotComplete(t *testing.T) {
	p := &partitionACKs{}
	m := p.begin(pos(0))
	p.published(m)
	p.acked([]any{m}) // the output is faster than the processing of the rest of the message
	if _, ok := p.take(); ok {
		t.Fatal("a message still being processed counted as complete")
	}
	p.published(m)
	p.seal(m)
	if _, ok := p.take(); ok {
		t.Fatal("complete with one of two documents acknowledged")
	}
	p.acked([]any{m, nil}) // nil: a Private of no message, ignored
	if seq, ok := takeSeq(t, p); !ok || seq != 0 {
		t.Fatalf("%d %v", seq, ok)
	}
}

func TestRetryOffersThePositionAgain(t *testing.T) {
	p := &partitionACKs{}
	p.acked(publishAll(p, 7, 1))
	if seq, ok := takeSeq(t, p); !ok || seq != 7 {
		t.Fatal(seq, ok)
	}
	p.retry()
	if seq, ok := takeSeq(t, p); !ok || seq != 7 {
		t.Fatalf("after a failed write: %d %v", seq, ok)
	}
}

// Whatever order acknowledgements arrive in, the checkpoint is always the last message of
// the complete prefix: never beyond an unacknowledged document, never behind what is done.
func TestCheckpointNeverPassesAnUnacknowledgedDocument(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 1))
		p := &partitionACKs{}
		const messages = 40
		docsOf := make([]int, messages)
		var pending []any
		for i := range messages {
			docsOf[i] = rnd.IntN(4)
			pending = append(pending, publishAll(p, int64(i), docsOf[i])...)
		}
		ackedOf := make([]int, messages)
		rnd.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		last := int64(-1)
		for len(pending) > 0 {
			n := 1 + rnd.IntN(min(5, len(pending)))
			batch := pending[:n]
			pending = pending[n:]
			for _, priv := range batch {
				ackedOf[priv.(*message).pos.sequence]++
			}
			p.acked(batch)
			want := int64(-1)
			for i := range messages {
				if ackedOf[i] != docsOf[i] {
					break
				}
				want = int64(i)
			}
			if seq, ok := takeSeq(t, p); ok {
				last = seq
			}
			if last != want {
				t.Fatalf("seed %d: checkpoint at %d, the complete prefix ends at %d", seed, last, want)
			}
		}
		if last != messages-1 {
			t.Fatalf("seed %d: ended at %d", seed, last)
		}
	}
}
