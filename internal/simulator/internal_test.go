package simulator

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestRequestLogKeepsTheLastRequests(t *testing.T) {
	l := requestLog{limit: 3}
	now := time.Unix(0, 0)
	var seqs []uint64
	for i := 0; i < 5; i++ {
		seqs = append(seqs, l.add(httptest.NewRequest("GET", "/p"+strconv.Itoa(i), nil), now))
	}
	l.setStatus(seqs[0], 500) // evicted: must not land on a newer entry
	l.setStatus(seqs[4], 200)
	got := l.list()
	if len(got) != 3 || got[0].Path != "/p2" || got[2].Path != "/p4" {
		t.Fatalf("kept %+v", got)
	}
	if got[2].Status != 200 || got[0].Status != 0 || got[1].Status != 0 {
		t.Fatalf("statuses %d %d %d", got[0].Status, got[1].Status, got[2].Status)
	}
}

func BenchmarkPopulate(b *testing.B) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < b.N; i++ {
		g := newGenerator(Config{Seed: 1, Alerts: 200, Incidents: 50, Now: func() time.Time { return now }}, "tenant")
		g.populate(newStore())
	}
}
