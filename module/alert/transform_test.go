package alert

import (
	"encoding/json"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/golden"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

var update = flag.Bool("update", false, "rewrite our own golden files in testdata/ (never testdata/reference/)")

// referenceDeviations lists, per reference pair, the fields where the pair follows an older rule
// than the current integration, whose rule we implement. One reason per entry.
var referenceDeviations = map[string][]golden.Deviation{
	"test-alert.log": {
		{Path: "event.severity", Reason: "pair predates integration 3.5.0: medium was 3, now 47"},
		{Path: "device.id", Reason: "pair predates integration 3.7.0, which added device.id from azureAdDeviceId"},
		{Path: "process.entity_id", Reason: "pair predates integration 3.6.0, which added process.entity_id"},
		{Path: "process.parent.entity_id", Reason: "pair predates integration 3.6.0, which added process.parent.entity_id"},
		{Path: "process.name", Reason: "pair predates integration 4.0.1, which derives process.name from image file and command line"},
	},
	"test-alert-11105723.log": {
		{Path: "event.severity", Reason: "pair predates the 21/47/73/99 scale: medium was 3, now 47 (sample pair)"},
		{Path: "process.entity_id", Reason: "pair predates process.entity_id from the process id (sample pair has it)"},
		{Path: "process.parent.entity_id", Reason: "pair predates process.parent.entity_id from the parent process id (sample pair has it)"},
		{Path: "process.name", Reason: "pair predates integration 4.0.1, which derives process.name from image file and command line"},
	},
	"test-alert-sample.log": {
		{Path: "process.name", Reason: "sample shows a one-element array; the current pipeline writes a single name as a plain value (Elasticsearch indexes both the same)"},
	},
}

var suite = golden.Suite{Transform: Transform, Deviations: referenceDeviations}

func TestReferencePairs(t *testing.T) { suite.ReferencePairs(t) }

func TestGolden(t *testing.T) { suite.Cases(t, *update) }

func TestFieldsDeclared(t *testing.T) { suite.FieldsDeclared(t) }

const minimal = `{"id":"a1","providerAlertId":"p1","incidentId":"7","lastUpdateDateTime":"2024-05-01T10:00:00.1234567Z","severity":"high","serviceSource":"microsoftDefenderForEndpoint","title":"t","description":"d","tenantId":"tn","assignedTo":"analyst@contoso.com","category":"Execution","mitreTechniques":["T1059"],"evidence":[{"@odata.type":"#microsoft.graph.security.ipEvidence","ipAddress":"10.1.2.3","detectionStatus":"detected"}]}`

func run(t *testing.T, raw string, tags ...string) []beat.Event {
	t.Helper()
	var got []beat.Event
	if err := Transform([]byte(raw), transform.Options{Tags: tags}, func(ev beat.Event) { got = append(got, ev) }); err != nil {
		t.Fatalf("Transform: %v", err)
	}
	return got
}

func one(t *testing.T, raw string, tags ...string) beat.Event {
	t.Helper()
	evs := run(t, raw, tags...)
	if len(evs) != 1 {
		t.Fatalf("want 1 event, got %d", len(evs))
	}
	return evs[0]
}

func get(t *testing.T, ev beat.Event, path string) any {
	t.Helper()
	v, err := ev.Fields.GetValue(path)
	if err != nil {
		return nil
	}
	return v
}

func TestIDIsStableAndChangesWithVersion(t *testing.T) {
	a := one(t, minimal)
	b := one(t, minimal, "other-tag")
	if a.Meta["_id"] == "" || a.Meta["_id"] != b.Meta["_id"] {
		t.Fatalf("same alert must keep its _id: %v vs %v", a.Meta["_id"], b.Meta["_id"])
	}
	for _, changed := range []string{
		strings.Replace(minimal, "2024-05-01T10:00:00.1234567Z", "2024-05-01T10:00:01Z", 1),
		strings.Replace(minimal, `"incidentId":"7"`, `"incidentId":"8"`, 1),
		strings.Replace(minimal, `"providerAlertId":"p1"`, `"providerAlertId":"p2"`, 1),
		strings.Replace(minimal, `"id":"a1"`, `"id":"a2"`, 1),
	} {
		if c := one(t, changed); c.Meta["_id"] == a.Meta["_id"] {
			t.Errorf("changed alert kept _id %v: %s", a.Meta["_id"], changed)
		}
	}
	if _, ok := a.Fields["@timestamp"]; ok {
		t.Error("@timestamp must be the event's Timestamp, not a field")
	}
	if got := a.Timestamp.Format(golden.TimestampLayout); got != "2024-05-01T10:00:00.123Z" {
		t.Errorf("timestamp %s", got)
	}
}

func TestTagsDriveOriginalAndDuplicates(t *testing.T) {
	plain := one(t, minimal, "forwarded")
	if v := get(t, plain, "event.original"); v != nil {
		t.Errorf("event.original without %s: %v", transform.TagPreserveOriginal, v)
	}
	for _, dup := range []string{"m365_defender.alert.id", "m365_defender.alert.tenant_id", "m365_defender.alert.evidence.ip_address"} {
		if v := get(t, plain, dup); v != nil {
			t.Errorf("%s kept without %s: %v", dup, transform.TagPreserveDuplicateCustom, v)
		}
	}
	if ev, _ := get(t, plain, "m365_defender.alert.evidence").([]any); len(ev) != 1 {
		t.Errorf("evidence must stay (without its ECS copies): %v", ev)
	}
	if tags := plain.Fields["tags"]; !equalJSON(tags, []string{"forwarded"}) {
		t.Errorf("tags %v", tags)
	}

	full := one(t, minimal, transform.TagPreserveOriginal, transform.TagPreserveDuplicateCustom)
	if v := get(t, full, "event.original"); v != minimal {
		t.Errorf("event.original must be the raw record, got %v", v)
	}
	if v := get(t, full, "m365_defender.alert.id"); v != "a1" {
		t.Errorf("m365_defender.alert.id %v", v)
	}
	for _, forbidden := range []string{"event.dataset", "data_stream", "agent", "host.hostname", "input"} {
		if v := get(t, full, forbidden); v != nil {
			t.Errorf("%s is the input's to add, got %v", forbidden, v)
		}
	}
}

func TestSeverityNumbers(t *testing.T) {
	for sev, want := range map[string]any{
		"informational": int64(21), "low": int64(21), "medium": int64(47), "High": int64(73), "critical": int64(99),
		"unknown": nil, "unknownFutureValue": nil, "catastrophic": nil,
	} {
		raw := strings.Replace(minimal, `"severity":"high"`, `"severity":"`+sev+`"`, 1)
		ev := one(t, raw, transform.TagPreserveDuplicateCustom)
		if got := get(t, ev, "event.severity"); got != want {
			t.Errorf("%s: event.severity %v, want %v", sev, got, want)
		}
		if got := get(t, ev, "m365_defender.alert.severity"); got != sev {
			t.Errorf("%s: m365_defender.alert.severity %v", sev, got)
		}
	}
}

func TestDroppedAndMalformedRecords(t *testing.T) {
	if evs := run(t, `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2","value":[]}`); len(evs) != 0 {
		t.Errorf("empty page must be dropped, got %d events", len(evs))
	}
	for name, raw := range map[string]string{
		"not JSON":           `{"id":`,
		"not an object":      `["a"]`,
		"page with alerts":   `{"value":[{"id":"x"}]}`,
		"no update time":     `{"id":"x"}`,
		"invalid time":       `{"id":"x","lastUpdateDateTime":"yesterday"}`,
		"two JSON documents": `{"id":"x","lastUpdateDateTime":"2024-01-01T00:00:00Z"} {}`,
	} {
		err := Transform([]byte(raw), transform.Options{}, func(beat.Event) { t.Errorf("%s: emitted a document", name) })
		if err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func BenchmarkTransform(b *testing.B) {
	lines, err := golden.ReadLines(filepath.Join("testdata", "reference", "test-alert-sample.log"))
	if err != nil {
		b.Fatal(err)
	}
	opts := transform.Options{Tags: []string{"forwarded", "m365_defender-alert"}}
	b.ReportAllocs()
	b.SetBytes(int64(len(lines[0])))
	for i := 0; i < b.N; i++ {
		if err := Transform(lines[0], opts, func(beat.Event) {}); err != nil {
			b.Fatal(err)
		}
	}
}
