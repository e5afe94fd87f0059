package golden

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/fieldscheck"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Suite is the set of tests every dataset's processing runs, from its module folder:
// testdata/reference/ (the reference integration's pairs, never regenerated), testdata/ (our own
// cases, regenerated with -update) and _meta/fields.yml.
type Suite struct {
	Transform transform.Func
	// Deviations lists, per reference pair, the paths where an older pair predates the current
	// integration rules we follow.
	Deviations map[string][]Deviation
}

// ReferencePairs compares every reference pair and checks that each deviation is still needed.
func (s Suite) ReferencePairs(t *testing.T) {
	cases, err := FindCases(filepath.Join("testdata", "reference"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no reference cases: %v", err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			Check(t, c, s.Transform, Options{Deviations: s.Deviations[c.Name]}, false)
			CheckDeviationsNeeded(t, c, s.Transform, s.Deviations[c.Name])
		})
	}
}

// Cases compares (or, with update, rewrites) our own golden cases.
func (s Suite) Cases(t *testing.T, update bool) {
	cases, err := FindCases("testdata")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			Check(t, c, s.Transform, Options{}, update)
		})
	}
}

// FieldsDeclared checks every field of every golden output, with and without the duplicate
// copies, against the fields.yml files the template is built from.
func (s Suite) FieldsDeclared(t *testing.T) {
	ecs, err := fieldscheck.LibbeatECSFile()
	if err != nil {
		t.Fatal(err)
	}
	schema, err := fieldscheck.Load(ecs, filepath.Join("..", "..", "_meta", "fields.common.yml"), filepath.Join("_meta", "fields.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var all []Case
	for _, dir := range []string{"testdata", filepath.Join("testdata", "reference")} {
		cases, err := FindCases(dir)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cases...)
	}
	checked := 0
	for _, c := range all {
		tags, err := c.Tags()
		if err != nil {
			t.Fatal(err)
		}
		lines, err := ReadLines(c.Input)
		if err != nil {
			t.Fatal(err)
		}
		for _, extra := range [][]string{nil, {transform.TagPreserveDuplicateCustom, transform.TagPreserveOriginal}} {
			out, err := Process(lines, s.Transform, transform.Options{Tags: append(append([]string(nil), tags...), extra...)})
			if err != nil {
				t.Fatal(err)
			}
			for i, entry := range out.Entries {
				doc, ok := entry.(map[string]any)
				if !ok || isErrorDoc(doc) {
					continue
				}
				checked++
				for _, p := range schema.Check(doc) {
					t.Errorf("%s entry %d: %s", c.Name, i+1, p)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no documents checked")
	}
}

func isErrorDoc(doc map[string]any) bool {
	ev, _ := doc["event"].(map[string]any)
	return ev["kind"] == "pipeline_error"
}

// FuzzSeeds adds every line of the golden inputs as a fuzz seed.
func FuzzSeeds(f *testing.F) {
	for _, pattern := range []string{"testdata/*.log", "testdata/reference/*.log"} {
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
