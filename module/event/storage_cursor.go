package event

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// storageCursor is what the registry keeps of a storage input, moved only by the output's
// ACKs: per table container, the oldest hour not yet finished, and the blobs of that hour and
// later with the offset just past their last line published. Blobs of earlier hours were all
// read to their end, so they are not kept: the cursor stays small however long the input runs.
type storageCursor struct {
	// Since is where a container first seen reads from, as set when the cursor was made: ""
	// for its oldest hour, or an RFC 3339 time (start_position latest or a time).
	Since  string        `struct:"since" json:"since"`
	Tables []tableCursor `struct:"tables" json:"tables"`
}

type tableCursor struct {
	Container string       `struct:"container" json:"container"`
	Hour      string       `struct:"hour" json:"hour"` // RFC 3339; blobs of earlier hours are finished
	Blobs     []blobCursor `struct:"blobs" json:"blobs"`
}

type blobCursor struct {
	Name   string `struct:"name" json:"name"`
	Offset int64  `struct:"offset" json:"offset"`
}

// storageCursorTools let `defenderbeat cursor` show a storage input's position and move it: a
// reset forgets it (the input starts again from start_position), --to reads every table
// container again from that hour. Lines read again keep their _id.
var storageCursorTools = inputkit.CursorOf(describeStorageCursor, moveStorageCursor)

func describeStorageCursor(c storageCursor) inputkit.Position {
	var oldest time.Time
	blobs := 0
	for _, t := range c.Tables {
		if h, err := time.Parse(time.RFC3339, t.Hour); err == nil && (oldest.IsZero() || h.Before(oldest)) {
			oldest = h
		}
		blobs += len(t.Blobs)
	}
	p := inputkit.Position{
		At:      oldest,
		Fields:  map[string]any{"since": c.Since, "tables": c.Tables},
		Summary: fmt.Sprintf("%d table container(s), %d blob(s) in progress", len(c.Tables), blobs),
	}
	if !oldest.IsZero() {
		p.Summary += ", oldest unfinished hour " + oldest.UTC().Format(time.RFC3339)
	}
	return p
}

func moveStorageCursor(_ storageCursor, m inputkit.Move) (*storageCursor, error) {
	switch {
	case m.FullExport:
		return nil, inputkit.ErrNoFullExport
	case m.To.IsZero():
		return nil, nil
	case m.To.After(m.Now):
		return nil, fmt.Errorf("--to %s is in the future", m.To.UTC().Format(time.RFC3339))
	}
	// As start_position set to that time: each container is read from the hour holding it.
	return &storageCursor{Since: m.To.UTC().Format(time.RFC3339)}, nil
}

// storageState is the input's position in memory. It mirrors the stored cursor but moves as
// lines are handed to the publisher; every cursor published with a document is taken from it
// under the same lock as the document is published, so a stored cursor never claims a line
// the output has not acknowledged.
type storageState struct {
	mu     sync.Mutex
	since  string
	tables map[string]*tableState
}

type tableState struct {
	low   time.Time // zero until the container's start is known
	blobs map[string]*blobState
	// listed is what the current poll saw of the hours from low on, oldest first.
	listed []listedHour
}

type blobState struct {
	hour   time.Time
	offset int64
}

func newStorageState(c storageCursor) *storageState {
	st := &storageState{since: c.Since, tables: map[string]*tableState{}}
	for _, t := range c.Tables {
		low, err := time.Parse(time.RFC3339, t.Hour)
		if err != nil {
			continue // unreadable: the container starts afresh rather than somewhere wrong
		}
		ts := &tableState{low: low.UTC(), blobs: map[string]*blobState{}}
		for _, b := range t.Blobs {
			hour, ok := hourOfBlob(b.Name)
			if !ok || b.Offset < 0 {
				continue
			}
			ts.blobs[b.Name] = &blobState{hour: hour, offset: b.Offset}
		}
		st.tables[t.Container] = ts
	}
	return st
}

// cursor renders the state as the registry keeps it; the caller holds mu.
func (st *storageState) cursor() storageCursor {
	c := storageCursor{Since: st.since, Tables: make([]tableCursor, 0, len(st.tables))}
	for name, t := range st.tables {
		if t.low.IsZero() {
			continue
		}
		tc := tableCursor{Container: name, Hour: t.low.Format(time.RFC3339), Blobs: make([]blobCursor, 0, len(t.blobs))}
		for bn, b := range t.blobs {
			tc.Blobs = append(tc.Blobs, blobCursor{Name: bn, Offset: b.offset})
		}
		slices.SortFunc(tc.Blobs, func(a, b blobCursor) int { return strings.Compare(a.Name, b.Name) })
		c.Tables = append(c.Tables, tc)
	}
	slices.SortFunc(c.Tables, func(a, b tableCursor) int { return strings.Compare(a.Container, b.Container) })
	return c
}

// table returns a container's state, made when first asked for.
func (st *storageState) table(container string) *tableState {
	st.mu.Lock()
	defer st.mu.Unlock()
	t := st.tables[container]
	if t == nil {
		t = &tableState{blobs: map[string]*blobState{}}
		st.tables[container] = t
	}
	return t
}

// blobCount is how many blobs the cursor keeps.
func (st *storageState) blobCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, t := range st.tables {
		n += len(t.blobs)
	}
	return n
}
