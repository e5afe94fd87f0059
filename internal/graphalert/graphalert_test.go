package graphalert

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"
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

// pidRules and fingerprintRules are two rule sets as far apart as the alert and incident
// datasets' (whose own Rules their golden tests pin), so each option is exercised both ways.
var (
	pidRules = Rules{
		WebURL:        "web_url",
		KeepODataType: true,
		Duplicates:    []string{"id", "category", "mitre_techniques", "service_source"},
		IPAddress:     "host.ip",
		DeviceHosts:   []string{"mde_device_id"},
		AccountUsers: []string{
			"user_account.azure_ad_user_id", "user_account.account_name", "user_account.user_sid",
		},
		UserID:               "user_account.azure_ad_user_id",
		ProcessEntityID:      EntityIDFromPID,
		ProcessNameFromImage: true,
	}
	fingerprintRules = Rules{
		WebURL:            "alert_web_url",
		Duplicates:        []string{"service_source"},
		IPAddress:         "source.ip",
		UserID:            "user_account.user_principal_name",
		FilePath:          FilePathJoined,
		ProcessExecutable: true,
		ProcessEntityID:   EntityIDFingerprint,
	}
)

func mapped(t *testing.T, r Rules, keep bool) (mapstr.M, mapstr.M) {
	t.Helper()
	b := NewBuilder()
	custom := r.MapAlert(decode(t, processAlert), keep, b)
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

func TestProcessRules(t *testing.T) {
	_, pidECS := mapped(t, pidRules, true)
	_, fpECS := mapped(t, fingerprintRules, true)
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
		for name, ecs := range map[string]mapstr.M{"pid": pidECS, "fingerprint": fpECS} {
			if got := asJSON(field(ecs, path)); got != want {
				t.Errorf("%s rules: %s = %s, want %s", name, path, got, want)
			}
		}
	}
	// process.name: ProcessNameFromImage adds image file names before the first word of each
	// command line; only "/" separates a path from the name there, as in the integration.
	if got := asJSON(field(pidECS, "process.name")); got != `["cmd.exe","sh","C:\\Windows\\cmd.exe"]` {
		t.Errorf("pid rules: process.name = %s", got)
	}
	if got := asJSON(field(fpECS, "process.name")); got != `["C:\\Windows\\cmd.exe","sh"]` {
		t.Errorf("fingerprint rules: process.name = %s", got)
	}
	// EntityIDFromPID uses pids as entity ids; EntityIDFingerprint fingerprints
	// pid|start|device. ProcessExecutable joins image paths and names.
	for path, want := range map[string]string{
		"process.entity_id":         `["5","20"]`,
		"process.parent.entity_id":  `["10"]`,
		"process.executable":        `null`,
		"related.hosts":             `["dev","CORP"]`,
		"process.parent.executable": `null`,
	} {
		if got := asJSON(field(pidECS, path)); got != want {
			t.Errorf("pid rules: %s = %s, want %s", path, got, want)
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
		if got := asJSON(field(fpECS, path)); got != want {
			t.Errorf("fingerprint rules: %s = %s, want %s", path, got, want)
		}
	}
	users, _ := field(pidECS, "related.user").([]string)
	sort.Strings(users)
	if got := asJSON(users); got != `["Ann","S-1","bob","oid-1"]` {
		t.Errorf("related.user = %s", got)
	}
}

// ruleAlert has one evidence of each kind whose mapping some Rules field changes.
const ruleAlert = `{"id":"a","alertWebUrl":"https://security.microsoft.com/alerts/a","@odata.type":"#microsoft.graph.security.alert",
 "evidence":[
  {"@odata.type":"#microsoft.graph.security.ipEvidence","ipAddress":"10.1.2.3"},
  {"@odata.type":"#microsoft.graph.security.analyzedMessageEvidence","senderIp":"192.0.2.7",
   "internetMessageId":"<m@x>","p1Sender":{"emailAddress":"p1@contoso.com"}},
  {"@odata.type":"#microsoft.graph.security.deviceEvidence","mdeDeviceId":"dev-1","deviceDnsName":"PC-1.Contoso.com",
   "loggedOnUsers":[{"accountName":"carol","domainName":"CORP"}]},
  {"@odata.type":"#microsoft.graph.security.mailboxEvidence","primaryAddress":"dan.p@contoso.com",
   "userAccount":{"azureAdUserId":"oid-d","userPrincipalName":"dan@contoso.com","displayName":"Dan"}},
  {"@odata.type":"#microsoft.graph.security.fileEvidence","fileDetails":{"fileName":"a.exe","filePath":"C:\\dir"}}
 ]}`

// lookup follows a dotted path through maps and, by index, through lists.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch c := v.(type) {
		case mapstr.M:
			v = c[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// TestRulesChangeOutput maps ruleAlert with two Rules that differ in one field and checks that
// the output differs where, and only how, that field says.
func TestRulesChangeOutput(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b Rules
		keep bool
		// path is in the mapped alert ("alert.…") or an ECS field; wantA and wantB are JSON.
		path         string
		wantA, wantB string
	}{
		{name: "ip_address", a: Rules{IPAddress: "host.ip"}, b: Rules{IPAddress: "source.ip"},
			path: "host.ip", wantA: `["10.1.2.3"]`, wantB: `null`},
		{name: "ip_address", a: Rules{IPAddress: "host.ip"}, b: Rules{IPAddress: "source.ip"},
			path: "source.ip", wantA: `null`, wantB: `["10.1.2.3"]`},
		{name: "ip_address", a: Rules{IPAddress: "host.ip"}, b: Rules{IPAddress: "source.ip"},
			path: "related.ip", wantA: `["10.1.2.3","192.0.2.7"]`, wantB: `["10.1.2.3","192.0.2.7"]`},
		{name: "sender_ip", a: Rules{SenderIP: "source.ip"}, b: Rules{},
			path: "source.ip", wantA: `["192.0.2.7"]`, wantB: `null`},
		{name: "alertWebUrl", a: Rules{WebURL: "web_url"}, b: Rules{WebURL: "alert_web_url"},
			path: "alert.web_url.original", wantA: `"https://security.microsoft.com/alerts/a"`, wantB: `null`},
		{name: "alertWebUrl", a: Rules{WebURL: "web_url"}, b: Rules{WebURL: "alert_web_url"},
			path: "alert.alert_web_url.domain", wantA: `null`, wantB: `"security.microsoft.com"`},
		{name: "own @odata.type", a: Rules{KeepODataType: true}, b: Rules{},
			path: "alert.odata_type", wantA: `"#microsoft.graph.security.alert"`, wantB: `null`},
		{name: "p1 sender", a: Rules{SenderAddress: "email.sender.address"}, b: Rules{},
			path: "email.sender.address", wantA: `["p1@contoso.com"]`, wantB: `null`},
		{name: "p1 sender", a: Rules{SenderAddress: "email.sender.address"}, b: Rules{},
			path: "email.from.address", wantA: `["p1@contoso.com"]`, wantB: `["p1@contoso.com"]`},
		{name: "moved to ECS", a: Rules{MovedToECS: []Move{{From: "internet_message_id", To: "email.message_id"}}}, b: Rules{},
			path: "email.message_id", wantA: `["\u003cm@x\u003e"]`, wantB: `null`},
		{name: "moved to ECS, even with the tag", keep: true,
			a: Rules{MovedToECS: []Move{{From: "internet_message_id", To: "email.message_id"}}}, b: Rules{},
			path: "alert.evidence.1.internet_message_id", wantA: `null`, wantB: `"\u003cm@x\u003e"`},
		{name: "device hosts", a: Rules{DeviceHosts: []string{"mde_device_id", "device_dns_name"}}, b: Rules{DeviceHosts: []string{"device_dns_name"}},
			path: "related.hosts", wantA: `["dev-1","PC-1.Contoso.com","CORP"]`, wantB: `["PC-1.Contoso.com","CORP"]`},
		{name: "host from DNS name", a: Rules{HostFromDNSName: true}, b: Rules{},
			path: "host.name", wantA: `["pc-1.contoso.com"]`, wantB: `null`},
		{name: "host from DNS name", a: Rules{HostFromDNSName: true}, b: Rules{},
			path: "host.hostname", wantA: `["PC-1.Contoso.com"]`, wantB: `null`},
		{name: "logged-on user name", a: Rules{LoggedOnUserName: true}, b: Rules{},
			path: "user.name", wantA: `["carol"]`, wantB: `null`},
		{name: "logged-on user name removed as a duplicate", a: Rules{LoggedOnUserName: true}, b: Rules{},
			path: "alert.evidence.2.logged_on_users", wantA: `[{"domain_name":"CORP"}]`, wantB: `[{"account_name":"carol","domain_name":"CORP"}]`},
		{name: "logged-on user name kept with the tag", keep: true, a: Rules{LoggedOnUserName: true}, b: Rules{},
			path: "alert.evidence.2.logged_on_users", wantA: `[{"account_name":"carol","domain_name":"CORP"}]`, wantB: `[{"account_name":"carol","domain_name":"CORP"}]`},
		{name: "account users", a: Rules{AccountUsers: []string{"user_account.display_name"}}, b: Rules{},
			path: "related.user", wantA: `["p1@contoso.com","carol","Dan"]`, wantB: `["p1@contoso.com","carol"]`},
		{name: "primary address", a: Rules{PrimaryAddress: "user.email"}, b: Rules{},
			path: "user.email", wantA: `["dan.p@contoso.com"]`, wantB: `null`},
		{name: "user email replaces primary address", a: Rules{PrimaryAddress: "user.email", UserEmail: "user_account.user_principal_name"},
			b: Rules{PrimaryAddress: "user.email"}, path: "user.email", wantA: `["dan@contoso.com"]`, wantB: `["dan.p@contoso.com"]`},
		{name: "user id", a: Rules{UserID: "user_account.azure_ad_user_id"}, b: Rules{UserID: "user_account.user_principal_name"},
			path: "user.id", wantA: `["oid-d"]`, wantB: `["dan@contoso.com"]`},
		{name: "file path", a: Rules{FilePath: FilePathAsGiven}, b: Rules{FilePath: FilePathJoined},
			path: "file.path", wantA: `["C:\\dir"]`, wantB: `["C:\\dir\\a.exe"]`},
	} {
		for _, side := range []struct {
			rules Rules
			want  string
		}{{tc.a, tc.wantA}, {tc.b, tc.wantB}} {
			b := NewBuilder()
			doc := mapstr.M{"alert": side.rules.MapAlert(decode(t, ruleAlert), tc.keep, b)}
			b.PutInto(doc)
			if got := asJSON(lookup(doc, tc.path)); got != side.want {
				t.Errorf("%s: %s = %s, want %s", tc.name, tc.path, got, side.want)
			}
		}
	}
}

func TestUnknownEvidenceKeptAsGraphNamesIt(t *testing.T) {
	custom, _ := mapped(t, pidRules, true)
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
	kept, _ := mapped(t, pidRules, true)
	removed, _ := mapped(t, pidRules, false)
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
	// Only the fields Rules.Duplicates names are removed.
	otherKept, _ := mapped(t, fingerprintRules, true)
	otherRemoved, _ := mapped(t, fingerprintRules, false)
	if otherKept["id"] != "a" || otherRemoved["id"] != "a" {
		t.Error("id is not in these rules' Duplicates and must stay")
	}
	if otherRemoved["service_source"] != nil || otherKept["service_source"] != "s" {
		t.Error("service_source is in these rules' Duplicates and must go without the tag")
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
