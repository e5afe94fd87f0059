package golden

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/fieldscheck"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Suite is the set of tests every dataset's processing runs, from its module folder, over one
// testdata layout: testdata/reference/ (the reference integration's pairs, copied verbatim and
// never regenerated), testdata/cases/ (our own cases, regenerated with -update, which also pin
// every document's @metadata._id) and _meta/fields.yml.
type Suite struct {
	Transform transform.Func
	// Deviations lists, per reference pair, the paths where an older pair predates the current
	// integration rules we follow.
	Deviations map[string][]Deviation
	// ReferenceDefaults fill what a reference pair does not record, such as the generatedTime of
	// the export its vulnerability rows came from.
	ReferenceDefaults transform.Options
	// MustReach names fields that only some inputs produce: FieldsDeclared fails unless a golden
	// input reaches each, so that the walk really checks their declarations.
	MustReach []string
}

const (
	referenceDir = "testdata/reference"
	casesDir     = "testdata/cases"
)

// ReferencePairs compares every reference pair and checks that each deviation is still needed.
func (s Suite) ReferencePairs(t *testing.T) {
	cases, err := FindCases(referenceDir)
	if err != nil || len(cases) == 0 {
		t.Fatalf("no reference cases: %v", err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			Check(t, c, s.Transform, Options{Deviations: s.Deviations[c.Name], Defaults: s.ReferenceDefaults}, false)
			CheckDeviationsNeeded(t, c, s.Transform, s.ReferenceDefaults, s.Deviations[c.Name])
		})
	}
}

// Cases compares (or, with update, rewrites) our own golden cases.
func (s Suite) Cases(t *testing.T, update bool) {
	cases, err := FindCases(casesDir)
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			Check(t, c, s.Transform, Options{PinIDs: true}, update)
		})
	}
}

// FieldsDeclared checks every field of every golden output, error documents included, with and without the duplicate
// copies, against the fields.yml files the template is built from.
func (s Suite) FieldsDeclared(t *testing.T) {
	schema := LoadSchema(t)
	var all []Case
	for _, dir := range []string{casesDir, referenceDir} {
		cases, err := FindCases(dir)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cases...)
	}
	checked := 0
	reached := map[string]bool{}
	for _, c := range all {
		opts, err := c.Options()
		if err != nil {
			t.Fatal(err)
		}
		if opts.GeneratedTime.IsZero() {
			opts.GeneratedTime = s.ReferenceDefaults.GeneratedTime
		}
		lines, err := ReadLines(c.Input)
		if err != nil {
			t.Fatal(err)
		}
		for _, extra := range [][]string{nil, {transform.TagPreserveDuplicateCustom, transform.TagPreserveOriginal}} {
			run := opts
			run.Tags = append(append([]string(nil), opts.Tags...), extra...)
			out, err := Process(lines, s.Transform, run)
			if err != nil {
				t.Fatal(err)
			}
			events := out.Events
			for i, entry := range out.Entries {
				doc, ok := entry.(map[string]any)
				if !ok {
					continue // a line that gave no document has no event either
				}
				ev := events[0]
				events = events[1:]
				for name := range FieldNames(doc) {
					reached[name] = true
				}
				checked++
				for _, p := range schema.Check(doc) {
					t.Errorf("%s entry %d: %s", c.Name, i+1, p)
				}
				// The event inputs turn libbeat's normalization off, which is right only while
				// documents need none; every dataset is held to it, so any input could.
				if err := NeedsNormalization(ev); err != nil {
					t.Errorf("%s entry %d: %v", c.Name, i+1, err)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no documents checked")
	}
	for _, name := range s.MustReach {
		if !reached[name] {
			t.Errorf("no golden input produces %s; the check would not notice it undeclared", name)
		}
	}
}

// LoadSchema reads what a dataset's template is built from, as seen from its module folder:
// libbeat's ECS fields, the beat-wide additions and the dataset's _meta/fields.yml.
func LoadSchema(t testing.TB) *fieldscheck.Schema {
	t.Helper()
	ecs, err := fieldscheck.LibbeatECSFile()
	if err != nil {
		t.Fatal(err)
	}
	schema, err := fieldscheck.Load(ecs, filepath.Join("..", "..", "_meta", "fields.common.yml"), filepath.Join("_meta", "fields.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return schema
}

// FieldNames returns the dotted names of a document's leaf fields.
func FieldNames(doc map[string]any) map[string]bool {
	names := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			names[prefix+k] = true
		}
	}
	walk("", doc)
	return names
}

// FuzzSeeds adds every line of the golden inputs as a fuzz seed.
func FuzzSeeds(f *testing.F) {
	for _, pattern := range []string{casesDir + "/*.log", referenceDir + "/*.log"} {
		inputs, _ := filepath.Glob(pattern)
		for _, in := range inputs {
			lines, err := ReadLines(in)
			if err != nil {
				f.Fatal(err)
			}
			for _, line := range lines {
				f.Add(line)
			}
		}
	}
}

// CheckPublishable fails unless an event can be published: a timestamp, an _id, fields that
// encode as JSON and no @timestamp among them.
func CheckPublishable(t *testing.T, ev beat.Event) {
	if ev.Timestamp.IsZero() {
		t.Error("zero timestamp")
	}
	if _, ok := ev.Fields["@timestamp"]; ok {
		t.Error("@timestamp among the fields")
	}
	if id, _ := ev.Meta["_id"].(string); id == "" {
		t.Error("no _id")
	}
	if _, err := json.Marshal(ev.Fields); err != nil {
		t.Errorf("fields not JSON-encodable: %v", err)
	}
}
