package graphalert

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"sort"
	"testing"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	m, err := DecodeObject([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDate(t *testing.T) {
	for in, want := range map[string]string{
		"2022-11-07T17:07:42.0259186Z":   "2022-11-07T17:07:42.025Z", // truncated, not rounded
		"2023-10-20T09:54:07.9999999Z":   "2023-10-20T09:54:07.999Z",
		"2026-02-25T16:29:33.1Z":         "2026-02-25T16:29:33.100Z",
		"2024-01-01T02:00:00+02:00":      "2024-01-01T00:00:00.000Z",
		"2021-04-26T07:45:50.116":        "2021-04-26T07:45:50.116Z", // no zone: UTC
		"2024-03-04":                     "2024-03-04T00:00:00.000Z",
		"2024-03-04T10:00:00.123456789Z": "2024-03-04T10:00:00.123Z",
	} {
		got, ok := Date(in)
		if !ok || got != want {
			t.Errorf("Date(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []any{"", "yesterday", "2024-13-01T00:00:00Z", nil, json.Number("1700000000"), 5} {
		if got, ok := Date(bad); ok {
			t.Errorf("Date(%v) = %q, want no date", bad, got)
		}
	}
}

func TestSeverity(t *testing.T) {
	for in, want := range map[string]int64{"informational": 21, "Low": 21, "MEDIUM": 47, "high": 73, "critical": 99} {
		if got, ok := Severity(in); !ok || got != want {
			t.Errorf("Severity(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []any{"unknown", "unknownFutureValue", "severe", "", nil, 3} {
		if got, ok := Severity(in); ok {
			t.Errorf("Severity(%v) = %d, want none", in, got)
		}
	}
}

func TestURLParts(t *testing.T) {
	got, ok := URLParts("https://user:pw@security.microsoft.com:8443/alerts/a.b/file.tar.gz?tid=1&x=2#frag")
	if !ok {
		t.Fatal("no parts")
	}
	want := mapstr.M{
		"original": "https://user:pw@security.microsoft.com:8443/alerts/a.b/file.tar.gz?tid=1&x=2#frag",
		"scheme":   "https", "domain": "security.microsoft.com", "port": int64(8443),
		"path": "/alerts/a.b/file.tar.gz", "extension": "gz", "query": "tid=1&x=2", "fragment": "frag",
		"user_info": "user:pw", "username": "user", "password": "pw",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("URLParts:\n got %v\nwant %v", got, want)
	}
	for _, bad := range []any{"", "not a url", "/relative/path", "%zz", nil, 7} {
		if p, ok := URLParts(bad); ok {
			t.Errorf("URLParts(%v) = %v, want none", bad, p)
		}
	}
}

func TestFingerprint(t *testing.T) {
	sum := sha1.Sum([]byte("\x00a1\x002024-01-01T00:00:00Z\x007"))
	want := base64.StdEncoding.EncodeToString(sum[:])
	if got := Fingerprint("a1", "2024-01-01T00:00:00Z", "7"); got != want {
		t.Errorf("Fingerprint = %s, want %s", got, want)
	}
	if Fingerprint("a1", nil, "2024-01-01T00:00:00Z", "", "7") != want {
		t.Error("missing and empty values must be skipped, as with ignore_missing")
	}
	if Fingerprint("a", "b") == Fingerprint("b", "a") || Fingerprint("ab") == Fingerprint("a", "b") {
		t.Error("fingerprint must depend on order and value boundaries")
	}
}

func TestCleanDropsEmptiesAndConvertsNumbers(t *testing.T) {
	got, ok := Clean(decode(t, `{"a":null,"b":"","c":[],"d":{},"e":[null,""],"f":{"g":null},"n":12,"x":1.5,"big":123456789012345678901,`+
		`"o":{"@odata.type":"#t","k":"v"},"@odata.type":"#root","keep":[0,false,"s"]}`))
	if !ok {
		t.Fatal("everything dropped")
	}
	want := mapstr.M{
		"n": int64(12), "x": 1.5, "big": 1.2345678901234568e+20,
		"o": mapstr.M{"odata_type": "#t", "k": "v"}, "odata_type": "#root",
		"keep": []any{int64(0), false, "s"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Clean:\n got %#v\nwant %#v", got, want)
	}
	if _, ok := Clean(decode(t, `{"a":{"b":[{}]}}`)); ok {
		t.Error("an object holding only empties must be dropped")
	}
}

const processAlert = `{"id":"a","category":"Execution","mitreTechniques":["T1","T2"],"serviceSource":"s",
 "comments":[{"comment":"c","createdByDisplayName":"Ann","createdDateTime":"2024-01-01T00:00:00Z"}],
 "evidence":[
  {"@odata.type":"#microsoft.graph.security.processEvidence","processId":20,"parentProcessId":"10","mdeDeviceId":"dev",
   "processCreationDateTime":"2024-01-01T00:00:01.5Z","parentProcessCreationDateTime":"2024-01-01T00:00:00Z",
   "processCommandLine":"C:\\Windows\\cmd.exe /c whoami","detectionStatus":"detected",
   "imageFile":{"fileName":"cmd.exe","filePath":"C:\\Windows","sha256":"aa","fileSize":"100"},
   "parentProcessImageFile":{"fileName":"explorer.exe","filePath":"C:\\Windows\\","sha1":"bb"},
   "userAccount":{"accountName":"bob","azureAdUserId":"oid-1","userSid":"S-1","domainName":"CORP"}},
  {"@odata.type":"#microsoft.graph.security.processEvidence","processId":5,"mdeDeviceId":"dev",
   "processCreationDateTime":"2024-01-01T00:00:02Z","processCommandLine":"/bin/sh -c id",
   "imageFile":{"fileName":"sh","filePath":"/bin"}},
  {"@odata.type":"#microsoft.graph.security.kubernetesPodEvidence","name":"pod-1","namespace":{"name":"default"},
   "podIp":{"ipAddress":"10.0.0.1"},"labels":{"app":"web"},"verdict":"unknownFutureValue"}
 ]}`

func mapped(t *testing.T, ds Dataset, keep bool) (mapstr.M, mapstr.M) {
	t.Helper()
	b := NewBuilder()
	custom := MapAlert(decode(t, processAlert), ds, keep, b)
	ecs := mapstr.M{}
	b.PutInto(ecs)
	return custom, ecs
}

func field(m mapstr.M, path string) any {
	v, err := m.GetValue(path)
	if err != nil {
		return nil
	}
	return v
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestProcessEvidencePerDataset(t *testing.T) {
	_, alertECS := mapped(t, AlertStream, true)
	_, incidentECS := mapped(t, IncidentStream, true)
	both := map[string]string{
		"process.pid":                      `[5,20]`,
		"process.parent.pid":               `[10]`,
		"process.start":                    `["2024-01-01T00:00:01.500Z","2024-01-01T00:00:02.000Z"]`,
		"process.parent.start":             `["2024-01-01T00:00:00.000Z"]`,
		"process.user.id":                  `["oid-1"]`,
		"process.user.name":                `["bob"]`,
		"process.hash.sha256":              `["aa"]`,
		"process.parent.hash.sha1":         `["bb"]`,
		"threat.tactic.name":               `["Execution"]`,
		"threat.technique.subtechnique.id": `["T1","T2"]`,
		"event.action":                     `["detected"]`,
	}
	for path, want := range both {
		for name, ecs := range map[string]mapstr.M{"alert": alertECS, "incident": incidentECS} {
			if got := asJSON(field(ecs, path)); got != want {
				t.Errorf("%s %s = %s, want %s", name, path, got, want)
			}
		}
	}
	// process.name: the alert pipeline adds image file names before the first word of each
	// command line; only "/" separates a path from the name there, as in the integration.
	if got := asJSON(field(alertECS, "process.name")); got != `["cmd.exe","sh","C:\\Windows\\cmd.exe"]` {
		t.Errorf("alert process.name = %s", got)
	}
	if got := asJSON(field(incidentECS, "process.name")); got != `["C:\\Windows\\cmd.exe","sh"]` {
		t.Errorf("incident process.name = %s", got)
	}
	// The alert pipeline uses pids as entity ids; the incident pipeline fingerprints
	// pid|start|device and also sets executables.
	for path, want := range map[string]string{
		"process.entity_id":         `["5","20"]`,
		"process.parent.entity_id":  `["10"]`,
		"process.executable":        `null`,
		"related.hosts":             `["dev","CORP"]`,
		"process.parent.executable": `null`,
	} {
		if got := asJSON(field(alertECS, path)); got != want {
			t.Errorf("alert %s = %s, want %s", path, got, want)
		}
	}
	wantEntity := asJSON([]string{Fingerprint("20|2024-01-01T00:00:01.500Z|dev"), Fingerprint("5|2024-01-01T00:00:02.000Z|dev")})
	for path, want := range map[string]string{
		"process.entity_id":         wantEntity,
		"process.parent.entity_id":  asJSON([]string{Fingerprint("10|2024-01-01T00:00:00.000Z|dev")}),
		"process.executable":        `["/bin/sh","C:\\Windows\\cmd.exe"]`,
		"process.parent.executable": `"C:\\Windows\\explorer.exe"`,
		"related.hosts":             `["CORP"]`,
	} {
		if got := asJSON(field(incidentECS, path)); got != want {
			t.Errorf("incident %s = %s, want %s", path, got, want)
		}
	}
	users, _ := field(alertECS, "related.user").([]string)
	sort.Strings(users)
	if got := asJSON(users); got != `["Ann","S-1","bob","oid-1"]` {
		t.Errorf("related.user = %s", got)
	}
}

func TestUnknownEvidenceKeptAsGraphNamesIt(t *testing.T) {
	custom, _ := mapped(t, AlertStream, true)
	evidence := custom["evidence"].([]any)
	if len(evidence) != 3 {
		t.Fatalf("want 3 evidence items, got %d", len(evidence))
	}
	pod := evidence[2].(mapstr.M)
	want := `{"labels":{"app":"web"},"name":"pod-1","namespace":{"name":"default"},"odata_type":"#microsoft.graph.security.kubernetesPodEvidence","podIp":{"ipAddress":"10.0.0.1"},"verdict":"unknownFutureValue"}`
	if got := asJSON(pod); got != want {
		t.Errorf("unknown evidence:\n got %s\nwant %s", got, want)
	}
}

func TestDuplicatesRemovedWithoutTag(t *testing.T) {
	kept, _ := mapped(t, AlertStream, true)
	removed, _ := mapped(t, AlertStream, false)
	for _, path := range []string{"id", "category", "mitre_techniques", "service_source"} {
		if kept[path] == nil || removed[path] != nil {
			t.Errorf("%s: kept=%v removed=%v", path, kept[path], removed[path])
		}
	}
	first := func(m mapstr.M) mapstr.M { return m["evidence"].([]any)[0].(mapstr.M) }
	for _, path := range []string{"process.id", "process.command_line", "image_file.sha256", "parent_process.id", "detection_status"} {
		if field(first(kept), path) == nil || field(first(removed), path) != nil {
			t.Errorf("evidence %s: kept=%v removed=%v", path, field(first(kept), path), field(first(removed), path))
		}
	}
	if field(first(removed), "image_file.name") != "cmd.exe" {
		t.Error("evidence fields without an ECS copy must stay")
	}
	incKept, _ := mapped(t, IncidentStream, true)
	incRemoved, _ := mapped(t, IncidentStream, false)
	if incKept["id"] != "a" || incRemoved["id"] != "a" {
		t.Error("the incident pipeline keeps the embedded alert's id")
	}
	if incRemoved["service_source"] != nil || incKept["service_source"] != "s" {
		t.Error("the incident pipeline removes the embedded alert's service_source without the tag")
	}
}

func TestEvidenceCategories(t *testing.T) {
	for _, tc := range []struct {
		alert       string
		cats, types string
	}{
		{`{"evidence":[{"@odata.type":"#microsoft.graph.security.fileEvidence"},{"@odata.type":"#microsoft.graph.security.registryKeyEvidence"}]}`, `["file","registry"]`, `["access","info"]`},
		// Once registry is seen every later evidence adds "access", as in the integration.
		{`{"evidence":[{"@odata.type":"#microsoft.graph.security.registryValueEvidence"},{"@odata.type":"#microsoft.graph.security.fileEvidence"}]}`, `["file","registry"]`, `["access"]`},
		{`{"determination":"APT","evidence":[{"@odata.type":"#microsoft.graph.security.userEvidence"}]}`, `["iam","threat"]`, `["indicator","info"]`},
		{`{"determination":"maliciousUserActivity"}`, `["malware"]`, `["info"]`},
		{`{"determination":"unknownFutureValue","evidence":[{"@odata.type":"#microsoft.graph.security.somethingNew"},"junk",null]}`, `null`, `null`},
	} {
		cats, types := EvidenceCategories(decode(t, tc.alert))
		if asJSON(cats) != tc.cats || asJSON(types) != tc.types {
			t.Errorf("%s: got %s %s, want %s %s", tc.alert, asJSON(cats), asJSON(types), tc.cats, tc.types)
		}
	}
}

func TestCommandName(t *testing.T) {
	for in, want := range map[string]string{
		"  powershell.exe  -NoExit":   "powershell.exe",
		"/usr/bin/python3 x.py":       "python3",
		`"C:\Program Files\a.exe" /s`: `C:\Program`, // the integration splits on the first space
		`"sh"`:                        "sh",
		"   ":                         "",
	} {
		got, _ := commandName(in)
		if got != want {
			t.Errorf("commandName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuilderKeepsFirstSeenOrderWithoutDuplicates(t *testing.T) {
	b := NewBuilder()
	for _, v := range []any{"b", "a", "b", "", nil, int64(3), "3"} {
		b.Add("x", v)
	}
	b.Add("y", "only")
	b.SingleWhenOne("y")
	m := mapstr.M{}
	b.PutInto(m)
	if got := asJSON(m); got != `{"x":["b","a",3,"3"],"y":"only"}` {
		t.Errorf("builder output %s", got)
	}
}
