package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/transform"
)

const (
	deviceInfo = `{"time":"2024-05-01T10:00:01.1234567Z","tenantId":"t1","operationName":"Publish","category":"AdvancedHunting-DeviceInfo","properties":{"Timestamp":"2024-05-01T10:00:00.1234567Z","DeviceId":"dev1","DeviceName":"Host1","ReportId":7}}`
	alertInfo  = `{"time":"2024-05-01T10:00:02Z","tenantId":"t1","operationName":"Publish","category":"AdvancedHunting-AlertInfo","properties":{"Timestamp":"2024-05-01T10:00:00Z","AlertId":"da1","Title":"T","Severity":"High","Category":"Execution"}}`
)

func decode(t *testing.T, d Decoder, msg string, tags ...string) ([]beat.Event, Summary, error) {
	t.Helper()
	var evs []beat.Event
	sum, err := d.Decode([]byte(msg), transform.Options{Tags: tags}, func(ev beat.Event) { evs = append(evs, ev) })
	return evs, sum, err
}

func get(ev beat.Event, path string) any {
	v, err := ev.Fields.GetValue(path)
	if err != nil {
		return nil
	}
	return v
}

func TestMessageShapes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		msg       string
		documents int
	}{
		{"single record", deviceInfo, 1},
		{"records message", `{"records":[` + deviceInfo + `,` + alertInfo + `]}`, 2},
		{"records message with white space", " \n{ \"records\" : [ " + deviceInfo + " , " + alertInfo + " ] }\r\n", 2},
		{"bare array", `[` + deviceInfo + `,` + alertInfo + `]`, 2},
		{"empty records", `{"records":[]}`, 0},
		{"records not first", `{"x":1,"records":[` + deviceInfo + `]}`, 1},
	} {
		evs, sum, err := decode(t, Decoder{}, tc.msg)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(evs) != tc.documents || sum.Documents != tc.documents || sum.Records != tc.documents {
			t.Errorf("%s: %d documents, summary %+v, want %d", tc.name, len(evs), sum, tc.documents)
		}
		for _, ev := range evs {
			if get(ev, "event.kind") == "pipeline_error" {
				t.Errorf("%s: unexpected error document %v", tc.name, ev.Fields)
			}
		}
	}
}

func TestBadRecordsBecomeErrorDocumentsAndTheRestFlows(t *testing.T) {
	msg := `{"records":[` + deviceInfo + `,42,"x",null,{"category":"AdvancedHunting-DeviceInfo","properties":"oops"},{"properties":{"DeviceId":"d"}},{"category":7,"properties":{}},` + alertInfo + `]}`
	evs, sum, err := decode(t, Decoder{}, msg, "forwarded")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Records != 8 || sum.Malformed != 6 || sum.Documents != 8 {
		t.Fatalf("summary %+v", sum)
	}
	if get(evs[0], "host.id") != "dev1" || get(evs[7], "event.id") != "da1" {
		t.Errorf("good records must flow around bad ones: %v / %v", evs[0].Fields, evs[7].Fields)
	}
	wantOriginal := []string{"42", `"x"`, "null", `{"category":"AdvancedHunting-DeviceInfo","properties":"oops"}`, `{"properties":{"DeviceId":"d"}}`, `{"category":7,"properties":{}}`}
	for i, want := range wantOriginal {
		ev := evs[i+1]
		if get(ev, "event.kind") != "pipeline_error" || get(ev, "error.message") == nil {
			t.Errorf("record %d: not an error document: %v", i+2, ev.Fields)
		}
		if get(ev, "event.original") != want {
			t.Errorf("record %d: event.original %q, want %q", i+2, get(ev, "event.original"), want)
		}
		if !ev.Timestamp.IsZero() {
			t.Errorf("record %d: an error document takes the publishing time, got %v", i+2, ev.Timestamp)
		}
		if id, _ := ev.Meta["_id"].(string); !strings.HasPrefix(id, transform.ErrorIDPrefix) {
			t.Errorf("record %d: _id %q", i+2, id)
		}
		if tags, _ := get(ev, "tags").([]string); len(tags) != 1 {
			t.Errorf("record %d: tags %v", i+2, tags)
		}
	}
}

func TestUnreadableMessagesEmitNothing(t *testing.T) {
	for _, msg := range []string{
		"", "   ", "not json", "42", `"records"`, "{", `{"records":[` + deviceInfo, `{"records":[` + deviceInfo + `,]}`,
		deviceInfo + " trailing", `{"records":[` + deviceInfo + `]}{}`, "{\"records\":[{\"category\":\"a\nb\"}]}",
	} {
		evs, _, err := decode(t, Decoder{}, msg)
		if err == nil {
			t.Errorf("%q: want an error", msg)
		}
		if len(evs) != 0 {
			t.Errorf("%q: emitted %d documents with the error; a broken message must give no partial output", msg, len(evs))
		}
	}
}

