package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Case is one golden pair: `<name>` (input lines), `<name>-expected.json` and, optionally,
// `<name>-config.yml` (the tags it runs with), named the way the reference integration names its
// pipeline tests.
type Case struct {
	Name     string
	Input    string
	Expected string
	Config   string // empty when the case has no config file
}

// FindCases lists the cases in dir: every `*.log` file, in name order.
func FindCases(dir string) ([]Case, error) {
	inputs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(inputs)
	cases := make([]Case, 0, len(inputs))
	for _, in := range inputs {
		c := Case{Name: filepath.Base(in), Input: in, Expected: in + "-expected.json"}
		if _, err := os.Stat(in + "-config.yml"); err == nil {
			c.Config = in + "-config.yml"
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// Options returns what the case runs with: its config file's tags and generated_time (none
// when it has no config file).
func (c Case) Options() (transform.Options, error) {
	if c.Config == "" {
		return transform.Options{}, nil
	}
	return ReadCaseConfig(c.Config)
}

// Output is what processing one input file produced.
type Output struct {
	// Entries holds, per input line, each document it produced or a nil entry for a line that
	// produced none — the lines the `transform` command prints.
	Entries []any
	// Events are the produced events themselves, for checks beyond the JSON (fields, metadata).
	Events []beat.Event
}

// Process runs every line through fn the way the inputs and the `transform` command do: a
// malformed line becomes the error document (with ErrorTime as its timestamp).
func Process(lines [][]byte, fn transform.Func, opts transform.Options) (Output, error) {
	var out Output
	for i, line := range lines {
		var produced []beat.Event
		err := fn(line, opts, func(ev beat.Event) { produced = append(produced, ev) })
		if err != nil {
			produced = append(produced, transform.ErrorEvent(line, err, opts, ErrorTime))
		}
		if len(produced) == 0 {
			out.Entries = append(out.Entries, nil)
			continue
		}
		for _, ev := range produced {
			doc, err := Document(ev)
			if err != nil {
				return out, fmt.Errorf("line %d: %w", i+1, err)
			}
			out.Entries = append(out.Entries, doc)
			out.Events = append(out.Events, ev)
		}
	}
	return out, nil
}

// process runs a case's input lines with its options; defaults fills what its config leaves
// unset.
func (c Case) process(t testing.TB, fn transform.Func, defaults transform.Options) Output {
	t.Helper()
	opts, err := c.Options()
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if opts.GeneratedTime.IsZero() {
		opts.GeneratedTime = defaults.GeneratedTime
	}
	lines, err := ReadLines(c.Input)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	out, err := Process(lines, fn, opts)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	return out
}

// pinIDs adds each document's @metadata._id to its entry, so that an expected file also fixes
// the ids that make re-sent documents harmless.
func (o Output) pinIDs() {
	docs := 0
	for _, entry := range o.Entries {
		doc, ok := entry.(map[string]any)
		if !ok {
			continue
		}
		doc["@metadata"] = map[string]any{"_id": o.Events[docs].Meta["_id"]}
		docs++
	}
}

// Check runs a case and compares its output with the expected file; with update it rewrites the
// expected file instead. It returns the produced events.
func Check(t testing.TB, c Case, fn transform.Func, opts Options, update bool) []beat.Event {
	t.Helper()
	out := c.process(t, fn, opts.Defaults)
	if opts.PinIDs {
		out.pinIDs()
	}
	if update {
		if err := WriteExpected(c.Expected, out.Entries); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		return out.Events
	}
	want, err := ReadExpected(c.Expected)
	if err != nil {
		t.Fatalf("%s: %v (go test -update rewrites our own expected files)", c.Name, err)
	}
	if len(want) != len(out.Entries) {
		t.Errorf("%s: want %d entries, got %d", c.Name, len(want), len(out.Entries))
	}
	for i := 0; i < len(want) && i < len(out.Entries); i++ {
		if diffs := Compare(want[i], out.Entries[i], opts.forEntry(i+1)); len(diffs) > 0 {
			t.Errorf("%s entry %d:\n  %s", c.Name, i+1, strings.Join(diffs, "\n  "))
		}
	}
	return out.Events
}

// CheckDeviationsNeeded fails for every deviation that hides no difference, so a deviation list
// shrinks when the mapping or the pair changes instead of silently masking future regressions.
func CheckDeviationsNeeded(t testing.TB, c Case, fn transform.Func, defaults transform.Options, deviations []Deviation) {
	t.Helper()
	if len(deviations) == 0 {
		return
	}
	out := c.process(t, fn, defaults)
	want, err := ReadExpected(c.Expected)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	for i, d := range deviations {
		others := Options{Deviations: append(append([]Deviation(nil), deviations[:i]...), deviations[i+1:]...)}
		hidden := false
		for j := 0; j < len(want) && j < len(out.Entries); j++ {
			if !d.appliesTo(j + 1) {
				continue
			}
			if len(Compare(want[j], out.Entries[j], others.forEntry(j+1))) > 0 {
				hidden = true
				break
			}
		}
		if !hidden {
			t.Errorf("%s: deviation %q %v (%s) hides no difference; remove it", c.Name, d.Path, d.Entries, d.Reason)
		}
	}
}
