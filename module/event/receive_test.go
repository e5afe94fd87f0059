package event

import "testing"

func TestReceiveSizerKeepsAPartitionWithinItsByteBudget(t *testing.T) {
	s := receiveSizer{budget: 4 << 20, maxCount: 100}
	if got := s.next(); got != 4 {
		t.Fatalf("before any message every message may be 1 MB: want 4, got %d", got)
	}
	s.observe(170<<10, 170<<10, 170<<10)
	if got := s.next(); got != 24 {
		t.Fatalf("170 KB messages in 4 MB: want 24, got %d", got)
	}
	for range 20 {
		s.observe(1 << 10)
	}
	if got := s.next(); got != 100 {
		t.Fatalf("small messages: partition_receive_count caps the batch, want 100, got %d", got)
	}
	for range 20 {
		s.observe(maxMessageBytes)
	}
	if got := s.next(); got != 4 {
		t.Fatalf("after the hub turns to 1 MB messages: want 4, got %d", got)
	}
	huge := receiveSizer{budget: 64 << 10, maxCount: 100}
	huge.observe(maxMessageBytes)
	if got := huge.next(); got != 1 {
		t.Fatalf("a budget below one message still reads one at a time, got %d", got)
	}
	s.observe()
	if got := s.next(); got != 4 {
		t.Fatalf("an empty batch changes nothing, got %d", got)
	}
}
