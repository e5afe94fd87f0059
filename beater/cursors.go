package beater

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/cmd/instance/locks"
	"github.com/elastic/beats/v7/libbeat/statestore"
	"github.com/elastic/beats/v7/libbeat/statestore/backend/memlog"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/paths"

	"github.com/defenderbeat/defenderbeat/config"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

// ErrBeatRunning is returned while a beat holds path.data: its registry is in its memory, and
// what it writes next would undo (or be undone by) a change made beside it.
var ErrBeatRunning = errors.New("a defenderbeat is running on this path.data; stop it first (a running beat shows its inputs' positions on its HTTP endpoint, /health)")

// Cursors is the registry of a stopped beat, opened the way the beat opens it (libbeat's
// memlog store), with path.data's lock held so that no beat starts on it meanwhile.
type Cursors struct {
	Dir    string // the registry directory
	lock   *locks.Locker
	reg    *statestore.Registry
	store  *statestore.Store
	inputs []*conf.C // the configured inputs, to say where positions kept elsewhere are
}

// OpenCursors takes path.data's lock, as the beat does at start, and opens the registry. It
// refuses while a beat holds the lock. Without a registry, it creates one only to write.
func OpenCursors(info beat.Info, beatPaths *paths.Path, cfg config.Config, write bool) (*Cursors, error) {
	dir := beatPaths.Resolve(paths.Data, cfg.Registry.Path)
	c := &Cursors{Dir: dir, inputs: cfg.Inputs}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) && !write {
		return c, nil
	}
	// One try, no waiting: a beat that holds the lock holds it for as long as it runs.
	c.lock = locks.NewWithRetry(info, beatPaths, 1, 0)
	if err := c.lock.Lock(); err != nil {
		c.lock = nil
		if errors.Is(err, locks.ErrAlreadyLocked) {
			return nil, fmt.Errorf("%w (lock %s)", ErrBeatRunning, beatPaths.Resolve(paths.Data, info.Beat+".lock"))
		}
		return nil, err
	}
	backend, err := memlog.New(info.Logger, memlog.Settings{Root: dir, FileMode: cfg.Registry.Permissions})
	if err == nil {
		c.reg = statestore.NewRegistry(backend)
		c.store, err = c.reg.Get(info.Beat)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("opening the registry %s: %w", dir, err)
	}
	return c, nil
}

// Close writes nothing more and releases path.data.
func (c *Cursors) Close() {
	if c.store != nil {
		_ = c.store.Close()
	}
	if c.reg != nil {
		c.reg.Close()
	}
	if c.lock != nil {
		_ = c.lock.Unlock()
	}
}

// CursorEntry is one stored position.
type CursorEntry struct {
	Key       string         `json:"key,omitempty"`
	InputType string         `json:"input_type"`
	ID        string         `json:"id"`
	Tenant    string         `json:"tenant,omitempty"`
	StoredIn  string         `json:"stored_in"` // "registry", or where else the input keeps it
	Position  map[string]any `json:"position,omitempty"`
	Summary   string         `json:"summary"`
	At        *time.Time     `json:"position_time,omitempty"`
	Moved     *time.Time     `json:"last_moved,omitempty"`
	Lag       *float64       `json:"lag_seconds,omitempty"`
}

