package inputkit

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/common/transform/typeconv"
	"github.com/elastic/beats/v7/libbeat/statestore"
	conf "github.com/elastic/elastic-agent-libs/config"
)

// Position is where one stored cursor stands, as `defenderbeat cursor list` shows it.
type Position struct {
	Tenant  string
	Summary string         // one line for people
	Fields  map[string]any // the same for scripts
	// At is the instant the input has collected up to; zero when the position is no instant
	// (an Event Hubs sequence number). The lag is now - At.
	At time.Time
	// Moved is when the position last moved.
	Moved time.Time
}

// Move is what `defenderbeat cursor reset|set` asks of a stored cursor.
type Move struct {
	To         time.Time // zero: forget the position, the input starts as on its first run
	FullExport bool      // vulnerability: collect a full export at the next run
	Now        time.Time
}

// Position-moving refusals name what the user asked for.
var (
	ErrNoFullExport = errors.New("--full-export applies to defender-vulnerability inputs only")
	ErrNoTime       = errors.New("this input's position is no instant: --to does not apply; a reset without --to forgets it")
)

// CursorTools let the cursor commands read and move the positions an input type keeps in the
// registry, without running it. Keys are "<input type>::<id>::<source>".
type CursorTools struct {
	// Describe reads one entry; source is the key after "<input type>::<id>::".
	Describe func(source string, dec statestore.ValueDecoder) (Position, error)
	// Move returns the value that replaces the entry, or nil to remove it. A nil dec stands
	// for an input that has stored nothing yet: the value returned, if any, creates the entry.
	Move func(source string, dec statestore.ValueDecoder, m Move) (any, error)
	// Source names the entry a configured input would store (the part after
	// "<input type>::<id>::"), so that `cursor set` can place a cursor before the first run.
	Source func(cfg *conf.C) (string, error)
	// Elsewhere, when the input keeps its positions outside the registry for a configuration,
	// says where (the cursor commands can neither read nor move them).
	Elsewhere func(cfg *conf.C) (where string, ok bool)
}

// registryState mirrors, field for field and untagged, the state filebeat's cursor input
// manager writes per source, so a value written here is read back by the beat like its own.
type registryState struct {
	TTL     time.Duration
	Updated time.Time
	Cursor  any
}

// CursorOf describes the stored cursor type T of a CursorInput: describe renders one cursor,
// move returns the cursor that replaces it (nil to forget it, so the input starts as on its
// first run, from initial_interval). move gets the zero T for an input that stored nothing.
func CursorOf[T any](describe func(T) Position, move func(T, Move) (*T, error)) *CursorTools {
	read := func(dec statestore.ValueDecoder) (registryState, T, error) {
		st := registryState{TTL: cursorLifetime}
		var cur T
		if dec == nil {
			return st, cur, nil
		}
		if err := dec.Decode(&st); err != nil {
			return st, cur, err
		}
		if st.Cursor != nil {
			if err := typeconv.Convert(&cur, st.Cursor); err != nil {
				return st, cur, fmt.Errorf("unreadable cursor: %w", err)
			}
		}
		return st, cur, nil
	}
	return &CursorTools{
		Describe: func(source string, dec statestore.ValueDecoder) (Position, error) {
			st, cur, err := read(dec)
			if err != nil {
				return Position{}, err
			}
			var p Position
			if st.Cursor == nil {
				p = Position{Summary: "no position yet (nothing acknowledged)", Fields: map[string]any{}}
			} else {
				p = describe(cur)
			}
			p.Tenant, _ = strings.CutPrefix(source, "tenant-")
			p.Moved = st.Updated
			return p, nil
		},
		Move: func(_ string, dec statestore.ValueDecoder, m Move) (any, error) {
			st, cur, err := read(dec)
			if err != nil {
				return nil, err
			}
			next, err := move(cur, m)
			if err != nil || next == nil {
				return nil, err
			}
			return registryState{TTL: st.TTL, Updated: m.Now, Cursor: *next}, nil
		},
	}
}

// CheckRetention refuses a time the API no longer serves, or one in the future.
func CheckRetention(to, now time.Time, retention time.Duration, what string) error {
	switch oldest := now.Add(-retention); {
	case to.After(now):
		return fmt.Errorf("--to %s is in the future", to.UTC().Format(time.RFC3339))
	case to.Before(oldest):
		return fmt.Errorf("--to %s is beyond %s: the oldest time accepted now is %s", to.UTC().Format(time.RFC3339), what, oldest.UTC().Format(time.RFC3339))
	}
	return nil
}