// Each document is handed on before the next record is read, so a reader waiting on a full
// queue holds one document, not a message's worth. Seen here by changing the second record's
// bytes from the first document's emit: the second document must carry the change.
func TestEachDocumentIsEmittedBeforeTheNextRecordIsRead(t *testing.T) {
	msg := []byte(`{"records":[` + deviceInfo + `,` + strings.Replace(deviceInfo, "Host1", "HostA", 1) + `]}`)
	var names []any
	_, err := Decoder{}.Decode(msg, transform.Options{}, func(ev beat.Event) {
		names = append(names, get(ev, "host.name"))
		if i := bytes.Index(msg, []byte("HostA")); i >= 0 {
			copy(msg[i:], "HostB")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []any{"host1", "hostb"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("host.name of the two documents: %v, want %v (the second record read before the first document was emitted)", names, want)
	}
}

func TestSanitizers(t *testing.T) {
	newLines := "{\"records\":[{\"time\":\"2024-05-01T10:00:00Z\",\"category\":\"AdvancedHunting-AlertInfo\",\"properties\":{\"Timestamp\":\"2024-05-01T10:00:00Z\",\"Title\":\"two\nlines\"}}]}"
	singleQuotes := `{'records':[{'time':'2024-05-01T10:00:00Z','category':'AdvancedHunting-AlertInfo','properties':{'Timestamp':'2024-05-01T10:00:00Z','Title':"it's"}}]}`

	if _, _, err := decode(t, Decoder{}, newLines); err == nil {
		t.Fatal("a raw new line in a string is invalid JSON without the sanitizer")
	}
	evs, sum, err := decode(t, Decoder{Sanitizers: []Sanitizer{SanitizeNewLines}}, newLines)
	if err != nil || len(evs) != 1 || !sum.Sanitized {
		t.Fatalf("new_lines: %v, %d documents, %+v", err, len(evs), sum)
	}
	if get(evs[0], "message") != "twolines" {
		t.Errorf("new_lines: message %q", get(evs[0], "message"))
	}

	evs, sum, err = decode(t, Decoder{Sanitizers: []Sanitizer{SanitizeNewLines, SanitizeSingleQuotes}}, singleQuotes)
	if err != nil || len(evs) != 1 || !sum.Sanitized {
		t.Fatalf("single_quotes: %v, %d documents, %+v", err, len(evs), sum)
	}
	if get(evs[0], "message") != "it's" {
		t.Errorf("single_quotes must leave quotes inside strings alone: %q", get(evs[0], "message"))
	}

	// Valid JSON is never touched, even with sanitizers configured.
	valid := `{"records":[{"category":"AdvancedHunting-AlertInfo","properties":{"Timestamp":"2024-05-01T10:00:00Z","Title":"'quoted'"}}]}`
	evs, sum, err = decode(t, Decoder{Sanitizers: []Sanitizer{SanitizeSingleQuotes}}, valid)
	if err != nil || sum.Sanitized || get(evs[0], "message") != "'quoted'" {
		t.Errorf("valid JSON was sanitized: %v %+v %v", err, sum, get(evs[0], "message"))
	}
	// A message the sanitizers cannot repair is reported as it came.
	if _, _, err := decode(t, Decoder{Sanitizers: []Sanitizer{SanitizeNewLines, SanitizeSingleQuotes}}, "{'records':[{"); err == nil {
		t.Error("an unrepairable message must still fail")
	}
	for _, name := range []string{"new_lines", "single_quotes"} {
		if SanitizerNames[name] == nil {
			t.Errorf("sanitize option %s has no sanitizer", name)
		}
	}
}

func TestSanitizeSingleQuotesKeepsEscapes(t *testing.T) {
	got := string(SanitizeSingleQuotes([]byte(`{'a':"x\"'y",'b':'\\'}`)))
	if want := `{"a":"x\"'y","b":"\\"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := string(SanitizeNewLines([]byte("{\"a\":\"1\r\n2\"}\n"))); got != `{"a":"12"}` {
		t.Errorf("new lines: %q", got)
	}
}

func TestUnknownTableStillBecomesADocument(t *testing.T) {
	msg := `{"records":[{"time":"2024-05-01T10:00:01Z","tenantId":"t1","category":"AdvancedHunting-DeviceTvmSoftwareInventory","properties":{"Timestamp":"2024-05-01T10:00:00Z","DeviceId":"d1","SoftwareName":"x","Empty":"","Nested":{"a":[1,null]}}}]}`
	evs, sum, err := decode(t, Decoder{}, msg)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v, %d documents", err, len(evs))
	}
	if sum.Unknown != 1 || sum.Malformed != 0 {
		t.Errorf("summary %+v", sum)
	}
	ev := evs[0]
	if get(ev, "event.kind") != "event" || get(ev, "error") != nil {
		t.Errorf("an unknown table is not an error: %v", ev.Fields)
	}
	if get(ev, "m365_defender.event.properties.SoftwareName") != "x" || get(ev, "m365_defender.event.properties.DeviceId") != "d1" {
		t.Errorf("columns must be kept: %v", get(ev, "m365_defender.event.properties"))
	}
	if get(ev, "m365_defender.event.properties.Empty") != nil {
		t.Error("empty columns are dropped, as everywhere")
	}
	if get(ev, "m365_defender.event.category") != "AdvancedHunting-DeviceTvmSoftwareInventory" || !ev.Timestamp.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("envelope: %v %v", ev.Fields, ev.Timestamp)
	}
}

func TestDocumentID(t *testing.T) {
	id := func(msg string) string {
		evs, _, err := decode(t, Decoder{}, msg)
		if err != nil || len(evs) == 0 {
			t.Fatalf("%v", err)
		}
		return evs[0].Meta["_id"].(string)
	}
	alone := id(deviceInfo)
	if alone == "" || alone != id(deviceInfo) {
		t.Fatal("the same record must keep its _id")
	}
	if id(`{"records":[`+deviceInfo+`]}`) != alone || id("  "+deviceInfo+"\n") != alone {
		t.Error("a record has the same _id alone, in a message or with surrounding white space")
	}
	if id(strings.Replace(deviceInfo, "Host1", "Host2", 1)) == alone {
		t.Error("a different record must get another _id")
	}
	evs, _, _ := decode(t, Decoder{}, deviceInfo, transform.TagPreserveDuplicateCustom)
	if evs[0].Meta["_id"] != alone {
		t.Error("the _id depends on the record only, not on the options")
	}
}

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		name, record string
		want         time.Time
		problem      bool
	}{
		{"from Timestamp, milliseconds", deviceInfo, time.Date(2024, 5, 1, 10, 0, 0, 123e6, time.UTC), false},
		{"record time when Timestamp is missing", `{"time":"2024-05-01T10:00:01.5Z","category":"AdvancedHunting-DeviceInfo","properties":{"DeviceId":"d"}}`, time.Date(2024, 5, 1, 10, 0, 1, 5e8, time.UTC), false},
		{"offsets are converted", `{"category":"AdvancedHunting-DeviceInfo","properties":{"Timestamp":"2024-05-01T12:00:00+02:00"}}`, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), false},
		{"unreadable Timestamp is reported", `{"time":"2024-05-01T10:00:01Z","category":"AdvancedHunting-DeviceInfo","properties":{"Timestamp":"yesterday"}}`, time.Date(2024, 5, 1, 10, 0, 1, 0, time.UTC), true},
		{"no time at all", `{"category":"AdvancedHunting-DeviceInfo","properties":{}}`, time.Time{}, false},
	} {
		evs, _, err := decode(t, Decoder{}, tc.record)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ev := evs[0]
		if !ev.Timestamp.Equal(tc.want) {
			t.Errorf("%s: Timestamp %v, want %v", tc.name, ev.Timestamp, tc.want)
		}
		if _, ok := ev.Fields["@timestamp"]; ok {
			t.Errorf("%s: @timestamp among the fields", tc.name)
		}
		if got := get(ev, "error.message") != nil; got != tc.problem {
			t.Errorf("%s: error.message %v", tc.name, get(ev, "error.message"))
		}
	}
}

func TestDuplicatesRemovedWithoutTag(t *testing.T) {
	record := `{"category":"AdvancedHunting-DeviceProcessEvents","properties":{"Timestamp":"2024-05-01T10:00:00Z","DeviceId":"dev1","DeviceName":"Host1","ActionType":"ProcessCreated","ProcessId":10,"ProcessCreationTime":"2024-05-01T09:59:59Z","FileName":"a.exe","FolderPath":"C:\\a.exe","InitiatingProcessId":5}}`
	evs, _, _ := decode(t, Decoder{}, record, "forwarded")
	ev := evs[0]
	for _, dup := range []string{"m365_defender.event.device.id", "m365_defender.event.device.name", "m365_defender.event.file.name", "m365_defender.event.folder_path", "m365_defender.event.action.type"} {
		if v := get(ev, dup); v != nil {
			t.Errorf("%s kept without the %s tag: %v", dup, transform.TagPreserveDuplicateCustom, v)
		}
	}
	// What the integration derives from the removed copies must still be there.
	for path, want := range map[string]any{
		"host.id": "dev1", "cloud.instance.id": "dev1", "device.id": "dev1", "process.name": "a.exe",
		"m365_defender.event.process.id": int64(10),
	} {
		if got := get(ev, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	if v := get(ev, "event.original"); v != nil {
		t.Errorf("event.original kept without the %s tag: %v", transform.TagPreserveOriginal, v)
	}
	kept, _, _ := decode(t, Decoder{}, record, "forwarded", transform.TagPreserveOriginal)
	if got := get(kept[0], "event.original"); got != record {
		t.Errorf("event.original with the %s tag = %v, want the record", transform.TagPreserveOriginal, got)
	}
	if get(ev, "process.entity_id") != fingerprint("10|2024-05-01T09:59:59.000Z|dev1") {
		t.Errorf("process.entity_id %v", get(ev, "process.entity_id"))
	}
	if get(ev, "process.parent.entity_id") != "5" {
		t.Errorf("without a start, the entity id is the pid: %v", get(ev, "process.parent.entity_id"))
	}

	evs, _, _ = decode(t, Decoder{}, record, transform.TagPreserveDuplicateCustom)
	if get(evs[0], "m365_defender.event.device.name") != "Host1" {
		t.Errorf("the tag keeps the copies: %v", get(evs[0], "m365_defender.event"))
	}
}

func TestConversionProblemsAreReported(t *testing.T) {
	record := `{"category":"AdvancedHunting-EmailAttachmentInfo","properties":{"Timestamp":"2024-05-01T10:00:00Z","FileSize":"big","FileName":"a.txt","AttachmentCount":3.5,"SenderIPv4":"-"}}`
	evs, _, _ := decode(t, Decoder{}, record, transform.TagPreserveDuplicateCustom)
	ev := evs[0]
	msgs, _ := get(ev, "error.message").([]string)
	if len(msgs) != 2 || !strings.Contains(msgs[0], "file.size") || !strings.Contains(msgs[1], "attachment_count") {
		t.Errorf("error.message %q", msgs)
	}
	if get(ev, "event.kind") != "pipeline_error" {
		t.Errorf("event.kind %v", get(ev, "event.kind"))
	}
	if get(ev, "file.name") != "a.txt" || get(ev, "m365_defender.event.sender.ipv4") != nil {
		t.Errorf("the rest of the record is mapped and invalid IPs are dropped silently: %v", ev.Fields)
	}
}

func TestSplitCommandLine(t *testing.T) {
	for cmd, want := range map[string][]string{
		`"InstallUtil.exe" /u "C:\Program Files (x86)\x.exe"`: {"InstallUtil.exe", "/u", `C:\Program Files (x86)\x.exe`},
		`a  b	c`:                 {"a", "b", "c"},
		`a\\b "c\"d" e\\\"f`:     {`a\\b`, `c"d`, `e\"f`},
		`"a ""b"" c"`:            {`a "b`, `c`}, // a doubled quote inside quotes is a quote and ends the quoted part
		`msoia.exe" scan upload`: {"msoia.exe scan upload"},
		`x\\\\"y z"`:             {`x\\y z`},
		"":                       nil,
	} {
		got := splitCommandLine(cmd)
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("%q: got %q, want %q", cmd, got, want)
		}
	}
}

// TestDocsNameEveryTable keeps the dataset's page in step with the mapping.
func TestDocsNameEveryTable(t *testing.T) {
	page, err := os.ReadFile("_meta/docs.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, category := range Tables() {
		table := strings.TrimPrefix(category, "AdvancedHunting-")
		if !strings.Contains(string(page), table) {
			t.Errorf("_meta/docs.md does not name %s", table)
		}
		if tables[category].mapRecord == nil {
			t.Errorf("%s has no mapping", category)
		}
	}
	if len(Tables()) != 30 {
		t.Errorf("%d tables; the integration's pipelines handle 30", len(Tables()))
	}
}

// TestConcurrentUse runs the transform from several goroutines (as a multi-partition input will)
// and expects exactly the documents a serial run gives.
func TestConcurrentUse(t *testing.T) {
	lines := goldenLines(t)
	render := func(line []byte) string {
		var out []string
		_ = Transform(line, transform.Options{Tags: []string{"x"}}, func(ev beat.Event) {
			doc, err := json.Marshal(ev.Fields)
			if err != nil {
				t.Error(err)
			}
			out = append(out, string(doc)+fmt.Sprint(ev.Meta["_id"]))
		})
		return strings.Join(out, "\n")
	}
	want := make([]string, len(lines))
	for i, l := range lines {
		want[i] = render(l)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for round := 0; round < 3; round++ {
				for i := range lines {
					j := (i + g*7) % len(lines)
					if got := render(lines[j]); got != want[j] {
						t.Errorf("goroutine %d: line %d differs from the serial run", g, j)
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
}