// List describes every stored position, ordered by input id, and, for the configured inputs
// that have none in the registry, where they keep theirs or that they have none yet.
func (c *Cursors) List(now time.Time) ([]CursorEntry, error) {
	var out []CursorEntry
	err := c.each(func(key, typ, id, source string, tools *inputkit.CursorTools, dec statestore.ValueDecoder) error {
		e := CursorEntry{Key: key, InputType: typ, ID: id, StoredIn: "registry"}
		p, err := tools.Describe(source, dec)
		if err != nil {
			e.Summary = "unreadable: " + err.Error()
			out = append(out, e)
			return nil
		}
		e.Tenant, e.Position, e.Summary = p.Tenant, p.Fields, p.Summary
		if !p.At.IsZero() {
			at, lag := p.At.UTC(), now.Sub(p.At).Seconds()
			e.At, e.Lag = &at, &lag
		}
		if !p.Moved.IsZero() {
			moved := p.Moved.UTC()
			e.Moved = &moved
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	stored := map[string]bool{}
	for _, e := range out {
		stored[e.ID] = true
	}
	for _, in := range c.inputs {
		typ, _ := in.String("type", -1)
		id, _ := in.String("id", -1)
		ds, ok := datasetOf(typ)
		if !ok || ds.Cursor == nil || !in.Enabled() || stored[id] {
			continue
		}
		if ds.Cursor.Elsewhere != nil {
			if where, ok := ds.Cursor.Elsewhere(in); ok {
				out = append(out, CursorEntry{InputType: typ, ID: id, StoredIn: where, Summary: "checkpoints kept in " + where + ", not in path.data"})
				continue
			}
		}
		out = append(out, CursorEntry{InputType: typ, ID: id, StoredIn: "registry", Summary: "nothing stored yet: the first run reads as configured (initial_interval)"})
	}
	slices.SortStableFunc(out, func(a, b CursorEntry) int {
		return strings.Compare(a.ID+"\x00"+a.Key, b.ID+"\x00"+b.Key)
	})
	return out, nil
}

// Moved is one position changed by Move.
type Moved struct {
	Key, InputType string
	Before         string // the position before, in words; "" when nothing was stored
	Removed        bool   // the position was forgotten: the input starts as on its first run
}

// change is a Move's write: value replaces the entry, nil removes it.
type change struct {
	moved Moved
	value any
}

// Move applies m to every position stored for input id, or, for a configured input that has
// stored nothing yet, places its first cursor (`cursor set` before the first run, when moving
// from the integration). Nothing is written unless every position accepts the move.
func (c *Cursors) Move(id string, m inputkit.Move) ([]Moved, error) {
	var changes []change
	err := c.each(func(key, typ, entryID, source string, tools *inputkit.CursorTools, dec statestore.ValueDecoder) error {
		if entryID != id {
			return nil
		}
		before, err := tools.Describe(source, dec)
		if err != nil {
			before.Summary = "an unreadable position"
		}
		value, err := tools.Move(source, dec, m)
		if err != nil {
			return fmt.Errorf("%s input %q: %w", typ, id, err)
		}
		changes = append(changes, change{Moved{Key: key, InputType: typ, Before: before.Summary, Removed: value == nil}, value})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		first, err := c.firstCursor(id, m)
		if err != nil {
			return nil, err
		}
		changes = append(changes, first)
	}
	moved := make([]Moved, 0, len(changes))
	for _, ch := range changes {
		switch {
		case ch.value != nil:
			err = c.store.Set(ch.moved.Key, ch.value)
		case ch.moved.Before != "":
			err = c.store.Remove(ch.moved.Key)
		}
		if err != nil {
			return moved, fmt.Errorf("writing %s: %w", ch.moved.Key, err)
		}
		moved = append(moved, ch.moved)
	}
	return moved, nil
}

// firstCursor is the move of a configured input that has stored nothing yet: a cursor set
// places its first cursor; a reset has nothing to forget.
func (c *Cursors) firstCursor(id string, m inputkit.Move) (change, error) {
	in, ds, err := c.configured(id)
	if err != nil {
		return change{}, err
	}
	if ds.Cursor.Elsewhere != nil {
		if where, ok := ds.Cursor.Elsewhere(in); ok {
			return change{}, fmt.Errorf("input %q keeps its checkpoints in %s, not in path.data: this command cannot move them", id, where)
		}
	}
	if ds.Cursor.Source == nil {
		if !m.To.IsZero() || m.FullExport {
			_, err := ds.Cursor.Move("", nil, m) // the input type's own refusal
			return change{}, fmt.Errorf("%s input %q: %w", ds.InputType, id, err)
		}
		return change{moved: Moved{InputType: ds.InputType, Key: ds.InputType + "::" + id, Removed: true}}, nil
	}
	source, err := ds.Cursor.Source(in)
	if err != nil {
		return change{}, err
	}
	value, err := ds.Cursor.Move(source, nil, m)
	if err != nil {
		return change{}, fmt.Errorf("%s input %q: %w", ds.InputType, id, err)
	}
	return change{Moved{InputType: ds.InputType, Key: ds.InputType + "::" + id + "::" + source, Removed: value == nil}, value}, nil
}

// configured finds the enabled input of this id in the configuration.
func (c *Cursors) configured(id string) (*conf.C, inputkit.Dataset, error) {
	for _, in := range c.inputs {
		if cfgID, _ := in.String("id", -1); cfgID != id || !in.Enabled() {
			continue
		}
		typ, _ := in.String("type", -1)
		if ds, ok := datasetOf(typ); ok && ds.Cursor != nil {
			return in, ds, nil
		}
	}
	return nil, inputkit.Dataset{}, fmt.Errorf("no stored position for input id %q in %s, and no enabled input of that id in the configuration (`defenderbeat cursor list` shows the ids)", id, c.Dir)
}

// each calls fn for every registry entry of a known input type.
func (c *Cursors) each(fn func(key, typ, id, source string, tools *inputkit.CursorTools, dec statestore.ValueDecoder) error) error {
	if c.store == nil {
		return nil
	}
	var keys []string
	if err := c.store.Each(func(key string, _ statestore.ValueDecoder) (bool, error) {
		keys = append(keys, key)
		return true, nil
	}); err != nil {
		return err
	}
	slices.Sort(keys)
	for _, key := range keys {
		parts := strings.SplitN(key, "::", 3)
		if len(parts) != 3 {
			continue
		}
		ds, ok := datasetOf(parts[0])
		if !ok || ds.Cursor == nil {
			continue
		}
		if err := fn(key, parts[0], parts[1], parts[2], ds.Cursor, storedValue{c.store, key}); err != nil {
			return err
		}
	}
	return nil
}

// storedValue decodes one registry entry.
type storedValue struct {
	store *statestore.Store
	key   string
}

func (v storedValue) Decode(to any) error { return v.store.Get(v.key, to) }
