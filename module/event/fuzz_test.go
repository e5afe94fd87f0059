package event

import (
	"bytes"
	"encoding/json"
	"math/big"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/common"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/golden"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// goldenLines returns every input line of the golden cases, reference pairs included.
func goldenLines(tb testing.TB) [][]byte {
	tb.Helper()
	var lines [][]byte
	for _, pattern := range []string{"testdata/cases/*.log", "testdata/reference/*.log"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			ls, err := golden.ReadLines(f)
			if err != nil {
				tb.Fatal(err)
			}
			lines = append(lines, ls...)
		}
	}
	return lines
}

// FuzzScanner checks the JSON reader against encoding/json: it accepts exactly what
// encoding/json accepts (within its nesting limit) and reads the same values.
func FuzzScanner(f *testing.F) {
	for _, line := range goldenLines(f) {
		f.Add(line)
	}
	for _, s := range []string{`{"a":[1,-0.5e+3,true,null,"\u00e9\ud83d\ude00\"x"]}`, `"\ud800"`, "\"\xff\"", `{"a":1,"a":2}`, `[1,]`, `01`, `-`, `1.`, `{"a" 1}`, "  [] ", `1e999`, `123456789012345678901234567890`, `{"ReportId":21e5729293}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseDocument(b)
		if valid := json.Valid(b); valid != (err == nil) {
			if err != nil && strings.Contains(err.Error(), "nested too deeply") {
				return
			}
			t.Fatalf("encoding/json valid=%v, scanner error=%v, input %q", valid, err, b)
		}
		if err != nil {
			return
		}
		var want any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		if !sameJSON(want, generic(v)) {
			t.Fatalf("scanner read %#v, encoding/json %#v, input %q", generic(v), want, b)
		}
	})
}

func sameJSON(want, got any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(mapstr.M)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, wv := range w {
			if gv, ok := g[k]; !ok || !sameJSON(wv, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameJSON(w[i], g[i]) {
				return false
			}
		}
		return true
	case json.Number:
		wr, ok := new(big.Rat).SetString(string(w))
		if !ok {
			// big.Rat refuses exponents as large as 1e5729293; so does float64, and the
			// scanner then keeps the digits.
			g, isText := got.(string)
			return isText && g == string(w)
		}
		switch g := got.(type) {
		case int64:
			return wr.Cmp(new(big.Rat).SetInt64(g)) == 0
		case float64:
			f, _ := wr.Float64()
			return f == g
		case string: // beyond float64
			return g == string(w)
		}
		return false
	}
	return want == got
}

// checkPublishable fails unless ev can be published and encoded by libbeat.
func checkPublishable(t *testing.T, ev beat.Event, errorDocument, preserveOriginal bool) {
	t.Helper()
	if _, ok := ev.Fields["@timestamp"]; ok {
		t.Fatal("@timestamp among the fields")
	}
	if id, _ := ev.Meta["_id"].(string); id == "" {
		t.Fatal("no _id")
	}
	if _, err := json.Marshal(ev.Fields); err != nil {
		t.Fatalf("fields do not encode: %v", err)
	}
	if _, err := golden.Document(ev); err != nil {
		t.Fatal(err)
	}
	checkNeedsNoNormalization(t, ev)
	// event.original is kept when asked for, and always where something could not be mapped.
	orig, _ := ev.Fields.GetValue("event.original")
	kind, _ := ev.Fields.GetValue("event.kind")
	switch {
	case (errorDocument || kind == "pipeline_error" || preserveOriginal) && orig == nil:
		t.Fatal("event.original missing")
	case !errorDocument && kind != "pipeline_error" && !preserveOriginal && orig != nil:
		t.Fatal("event.original kept without the tag")
	}
}

// FuzzDecode feeds arbitrary messages to the decoder: it never panics, an error comes with no
// documents, and every document is publishable.
func FuzzDecode(f *testing.F) {
	lines := goldenLines(f)
	for _, line := range lines {
		f.Add(line, uint8(0))
	}
	f.Add([]byte(`{"records":[`+string(lines[0])+`,42,{"category":"x"}]}`), uint8(3))
	f.Add([]byte(`{'records':[{'category':'AdvancedHunting-AlertInfo','properties':{'Title':"a\nb"}}]}`), uint8(3))
	f.Fuzz(func(t *testing.T, msg []byte, flags uint8) {
		d := Decoder{}
		if flags&1 != 0 {
			d.Sanitizers = append(d.Sanitizers, SanitizeNewLines)
		}
		if flags&2 != 0 {
			d.Sanitizers = append(d.Sanitizers, SanitizeSingleQuotes)
		}
		opts := transform.Options{Tags: []string{"forwarded"}}
		if flags&4 != 0 {
			opts.Tags = append(opts.Tags, transform.TagPreserveDuplicateCustom)
		}
		if flags&8 != 0 {
			opts.Tags = append(opts.Tags, transform.TagPreserveOriginal)
		}
		var evs []beat.Event
		sum, err := d.Decode(msg, opts, func(ev beat.Event) { evs = append(evs, ev) })
		if err != nil {
			if len(evs) != 0 {
				t.Fatalf("error %v came with %d documents", err, len(evs))
			}
			return
		}
		if sum.Documents != len(evs) || sum.Records != len(evs) || sum.Malformed > sum.Records || sum.Unknown > sum.Records {
			t.Fatalf("summary %+v for %d documents", sum, len(evs))
		}
		malformed := 0
		for _, ev := range evs {
			id, _ := ev.Meta["_id"].(string)
			isError := strings.HasPrefix(id, transform.ErrorIDPrefix)
			if isError {
				malformed++
			}
			checkPublishable(t, ev, isError, opts.PreserveOriginal())
		}
		if malformed != sum.Malformed {
			t.Fatalf("%d error documents, summary says %d", malformed, sum.Malformed)
		}
	})
}

// fuzzFamily fuzzes the properties of records of one family's tables.
func fuzzFamily(f *testing.F, fam *family) {
	var categories []string
	for name, tf := range tables {
		if tf == fam {
			categories = append(categories, name)
		}
	}
	for _, line := range goldenLines(f) {
		v, err := parseDocument(line)
		if err != nil || v.kind != kindObject {
			continue
		}
		var category string
		var props []byte
		_, _ = eachMember(v.raw, 0, func(k value, el value) error {
			switch {
			case keyIs(k, "category"):
				category = el.text()
			case keyIs(k, "properties"):
				props = el.raw
			}
			return nil
		}, 0)
		if tables[category] == fam && props != nil {
			f.Add(props, uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, props []byte, table uint8) {
		category := categories[int(table)%len(categories)]
		record := `{"time":"2024-05-01T10:00:00Z","tenantId":"t","category":"` + category + `","properties":` + string(props) + `}`
		for _, tags := range [][]string{{"forwarded"}, {transform.TagPreserveDuplicateCustom, transform.TagPreserveOriginal}} {
			var evs []beat.Event
			_, err := Decoder{}.Decode([]byte(record), transform.Options{Tags: tags}, func(ev beat.Event) { evs = append(evs, ev) })
			if err != nil {
				if len(evs) != 0 {
					t.Fatalf("error %v came with documents", err)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("%d documents for one record", len(evs))
			}
			id, _ := evs[0].Meta["_id"].(string)
			checkPublishable(t, evs[0], strings.HasPrefix(id, transform.ErrorIDPrefix), transform.Options{Tags: tags}.PreserveOriginal())
		}
	})
}

func FuzzAlertFamily(f *testing.F)    { fuzzFamily(f, alertFamily) }
func FuzzDeviceFamily(f *testing.F)   { fuzzFamily(f, deviceFamily) }
func FuzzEmailFamily(f *testing.F)    { fuzzFamily(f, emailFamily) }
func FuzzIdentityFamily(f *testing.F) { fuzzFamily(f, identityFamily) }

// checkNeedsNoNormalization fails unless the output encodes ev exactly as it encodes what
// libbeat's event normalization makes of it: the input turns normalization off, because it is
// a deep copy of every document, so the documents must already be in its form.
func checkNeedsNoNormalization(t *testing.T, ev beat.Event) {
	t.Helper()
	enc := newEncoder()
	got, err := enc.Encode("index", &ev)
	if err != nil {
		t.Fatal(err)
	}
	got = bytes.Clone(got)
	normalized := ev
	normalized.Fields = common.NewGenericEventConverter(false, logp.NewNopLogger()).Convert(ev.Fields)
	want, err := enc.Encode("index", &normalized)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(decodeExactly(t, got), decodeExactly(t, want)) {
		t.Fatalf("the document needs libbeat's normalization:\n%s\nnormalized:\n%s", got, want)
	}
}

// decodeExactly reads JSON keeping numbers as written (map order is all that may differ).
func decodeExactly(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestDocumentsNeedNoNormalization(t *testing.T) {
	checked := 0
	for _, line := range goldenLines(t) {
		for _, tags := range [][]string{{"forwarded"}, {transform.TagPreserveDuplicateCustom, transform.TagPreserveOriginal}} {
			_, _ = Decoder{}.Decode(line, transform.Options{Tags: tags}, func(ev beat.Event) {
				checkNeedsNoNormalization(t, ev)
				checked++
			})
		}
	}
	if checked < 100 {
		t.Fatalf("only %d documents checked", checked)
	}
}
