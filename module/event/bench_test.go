package event

import (
	"encoding/json"
	"testing"
	"time"

	gojson "github.com/goccy/go-json"
	jsoniter "github.com/json-iterator/go"

	"github.com/elastic/beats/v7/libbeat/beat"
	libbeatjson "github.com/elastic/beats/v7/libbeat/outputs/codec/json"

	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// The benchmarks measure the volume path per record: decode, map and encode the document as the
// outputs do (libbeat's JSON codec), against a bare encoding/json decode and encode of the same
// record. Run them on one core:
//
//	go test -run '^$' -bench . -benchmem -cpu 1 ./module/event/
//
// docs/benchmarks.md keeps the numbers.

// benchRecords returns the records of the golden inputs (references and ours) by family name,
// and "mix": a realistic stream, where device tables dominate.
func benchRecords(b *testing.B) map[string][][]byte {
	b.Helper()
	byFamily := map[string][][]byte{}
	for _, line := range goldenLines(b) {
		v, err := parseDocument(line)
		if err != nil || v.kind != kindObject {
			continue
		}
		var category string
		_, _ = eachMember(v.raw, 0, func(k value, el value) error {
			if keyIs(k, "category") {
				category = el.text()
			}
			return nil
		}, 0)
		if fam := tables[category]; fam != nil {
			byFamily[fam.name] = append(byFamily[fam.name], line)
		}
	}
	// Roughly what a Defender for Endpoint tenant streams: mostly device activity, some
	// identity and cloud app activity, some mail, few alerts.
	weights := map[string]int{"device": 75, "app_and_identity": 12, "email": 10, "alert": 3}
	var mix [][]byte
	for round := 0; round < 4; round++ {
		for fam, w := range weights {
			recs := byFamily[fam]
			for i := 0; i < w; i++ {
				mix = append(mix, recs[(round*w+i)%len(recs)])
			}
		}
	}
	byFamily["mix"] = mix
	return byFamily
}

var benchSets = []string{"alert", "device", "email", "app_and_identity", "mix"}

var benchOpts = transform.Options{Tags: []string{"forwarded", "m365_defender-event"}}

// ours transforms and encodes one record, as the input and the output will.
func ours(b *testing.B, enc *libbeatjson.Encoder, raw []byte) {
	var ev beat.Event
	n := 0
	if err := Transform(raw, benchOpts, func(e beat.Event) { ev = e; n++ }); err != nil || n != 1 {
		b.Fatalf("transform: %v (%d documents)", err, n)
	}
	if _, err := enc.Encode("logs-m365_defender.event-default", &ev); err != nil {
		b.Fatal(err)
	}
}

// bare is the floor any Go processing pays: decode the record with encoding/json and encode it
// back.
func bare(b *testing.B, raw []byte) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		b.Fatal(err)
	}
	if _, err := json.Marshal(v); err != nil {
		b.Fatal(err)
	}
}

func newEncoder() *libbeatjson.Encoder {
	return libbeatjson.New("9.3.0", libbeatjson.Config{})
}

// reportRate reports records per second of wall time and, where the platform tells, per second
// of CPU time: on a shared machine the second is the one to read.
func reportRate(b *testing.B, records int, cpu time.Duration) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(float64(records)/cpu.Seconds(), "records/cpu-s")
	}
}

// BenchmarkTransform: transform and encode, one record per op (allocs/op is allocs per record).
func BenchmarkTransform(b *testing.B) {
	perRecord(b, benchSets, func(b *testing.B) func([]byte) {
		enc := newEncoder()
		return func(rec []byte) { ours(b, enc, rec) }
	})
}

