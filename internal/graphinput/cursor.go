package graphinput

import (
	"fmt"
	"slices"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// graphTimeLayout is Graph's own rendering (7 fractional digits): filtering with the exact value a
// record carried keeps records that differ only in the last digits apart.
const graphTimeLayout = "2006-01-02T15:04:05.0000000Z"

// Cursor is what the registry keeps per input: the lastUpdateDateTime of the newest ACKed record,
// as Graph wrote it, and the ids ACKed at exactly that time. Records sharing that timestamp
// across a page boundary or a restart are then neither lost (we query `ge`) nor sent twice (we
// skip the ids).
//
// Exhausted marks an instant shared by more records than Graph lets a client page through: the
// ones that could be read were, the others were counted as a gap, and the input asks for what
// comes after that instant (`gt`) instead of for it (`ge`).
//
// Filter is the server-side filter the position was reached with: a position says nothing about
// records another filter would have returned, so a changed filter reads back (see run).
type Cursor struct {
	LastUpdate string   `struct:"last_update" json:"last_update"`
	IDs        []string `struct:"ids" json:"ids"`
	Exhausted  bool     `struct:"exhausted" json:"exhausted"`
	Filter     string   `struct:"filter" json:"filter,omitempty"`
}

// position is the cursor with its time parsed, as the poll loop advances it.
type position struct {
	ts        time.Time
	raw       string
	ids       []string
	exhausted bool
	filter    string
}

func positionOf(c Cursor) (position, bool) {
	if c.LastUpdate == "" {
		return position{}, false
	}
	ts, err := time.Parse(time.RFC3339Nano, c.LastUpdate)
	if err != nil {
		return position{}, false
	}
	return position{ts: ts, raw: c.LastUpdate, ids: slices.Clone(c.IDs), exhausted: c.Exhausted, filter: c.Filter}, true
}

func (p position) cursor() Cursor {
	return Cursor{LastUpdate: p.raw, IDs: slices.Clone(p.ids), Exhausted: p.exhausted, Filter: p.filter}
}

// seen reports whether a record was already published at the cursor's timestamp, or belongs to
// an instant given up on.
func (p position) seen(id string, ts time.Time) bool {
	return ts.Equal(p.ts) && (p.exhausted || slices.Contains(p.ids, id))
}

// exhaust gives up on the rest of the cursor's instant: only later records are read from now on.
func (p *position) exhaust() {
	p.exhausted, p.ids = true, nil
}

// advance moves the position to a record that is not older than it.
func (p *position) advance(id string, raw string, ts time.Time) {
	switch {
	case p.raw == "" || ts.After(p.ts):
		p.ts, p.raw, p.ids, p.exhausted = ts, raw, []string{id}, false
	case ts.Equal(p.ts) && !p.exhausted:
		if !slices.Contains(p.ids, id) {
			p.ids = append(p.ids, id)
		}
	}
}

// movedFrom reports whether the position went past where it was: a record was published or an
// instant given up on.
func (p position) movedFrom(before position) bool {
	return p.raw != before.raw || len(p.ids) != len(before.ids) || p.exhausted != before.exhausted
}

// Retention is how far back Graph serves alerts and incidents: Microsoft Defender XDR keeps
// them for 180 days by default. A cursor moved further back would ask for what is gone.
const Retention = 180 * 24 * time.Hour

// cursorTools let `defenderbeat cursor` show and move a Graph cursor. Moving it to a time makes
// the input read every record updated since then again; their documents keep their _id.
var cursorTools = inputkit.CursorOf(describeCursor, moveCursor)

func describeCursor(c Cursor) inputkit.Position {
	p := inputkit.Position{
		Fields:  map[string]any{"last_update": c.LastUpdate, "ids_at_last_update": c.IDs, "exhausted": c.Exhausted},
		Summary: fmt.Sprintf("lastUpdateDateTime %s, %d id(s) at it", c.LastUpdate, len(c.IDs)),
	}
	if c.Exhausted {
		p.Summary = fmt.Sprintf("lastUpdateDateTime %s, the rest of that instant given up on", c.LastUpdate)
	}
	if pos, ok := positionOf(c); ok {
		p.At = pos.ts
	}
	return p
}

func moveCursor(_ Cursor, m inputkit.Move) (*Cursor, error) {
	switch {
	case m.FullExport:
		return nil, inputkit.ErrNoFullExport
	case m.To.IsZero():
		return nil, nil
	}
	if err := inputkit.CheckRetention(m.To, m.Now, Retention, "Microsoft Defender XDR's 180-day retention of alerts and incidents"); err != nil {
		return nil, err
	}
	return &Cursor{LastUpdate: m.To.UTC().Format(graphTimeLayout)}, nil
}
