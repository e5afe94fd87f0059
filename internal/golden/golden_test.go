package golden

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/transform"
)

func parse(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := decode([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name      string
		want, got string
		opts      Options
		diffs     int
	}{
		{"equal", `{"a":1,"b":{"c":"x"}}`, `{"b":{"c":"x"},"a":1}`, Options{}, 0},
		{"7 equals 7.0", `{"n":7,"f":0.5}`, `{"n":7.0,"f":5e-1}`, Options{}, 0},
		{"large integers exact", `{"n":9007199254740993}`, `{"n":9007199254740992}`, Options{}, 1},
		{"number is not string", `{"n":7}`, `{"n":"7"}`, Options{}, 1},
		{"array order matters", `{"a":[1,2]}`, `{"a":[2,1]}`, Options{}, 2},
		{"tags are a set", `{"tags":["a","b"]}`, `{"tags":["b","a"]}`, Options{}, 0},
		{"related is a set", `{"related":{"ip":["1.1.1.1","::1"],"user":["u"]}}`, `{"related":{"user":["u"],"ip":["::1","1.1.1.1"]}}`, Options{}, 0},
		{"set still compares members", `{"tags":["a","b"]}`, `{"tags":["a","c"]}`, Options{}, 2},
		{"missing field", `{"a":1,"b":2}`, `{"a":1}`, Options{}, 1},
		{"unexpected field", `{"a":1}`, `{"a":1,"b":2}`, Options{}, 1},
		{"null document", `null`, `null`, Options{}, 0},
		{"dropped vs produced", `null`, `{"a":1}`, Options{}, 1},
		{"elasticsearch-owned fields", `{"event":{"ingested":"x","kind":"alert"},"source":{"geo":{"x":1},"as":{"number":1}},"user_agent":{"name":"x"}}`, `{"event":{"kind":"alert"}}`, Options{}, 0},
		{"deviation excludes a subtree", `{"process":{"name":["a"],"pid":[1]}}`, `{"process":{"name":"a","pid":[1]}}`, Options{Deviations: []Deviation{{Path: "process.name", Reason: "test"}}}, 0},
		{"deviation below a missing object", `{"a":1}`, `{"a":1,"device":{"id":["x"]}}`, Options{Deviations: []Deviation{{Path: "device.id", Reason: "test"}}}, 0},
		{"deviation does not hide siblings", `{"a":1}`, `{"a":1,"device":{"id":["x"],"name":"n"}}`, Options{Deviations: []Deviation{{Path: "device.id", Reason: "test"}}}, 1},
		{"objects in arrays compare by path", `{"e":[{"x":1,"y":2}]}`, `{"e":[{"x":1,"y":3}]}`, Options{Deviations: []Deviation{{Path: "e.y", Reason: "test"}}}, 0},
	} {
		diffs := Compare(parse(t, tc.want), parse(t, tc.got), tc.opts)
		if len(diffs) != tc.diffs {
			t.Errorf("%s: want %d differences, got %d: %v", tc.name, tc.diffs, len(diffs), diffs)
		}
	}
}

func TestDocument(t *testing.T) {
	ev := beat.Event{
		Timestamp: time.Date(2023, 10, 20, 11, 54, 7, 503333300, time.FixedZone("CEST", 2*3600)),
		Meta:      mapstr.M{"_id": "x"},
		Fields:    mapstr.M{"event": mapstr.M{"severity": int64(47)}, "tags": []string{"t"}},
	}
	doc, err := Document(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := parse(t, `{"@timestamp":"2023-10-20T09:54:07.503Z","event":{"severity":47},"tags":["t"]}`)
	if diffs := Compare(want, doc, Options{}); len(diffs) > 0 {
		t.Errorf("document differs: %v", diffs)
	}
	if _, err := Document(beat.Event{Fields: mapstr.M{"f": func() {}}}); err == nil {
		t.Error("a field JSON cannot encode must be reported")
	}
}

func TestFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "case.log")
	if err := os.WriteFile(in, []byte("{\"a\":1}\n\n  {\"b\":2}  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in+"-config.yml", []byte("# comment\ntags:\n  - forwarded\n  - x\ngenerated_time: \"2025-10-07T01:00:00Z\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases, err := FindCases(dir)
	if err != nil || len(cases) != 1 || cases[0].Config == "" {
		t.Fatalf("FindCases: %v %+v", err, cases)
	}
	opts, err := cases[0].Options()
	if err != nil || strings.Join(opts.Tags, ",") != "forwarded,x" {
		t.Errorf("tags %v, %v", opts.Tags, err)
	}
	if want := time.Date(2025, 10, 7, 1, 0, 0, 0, time.UTC); !opts.GeneratedTime.Equal(want) {
		t.Errorf("generated_time %v, want %v", opts.GeneratedTime, want)
	}
	lines, err := ReadLines(in)
	if err != nil || len(lines) != 2 || string(lines[1]) != `{"b":2}` {
		t.Errorf("lines %q, %v", lines, err)
	}
	docs := []any{map[string]any{"a": 1}, nil}
	if err := WriteExpected(cases[0].Expected, docs); err != nil {
		t.Fatal(err)
	}
	back, err := ReadExpected(cases[0].Expected)
	if err != nil || len(back) != 2 || back[1] != nil {
		t.Fatalf("ReadExpected: %v %v", back, err)
	}
	if diffs := Compare(parse(t, `{"a":1}`), back[0], Options{}); len(diffs) > 0 {
		t.Errorf("round trip differs: %v", diffs)
	}
}

func TestProcess(t *testing.T) {
	fn := func(raw []byte, opts transform.Options, emit transform.Emit) error {
		switch string(raw) {
		case "two":
			emit(beat.Event{Timestamp: ErrorTime, Fields: mapstr.M{"n": 1}})
			emit(beat.Event{Timestamp: ErrorTime, Fields: mapstr.M{"n": 2}})
		case "bad":
			return errors.New("broken")
		}
		return nil
	}
	out, err := Process([][]byte{[]byte("two"), []byte("none"), []byte("bad")}, fn, transform.Options{Tags: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	want := parse(t, `[{"@timestamp":"2000-01-01T00:00:00.000Z","n":1},{"@timestamp":"2000-01-01T00:00:00.000Z","n":2},null,
		{"@timestamp":"2000-01-01T00:00:00.000Z","error":{"message":["broken"]},"event":{"kind":"pipeline_error","original":"bad"},"tags":["t"]}]`)
	if diffs := Compare(want, toAny(out.Entries), Options{}); len(diffs) > 0 {
		t.Errorf("entries differ: %v", diffs)
	}
	if len(out.Events) != 3 {
		t.Errorf("want 3 events, got %d", len(out.Events))
	}
}

func toAny(entries []any) any {
	out := make([]any, len(entries))
	for i, e := range entries {
		if m, ok := e.(map[string]any); ok {
			out[i] = m
		}
	}
	return out
}

func TestPinnedIDsFollowTheirDocuments(t *testing.T) {
	fn := func(raw []byte, _ transform.Options, emit transform.Emit) error {
		if string(raw) != "none" {
			emit(beat.Event{Timestamp: ErrorTime, Fields: mapstr.M{"n": string(raw)}, Meta: mapstr.M{"_id": "id-" + string(raw)}})
		}
		return nil
	}
	out, err := Process([][]byte{[]byte("a"), []byte("none"), []byte("b")}, fn, transform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out.pinIDs()
	want := parse(t, `[{"@timestamp":"2000-01-01T00:00:00.000Z","n":"a","@metadata":{"_id":"id-a"}},null,
		{"@timestamp":"2000-01-01T00:00:00.000Z","n":"b","@metadata":{"_id":"id-b"}}]`)
	if diffs := Compare(want, toAny(out.Entries), Options{}); len(diffs) > 0 {
		t.Errorf("entries differ: %v", diffs)
	}
}

// recorder collects the failures Check and CheckDeviationsNeeded report.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestDeviationLimitedToEntries(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "case.log")
	if err := os.WriteFile(in, []byte("1\n2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Entry 1 differs in "a", entry 2 in "b".
	if err := os.WriteFile(in+"-expected.json", []byte(`{"expected":[{"a":1,"b":1},{"a":2,"b":1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fn := func(raw []byte, _ transform.Options, emit transform.Emit) error {
		emit(beat.Event{Fields: mapstr.M{"a": 2, "b": 2}})
		return nil
	}
	cases, err := FindCases(dir)
	if err != nil || len(cases) != 1 {
		t.Fatalf("FindCases: %v %v", cases, err)
	}
	run := func(ds []Deviation) (check, needed []string) {
		r := &recorder{TB: t}
		Check(r, cases[0], fn, Options{Deviations: ds}, false)
		check = r.errs
		r = &recorder{TB: t}
		CheckDeviationsNeeded(r, cases[0], fn, transform.Options{}, ds)
		return check, r.errs
	}
	exact := []Deviation{{Path: "a", Reason: "test", Entries: []int{1}}, {Path: "b", Reason: "test", Entries: []int{1, 2}}}
	if check, needed := run(exact); len(check) != 0 || len(needed) != 0 {
		t.Errorf("deviations covering exactly the differences: check %v, needed %v", check, needed)
	}
	wrongEntry := []Deviation{{Path: "a", Reason: "test", Entries: []int{2}}, {Path: "b", Reason: "test"}}
	check, needed := run(wrongEntry)
	if len(check) != 1 || !strings.Contains(check[0], "entry 1") {
		t.Errorf("a deviation on entry 2 must not hide entry 1's difference: %v", check)
	}
	if len(needed) != 1 || !strings.Contains(needed[0], `"a"`) {
		t.Errorf("a deviation hiding nothing on its entries must be reported: %v", needed)
	}
}