// BenchmarkTransformOnly: the transform without encoding, to tell its share from the output's.
func BenchmarkTransformOnly(b *testing.B) {
	perRecord(b, []string{"device", "mix"}, func(b *testing.B) func([]byte) {
		return func(rec []byte) {
			if err := Transform(rec, benchOpts, func(beat.Event) {}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkBareJSON: encoding/json decode and encode of the same records, one record per op.
func BenchmarkBareJSON(b *testing.B) {
	perRecord(b, benchSets, func(b *testing.B) func([]byte) {
		return func(rec []byte) { bare(b, rec) }
	})
}

// BenchmarkDocumentFloor is what any mapping that hands libbeat its documents pays at least, per
// record: building the finished document's maps (a deep copy of the document the transform made,
// mapstr.M.Clone) and libbeat's JSON encoding of it, with no decoding and no mapping at all. The
// transform cannot be faster than this; docs/benchmarks.md compares the two.
//
// Each document is copied and encoded for `reuse` ops in a row: copying a document last touched
// hundreds of documents ago would count cache misses that the transform, which encodes the
// document it has just built, does not pay.
func BenchmarkDocumentFloor(b *testing.B) {
	const reuse = 64
	sets := benchRecords(b)
	for _, name := range benchSets {
		var docs []beat.Event
		for _, rec := range sets[name] {
			if err := Transform(rec, benchOpts, func(ev beat.Event) { docs = append(docs, ev) }); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(name, func(b *testing.B) {
			enc := newEncoder()
			b.ReportAllocs()
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				doc := docs[(i/reuse)%len(docs)]
				doc.Fields = doc.Fields.Clone()
				if _, err := enc.Encode("logs-m365_defender.event-default", &doc); err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportRate(b, i, cpuTime()-cpu)
		})
	}
}

// perRecord runs one sub-benchmark per record set, handing one record per op to what newOp
// makes for it, and reports records per second and per CPU-second.
func perRecord(b *testing.B, sets []string, newOp func(*testing.B) func([]byte)) {
	records := benchRecords(b)
	for _, name := range sets {
		recs := records[name]
		b.Run(name, func(b *testing.B) {
			op := newOp(b)
			b.ReportAllocs()
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				op(recs[i%len(recs)])
				i++
			}
			reportRate(b, i, cpuTime()-cpu)
		})
	}
}

// BenchmarkRatio runs both on the same records in the same iterations and reports how many
// times the bare encoding/json round trip the transform costs (x-bare), in CPU time.
func BenchmarkRatio(b *testing.B) {
	sets := benchRecords(b)
	for _, name := range benchSets {
		recs := sets[name]
		b.Run(name, func(b *testing.B) {
			enc := newEncoder()
			var oursTime, bareTime time.Duration
			records := 0
			for b.Loop() {
				start := cpuTime()
				for _, r := range recs {
					bare(b, r)
				}
				mid := cpuTime()
				for _, r := range recs {
					ours(b, enc, r)
				}
				oursTime += cpuTime() - mid
				bareTime += mid - start
				records += len(recs)
			}
			if oursTime > 0 && bareTime > 0 {
				b.ReportMetric(float64(oursTime)/float64(bareTime), "x-bare")
				b.ReportMetric(float64(records)/oursTime.Seconds(), "records/cpu-s")
				b.ReportMetric(float64(records)/bareTime.Seconds(), "bare-records/cpu-s")
			}
		})
	}
}

// BenchmarkMessage decodes whole Event Hub messages of 100 records, the shape the input gets.
func BenchmarkMessage(b *testing.B) {
	recs := benchRecords(b)["mix"]
	msg := []byte(`{"records":[`)
	for i := 0; i < 100; i++ {
		if i > 0 {
			msg = append(msg, ',')
		}
		msg = append(msg, recs[i%len(recs)]...)
	}
	msg = append(msg, "]}"...)
	enc := newEncoder()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	records := 0
	cpu := cpuTime()
	for b.Loop() {
		sum, err := Decoder{}.Decode(msg, benchOpts, func(ev beat.Event) {
			if _, err := enc.Encode("logs-m365_defender.event-default", &ev); err != nil {
				b.Fatal(err)
			}
		})
		if err != nil || sum.Documents != 100 {
			b.Fatalf("%v %+v", err, sum)
		}
		records += sum.Documents
	}
	reportRate(b, records, cpuTime()-cpu)
}

// BenchmarkDecodeOnly is how the JSON reader was chosen: decoding the same records with
// encoding/json, goccy/go-json and json-iterator (both already in the module graph through
// libbeat) into generic values, against this package's reader building the same values, and
// against its reader only walking the record (what Transform does before converting the columns
// a table uses).
func BenchmarkDecodeOnly(b *testing.B) {
	recs := benchRecords(b)["mix"]
	var size int64
	for _, r := range recs {
		size += int64(len(r))
	}
	iter := jsoniter.ConfigCompatibleWithStandardLibrary
	for _, d := range []struct {
		name   string
		decode func([]byte) error
	}{
		{"encoding-json", func(raw []byte) error { var v any; return json.Unmarshal(raw, &v) }},
		{"goccy-go-json", func(raw []byte) error { var v any; return gojson.Unmarshal(raw, &v) }},
		{"json-iterator", func(raw []byte) error { var v any; return iter.Unmarshal(raw, &v) }},
		{"scanner-generic", func(raw []byte) error {
			v, err := parseDocument(raw)
			if err == nil {
				_ = generic(v)
			}
			return err
		}},
		{"scanner-walk", func(raw []byte) error { _, err := parseDocument(raw); return err }},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(size / int64(len(recs)))
			b.ReportAllocs()
			i := 0
			cpu := cpuTime()
			for b.Loop() {
				if err := d.decode(recs[i%len(recs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportRate(b, i, cpuTime()-cpu)
		})
	}
}
