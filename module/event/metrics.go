package event

import (
	"slices"
	"sync"

	"github.com/elastic/elastic-agent-libs/monitoring"
)

// inputMetrics are the event input's counters in its /inputs/ registry (the pipeline adds its
// own published/ACKed counts beside them).
type inputMetrics struct {
	messages          *monitoring.Uint // Event Hubs messages received
	bytes             *monitoring.Uint // their bodies' bytes
	records           *monitoring.Uint // documents published from records
	errorDocuments    *monitoring.Uint // documents published for unusable messages or records
	unknownCategories *monitoring.Uint // documents of tables the processing does not map
	sanitized         *monitoring.Uint // messages repaired by sanitize_options
	checkpointUpdates *monitoring.Uint
	checkpointErrors  *monitoring.Uint
	ownershipLost     *monitoring.Uint // partitions taken over by other instances
	processorRestarts *monitoring.Uint

	mu         sync.Mutex
	partitions map[string]*partitionProgress // owned partitions
}

// partitionProgress is what the lag of one partition is computed from.
type partitionProgress struct {
	firstReceived, checkpointed, lastEnqueued int64
	received, stored, enqueuedKnown           bool
}

// lag is how many events the partition holds after its last checkpoint (or before the first
// message this instance read from it, until one is written); false while unknown.
func (p *partitionProgress) lag() (int64, bool) {
	if !p.enqueuedKnown {
		return 0, false
	}
	base := int64(0)
	switch {
	case p.stored:
		base = p.checkpointed
	case p.received:
		base = p.firstReceived - 1
	default:
		return 0, false
	}
	return max(0, p.lastEnqueued-base), true
}

func newInputMetrics(reg *monitoring.Registry) *inputMetrics {
	if reg == nil {
		reg = monitoring.NewRegistry()
	}
	m := &inputMetrics{
		messages:          monitoring.NewUint(reg, "messages_received_total"),
		bytes:             monitoring.NewUint(reg, "received_bytes_total"),
		records:           monitoring.NewUint(reg, "records_published_total"),
		errorDocuments:    monitoring.NewUint(reg, "error_documents_total"),
		unknownCategories: monitoring.NewUint(reg, "unknown_categories_total"),
		sanitized:         monitoring.NewUint(reg, "messages_sanitized_total"),
		checkpointUpdates: monitoring.NewUint(reg, "checkpoint_updates_total"),
		checkpointErrors:  monitoring.NewUint(reg, "checkpoint_errors_total"),
		ownershipLost:     monitoring.NewUint(reg, "partitions_lost_total"),
		processorRestarts: monitoring.NewUint(reg, "processor_restarts_total"),
		partitions:        map[string]*partitionProgress{},
	}
	monitoring.NewFunc(reg, "partitions_owned", func(_ monitoring.Mode, v monitoring.Visitor) {
		m.mu.Lock()
		defer m.mu.Unlock()
		v.OnInt(int64(len(m.partitions)))
	})
	monitoring.NewFunc(reg, "lag_events", func(_ monitoring.Mode, v monitoring.Visitor) { v.OnInt(m.lagEvents()) })
	return m
}

func (m *inputMetrics) partitionOpened(pid string) {
	m.mu.Lock()
	m.partitions[pid] = &partitionProgress{}
	m.mu.Unlock()
}

func (m *inputMetrics) partitionClosed(pid string) {
	m.mu.Lock()
	delete(m.partitions, pid)
	m.mu.Unlock()
}

// owned lists the partitions this instance reads, sorted.
func (m *inputMetrics) owned() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.partitions))
	for pid := range m.partitions {
		out = append(out, pid)
	}
	slices.Sort(out)
	return out
}

func (m *inputMetrics) with(pid string, fn func(*partitionProgress)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.partitions[pid]; p != nil {
		fn(p)
	}
}

func (m *inputMetrics) receivedOn(pid string, pos position) {
	m.with(pid, func(p *partitionProgress) {
		if !p.received {
			p.firstReceived, p.received = pos.sequence, true
		}
	})
}

func (m *inputMetrics) checkpointed(pid string, pos position) {
	m.checkpointUpdates.Inc()
	m.with(pid, func(p *partitionProgress) {
		p.checkpointed, p.stored = pos.sequence, true
	})
}

func (m *inputMetrics) enqueued(pid string, last int64) {
	m.with(pid, func(p *partitionProgress) { p.lastEnqueued, p.enqueuedKnown = last, true })
}

func (m *inputMetrics) lagEvents() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum int64
	for _, p := range m.partitions {
		if n, ok := p.lag(); ok {
			sum += n
		}
	}
	return sum
}
