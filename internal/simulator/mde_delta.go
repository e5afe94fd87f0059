package simulator

import (
	"bufio"
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	deltaMaxAge          = 14 * 24 * time.Hour
	deltaBucket          = 6 * time.Hour
	deltaDefaultPageSize = 50000
	deltaMaxPageSize     = 200000
	deltaContext         = "/api/$metadata#Collection(microsoft.windowsDefenderATP.api.PublicDeltaAssetVulnerabilityDto)"
)

// deltaTick is one Tick's batch of delta rows; the rows themselves are
// generated when served, from (seed, tick, position).
type deltaTick struct {
	number int // ticks since Start
	at     time.Time
	gen    mdeGeneration
	first  int // sequence number of its first row across all ticks
	count  int
}

func (m *mdeState) tick(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gen := m.currentLocked(now)
	n := m.cfg.DeltaChangesPerTick
	ticks := m.deltaTicks
	// Ticks past the API's 14-day reach are forgotten, so that a simulator
	// ticking for weeks stays small. Served pages may still read the old
	// slice: build a new one rather than shifting elements in place.
	if len(ticks) > 0 && now.Sub(ticks[0].at) > deltaMaxAge+deltaBucket {
		keep := sort.Search(len(ticks), func(i int) bool { return now.Sub(ticks[i].at) <= deltaMaxAge+deltaBucket })
		ticks = append([]deltaTick(nil), ticks[keep:]...)
	}
	m.deltaTicks = append(ticks, deltaTick{number: m.tickCount, at: now.UTC(), gen: gen, first: m.deltaTotal, count: n})
	m.tickCount++
	m.deltaTotal += n
}

// deltaRow fills row with delta row pos of tick t: a New CVE on an installed
// software, or a Fixed or Updated row of the export generation of the time.
func (m *mdeState) deltaRow(row *mdeRow, t deltaTick, pos int) {
	h := hash(m.seed, deltaSalt, uint64(t.number), uint64(pos))
	// Rows are visited in a fixed permutation of the export: no row changes
	// twice within a generation's worth of delta rows, so two delta rows never
	// share id, status and eventTimestamp, even when ticks share a time.
	n := uint64(m.rows())
	i := int((m.deltaStart + uint64(t.first+pos)%n*m.deltaStride) % n)
	m.exportRow(row, t.gen, i)
	switch h % 10 {
	case 0, 1, 2, 3:
		// A CVE version no export generation uses: a finding newer than the export.
		perDevice := m.cfg.SoftwarePerDevice * m.cfg.CVEsPerSoftware
		d, k, c := i/perDevice, (i/m.cfg.CVEsPerSoftware)%m.cfg.SoftwarePerDevice, i%m.cfg.CVEsPerSoftware
		m.fill(row, t.gen, d, k, c, 1<<40+uint64(t.first+pos), hash(m.seed, 0x510, uint64(i)))
		row.Status = "New"
		row.FirstSeen = t.at
	case 4, 5, 6:
		row.Status = "Fixed"
	default:
		row.Status = "Updated"
	}
	row.Event = t.at
	row.LastSeen = t.at.Add(-time.Duration(h>>40%3600) * time.Second)
	if row.LastSeen.Before(row.FirstSeen) {
		row.LastSeen = row.FirstSeen
	}
}

func (s *Server) serveDelta(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now().UTC()
	if !s.throttle(w, "delta", deltaLimits, now) {
		return
	}
	q := r.URL.Query()
	rawSince := q.Get("sinceTime")
	if rawSince == "" {
		writeMDEError(w, http.StatusBadRequest, "InvalidRequestBody", "The sinceTime parameter is required.")
		return
	}
	since, err := time.Parse(time.RFC3339Nano, rawSince)
	if err != nil {
		if since, err = time.Parse("2006-01-02T15:04:05", rawSince); err != nil {
			writeMDEError(w, http.StatusBadRequest, "InvalidRequestBody", "sinceTime '"+rawSince+"' is not a valid date-time.")
			return
		}
	}
	if since.Before(now.Add(-deltaMaxAge)) {
		writeMDEError(w, http.StatusBadRequest, "InvalidRequestBody", "sinceTime must be within the last 14 days.")
		return
	}
	pageSize := deltaDefaultPageSize
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > deltaMaxPageSize {
			writeMDEError(w, http.StatusBadRequest, "InvalidRequestBody", "pageSize must be an integer between 1 and 200000.")
			return
		}
		pageSize = n
	}
	// Changes are published per 6-hour bucket: everything from the bucket
	// sinceTime falls in is returned.
	floor := since.UTC().Truncate(deltaBucket)

	m := s.mde
	m.mu.Lock()
	ticks := m.deltaTicks // ticks are only ever appended
	total := m.deltaTotal
	m.mu.Unlock()
	firstTick := sort.Search(len(ticks), func(i int) bool { return !ticks[i].at.Before(floor) })
	startSeq := total // nothing since then yet
	if firstTick < len(ticks) {
		startSeq = ticks[firstTick].first
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		seq, err := decodeDeltaToken(tok)
		if err != nil || seq < startSeq || seq > total {
			writeMDEError(w, http.StatusBadRequest, "InvalidRequestBody", "The $skiptoken is not valid.")
			return
		}
		startSeq = seq
	}
	endSeq := min(total, startSeq+pageSize)
	cutAt := -1 // the sequence number before which a FaultCutPage cuts
	if _, cut := s.faults.take(r, s.tenantID, func(f Fault) bool { return f.Kind == FaultCutPage }); cut {
		cutAt = startSeq + (endSeq-startSeq)/2
	}

	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`{"@odata.context":`)
	writeJSONString(bw, baseURL(r)+deltaContext)
	bw.WriteString(`,"value":[`)
	row := newMDERow()
	var buf []byte
	ti := sort.Search(len(ticks), func(i int) bool { return ticks[i].first+ticks[i].count > startSeq })
	for seq := startSeq; seq < endSeq; seq++ {
		if seq == cutAt {
			// What was written reaches the client; then the connection is cut mid-body.
			_ = bw.Flush()
			_ = http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}
		for ticks[ti].first+ticks[ti].count <= seq {
			ti++
		}
		m.deltaRow(row, ticks[ti], seq-ticks[ti].first)
		if seq > startSeq {
			bw.WriteByte(',')
		}
		buf = row.appendJSON(buf[:0], false)
		bw.Write(buf)
	}
	bw.WriteString("]")
	if endSeq < total {
		next := url.Values{}
		next.Set("sinceTime", rawSince)
		next.Set("pageSize", strconv.Itoa(pageSize))
		next.Set("$skiptoken", encodeDeltaToken(endSeq))
		bw.WriteString(`,"@odata.nextLink":`)
		writeJSONString(bw, baseURL(r)+mdeDeltaPath+"?"+next.Encode())
	}
	bw.WriteString("}")
	_ = bw.Flush()
}

func encodeDeltaToken(seq int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("delta:" + strconv.Itoa(seq)))
}

func decodeDeltaToken(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	s, ok := strings.CutPrefix(string(b), "delta:")
	if !ok {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}
