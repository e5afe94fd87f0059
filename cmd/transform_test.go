package cmd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/defenderbeat/defenderbeat/beater"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

const eventRecord = `{"time":"2024-05-01T10:00:01.1234567Z","tenantId":"t1","operationName":"Publish","category":"AdvancedHunting-DeviceInfo","properties":{"Timestamp":"2024-05-01T10:00:00.1234567Z","DeviceId":"dev1","DeviceName":"Host1","ReportId":7}}`

func runLines(t *testing.T, dataset, input string, tags ...string) (docs []map[string]any, lines []string, malformed int, stderr string) {
	t.Helper()
	fn, ok := beater.TransformFor(dataset)
	if !ok {
		t.Fatalf("no transform for %s", dataset)
	}
	var out, errOut bytes.Buffer
	malformed, err := runTransform(strings.NewReader(input), &out, &errOut, fn, transform.Options{Tags: tags})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		lines = append(lines, line)
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("output line is not JSON: %q", line)
		}
		docs = append(docs, doc)
	}
	return docs, lines, malformed, errOut.String()
}

func field(doc map[string]any, path string) any {
	var v any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestTransformEventRecordsAndMessages(t *testing.T) {
	if !strings.Contains(strings.Join(beater.Datasets(), ","), "event") {
		t.Fatalf("event is not among the transform datasets: %v", beater.Datasets())
	}
	second := strings.Replace(eventRecord, `"dev1"`, `"dev2"`, 1)
	input := eventRecord + "\n" +
		`{"records":[` + eventRecord + `,` + second + `]}` + "\n" +
		`{"records":[]}` + "\n"
	docs, lines, malformed, stderr := runLines(t, "event", input, "forwarded")
	if malformed != 0 || stderr != "" {
		t.Fatalf("malformed %d, stderr %q", malformed, stderr)
	}
	if len(lines) != 4 || lines[3] != "null" {
		t.Fatalf("want a record line, two message lines and null, got %q", lines)
	}
	for i, want := range []string{"dev1", "dev1", "dev2"} {
		if got := field(docs[i], "host.id"); got != want {
			t.Errorf("line %d: host.id %v, want %s", i+1, got, want)
		}
		if got := field(docs[i], "@timestamp"); got != "2024-05-01T10:00:00.123Z" {
			t.Errorf("line %d: @timestamp %v", i+1, got)
		}
		if _, ok := docs[i]["@metadata"]; ok {
			t.Errorf("line %d carries @metadata", i+1)
		}
	}
	if docs[0]["tags"] == nil || field(docs[0], "event.original") != nil {
		t.Errorf("tags missing, or event.original kept without preserve_original_event: %v", docs[0])
	}
}

func TestTransformEventBadRecordsCount(t *testing.T) {
	input := `{"records":[` + eventRecord + `,42]}` + "\n" + "{not json\n"
	docs, lines, malformed, stderr := runLines(t, "event", input)
	if len(lines) != 3 {
		t.Fatalf("want the good record, its broken neighbour and the broken line, got %q", lines)
	}
	if malformed != 2 {
		t.Errorf("malformed = %d, want 2 (a record and a line)", malformed)
	}
	if field(docs[0], "event.kind") != "event" {
		t.Errorf("the good record must still flow: %v", docs[0])
	}
	for _, i := range []int{1, 2} {
		if field(docs[i], "event.kind") != "pipeline_error" || field(docs[i], "error.message") == nil {
			t.Errorf("line %d is not an error document: %v", i+1, docs[i])
		}
	}
	if field(docs[1], "event.original") != "42" || field(docs[2], "event.original") != "{not json" {
		t.Errorf("event.original must hold what could not be read: %v / %v", field(docs[1], "event.original"), field(docs[2], "event.original"))
	}
	if !strings.Contains(stderr, "line 1") || !strings.Contains(stderr, "line 2") {
		t.Errorf("stderr must name both lines: %q", stderr)
	}
}
