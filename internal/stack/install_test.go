package stack

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/elastic/beats/v7/libbeat/esleg/eslegclient"
	"github.com/elastic/elastic-agent-libs/logp"

	"github.com/defenderbeat/defenderbeat/include"
	"github.com/defenderbeat/defenderbeat/internal/stacktest"
)

func connect(t *testing.T, es *stacktest.Elasticsearch) *eslegclient.Connection {
	t.Helper()
	conn, err := eslegclient.NewConnection(eslegclient.ConnectionSettings{URL: es.URL(), CompressionLevel: 1}, logp.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func setupOpts() InstallOptions {
	return InstallOptions{Mode: ModeSetup, BeatVersion: "9.3.0"}
}

func writes(es *stacktest.Elasticsearch) []string {
	var out []string
	for _, r := range es.Writes() {
		out = append(out, r.String())
	}
	return out
}

func outcomes(rep Report) map[string]Outcome {
	m := map[string]Outcome{}
	for _, r := range rep.Results {
		m[string(r.Kind)+" "+r.Name] = r.Outcome
	}
	return m
}

func TestSetupInstallsEverythingInOrder(t *testing.T) {
	es := stacktest.NewElasticsearch()
	defer es.Close()
	rep, err := Install(connect(t, es), buildPlan(t, nil, es93), setupOpts())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"PUT /_ilm/policy/defenderbeat",
		"PUT /_ilm/policy/defenderbeat-vulnerability",
		"PUT /_ingest/pipeline/defenderbeat-final",
		"PUT /_index_template/defenderbeat",
		"PUT /_index_template/defenderbeat-vulnerability",
		"PUT /security_solution-m365_defender.vulnerability_latest-v3",
		"PUT /_transform/defenderbeat-latest_cdr_vulnerabilities",
		"POST /_transform/defenderbeat-latest_cdr_vulnerabilities/_start",
	}
	if got := writes(es); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("writes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for name, o := range outcomes(rep) {
		if o != Created {
			t.Errorf("%s: %s, want created", name, o)
		}
	}
	if _, started := es.Transform("defenderbeat-latest_cdr_vulnerabilities"); !started {
		t.Error("the transform was not started")
	}
	if get(es.Policy("defenderbeat-vulnerability"), "policy", "phases", "delete", "min_age") != "7d" {
		t.Errorf("vulnerability policy = %v", es.Policy("defenderbeat-vulnerability"))
	}

	// The data streams now get defenderbeat's templates, and the final pipeline stamps
	// event.ingested, which the transform syncs on.
	bulk(t, es, `{"create":{"_index":"logs-m365_defender.vulnerability-default","_id":"v1"}}`, `{"vulnerability":{"id":"CVE-1"}}`)
	bulk(t, es, `{"create":{"_index":"logs-m365_defender.alert-default","_id":"a1"}}`, `{"event":{"id":"a1"}}`)
	for ds, tmpl := range map[string]string{
		"logs-m365_defender.vulnerability-default": "defenderbeat-vulnerability",
		"logs-m365_defender.alert-default":         "defenderbeat",
	} {
		got := es.DataStream(ds)
		if got == nil || got.Template != tmpl {
			t.Fatalf("%s: %+v, want created from %s", ds, got, tmpl)
		}
		if get(got.Docs[0].Source, "event", "ingested") == nil {
			t.Errorf("%s: the final pipeline did not set event.ingested: %v", ds, got.Docs[0].Source)
		}
	}
}

func bulk(t *testing.T, es *stacktest.Elasticsearch, lines ...string) {
	t.Helper()
	resp, err := http.Post(es.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.Contains(string(body), `"errors":true`) {
		t.Fatalf("bulk: %d %s", resp.StatusCode, body)
	}
}

func TestSecondSetupChangesNothing(t *testing.T) {
	es := stacktest.NewElasticsearch()
	defer es.Close()
	conn := connect(t, es)
	plan := buildPlan(t, nil, es93)
	if _, err := Install(conn, plan, setupOpts()); err != nil {
		t.Fatal(err)
	}
	before := len(es.Writes())
	rep, err := Install(conn, buildPlan(t, nil, es93), setupOpts())
	if err != nil {
		t.Fatal(err)
	}
	if extra := writes(es)[before:]; len(extra) != 0 {
		t.Fatalf("second setup wrote %v", extra)
	}
	for _, r := range rep.Results {
		if r.Outcome != Unchanged {
			t.Errorf("%s: %s, want unchanged", r.Name, r.Outcome)
		}
	}
}

// fleetTemplate is an index template as Fleet installs it for one of the integration's data streams.
func fleetTemplate(dataset string) map[string]any {
	return map[string]any{
		"index_patterns": []any{"logs-m365_defender." + dataset + "-*"},
		"priority":       float64(200),
		"data_stream":    map[string]any{},
		"composed_of":    []any{"logs@mappings", "logs@settings", "logs-m365_defender." + dataset + "@package"},
		"_meta":          map[string]any{"managed_by": "fleet", "managed": true, "package": map[string]any{"name": "m365_defender"}},
	}
}

func TestClusterWithTheIntegrationKeepsItsTemplatesAndTransform(t *testing.T) {
	fleet := map[string]map[string]any{}
	var opts []stacktest.ESOption
	for _, ds := range []string{"alert", "incident", "vulnerability"} {
		fleet[ds] = fleetTemplate(ds)
		opts = append(opts, stacktest.WithIndexTemplate("logs-m365_defender."+ds, fleetTemplate(ds)))
	}
	opts = append(opts, stacktest.WithTransform("logs-m365_defender.latest_cdr_vulnerabilities-default-0.4.0",
		map[string]any{"id": "logs-m365_defender.latest_cdr_vulnerabilities-default-0.4.0"}))
	es := stacktest.NewElasticsearch(opts...)
	defer es.Close()

	rep, err := Install(connect(t, es), buildPlan(t, nil, es93), setupOpts())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range writes(es) {
		if strings.Contains(w, "logs-m365_defender.") || strings.Contains(w, "_transform") || strings.Contains(w, "security_solution") {
			t.Errorf("setup wrote to the integration's objects: %s", w)
		}
	}
	for ds, want := range fleet {
		if got := es.Template("logs-m365_defender." + ds); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("template logs-m365_defender.%s changed: %v", ds, got)
		}
	}
	if len(rep.Others) != 3 || !strings.Contains(rep.Others[0], "managed by fleet") {
		t.Errorf("report of the integration's templates: %q", rep.Others)
	}
	if o := outcomes(rep)["transform defenderbeat-latest_cdr_vulnerabilities"]; o != Skipped {
		t.Errorf("transform: %s, want skipped beside the integration's", o)
	}
	// The integration's templates keep governing their data streams.
	bulk(t, es, `{"create":{"_index":"logs-m365_defender.alert-default","_id":"a1"}}`, `{"event":{"id":"a1"}}`)
	if ds := es.DataStream("logs-m365_defender.alert-default"); ds == nil || ds.Template != "logs-m365_defender.alert" {
		t.Errorf("alert data stream created from %+v, want the integration's template", ds)
	}
}

func TestSamePriorityOverlapIsReportedWithElasticsearchsReason(t *testing.T) {
	es := stacktest.NewElasticsearch(stacktest.WithIndexTemplate("someone-elses", map[string]any{
		"index_patterns": []any{"logs-*-*"}, "priority": float64(150), "data_stream": map[string]any{},
	}))
	defer es.Close()
	_, err := Install(connect(t, es), buildPlan(t, nil, es93), setupOpts())
	if err == nil || !strings.Contains(err.Error(), "index template defenderbeat") || !strings.Contains(err.Error(), "same priority") {
		t.Fatalf("err = %v, want the template named with Elasticsearch's reason", err)
	}
}

func TestUpgradeReplacesWhatChanged(t *testing.T) {
	es := stacktest.NewElasticsearch()
	defer es.Close()
	conn := connect(t, es)
	if _, err := Install(conn, buildPlan(t, nil, es93), setupOpts()); err != nil {
		t.Fatal(err)
	}
	before := len(es.Writes())

	// A newer release: one more template setting and a transform running every minute.
	SetSources(overlay(t, map[string]string{
		"elasticsearch/transform/latest_cdr_vulnerabilities/transform.yml": strings.Replace(
			readSource(t, "elasticsearch/transform/latest_cdr_vulnerabilities/transform.yml"), "frequency: 5m", "frequency: 1m", 1),
	}))
	defer SetSources(os.DirFS("../../_meta"))
	rep, err := Install(conn, buildPlan(t, map[string]any{"setup.template.settings.index.codec": "best_compression"}, es93), setupOpts())
	if err != nil {
		t.Fatal(err)
	}
	got := outcomes(rep)
	want := map[string]Outcome{
		"index template defenderbeat": Replaced, "index template defenderbeat-vulnerability": Replaced,
		"ingest pipeline defenderbeat-final": Unchanged, "ILM policy defenderbeat-vulnerability": Unchanged,
		"transform defenderbeat-latest_cdr_vulnerabilities":             Replaced,
		"index security_solution-m365_defender.vulnerability_latest-v3": Unchanged,
	}
	for name, o := range want {
		if got[name] != o {
			t.Errorf("%s: %s, want %s", name, got[name], o)
		}
	}
	wantWrites := []string{
		"PUT /_index_template/defenderbeat",
		"PUT /_index_template/defenderbeat-vulnerability",
		"POST /_transform/defenderbeat-latest_cdr_vulnerabilities/_stop",
		"DELETE /_transform/defenderbeat-latest_cdr_vulnerabilities",
		"PUT /_transform/defenderbeat-latest_cdr_vulnerabilities",
		"POST /_transform/defenderbeat-latest_cdr_vulnerabilities/_start",
	}
	if extra := writes(es)[before:]; strings.Join(extra, "\n") != strings.Join(wantWrites, "\n") {
		t.Fatalf("upgrade wrote:\n%s\nwant:\n%s", strings.Join(extra, "\n"), strings.Join(wantWrites, "\n"))
	}
	if tr, started := es.Transform("defenderbeat-latest_cdr_vulnerabilities"); tr["frequency"] != "1m" || !started {
		t.Errorf("transform after upgrade: frequency %v, started %v", tr["frequency"], started)
	}
	if get(es.Template("defenderbeat"), "template", "settings", "index", "codec") != "best_compression" {
		t.Error("the template was not replaced")
	}
}

func TestChangedPolicyIsKeptUnlessOverwrite(t *testing.T) {
	es := stacktest.NewElasticsearch()
	defer es.Close()
	conn := connect(t, es)
	tuned := buildPlan(t, nil, es93)
	vuln := find(t, tuned.Policies, "defenderbeat-vulnerability")
	vuln.Body = map[string]any{"policy": map[string]any{"phases": map[string]any{"delete": map[string]any{"min_age": "30d", "actions": map[string]any{"delete": map[string]any{}}}}}}
	if _, err := Install(conn, Plan{Policies: []Object{vuln}}, setupOpts()); err != nil {
		t.Fatal(err)
	}

	rep, err := Install(conn, buildPlan(t, nil, es93), setupOpts())
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Results[1]; r.Name != "defenderbeat-vulnerability" || r.Outcome != Kept || !strings.Contains(r.Detail, "setup.ilm.overwrite") {
		t.Errorf("tuned policy: %v, want kept with a hint", r)
	}
	if deleteAfter(es.Policy("defenderbeat-vulnerability")) != "30d" {
		t.Error("the tuned policy was overwritten")
	}

	opts := setupOpts()
	opts.OverwritePolicies = true
	if _, err := Install(conn, buildPlan(t, nil, es93), opts); err != nil {
		t.Fatal(err)
	}
	if deleteAfter(es.Policy("defenderbeat-vulnerability")) != "7d" {
		t.Error("setup.ilm.overwrite did not replace the policy")
	}
}

func TestConnectCreatesWhatIsMissingAndLeavesTransformsToSetup(t *testing.T) {
	es := stacktest.NewElasticsearch()
	defer es.Close()
	conn := connect(t, es)
	connectOpts := InstallOptions{Mode: ModeConnect, BeatVersion: "9.3.0"}
	if _, err := Install(conn, buildPlan(t, nil, es93), connectOpts); err != nil {
		t.Fatal(err)
	}
	for _, w := range writes(es) {
		if strings.Contains(w, "_transform") || strings.Contains(w, "security_solution") {
			t.Errorf("connect installed %s", w)
		}
	}
	if es.Template("defenderbeat") == nil || es.Pipeline("defenderbeat-final") == nil || es.Policy("defenderbeat-vulnerability") == nil {
		t.Fatal("connect did not create the missing templates, pipeline and policies")
	}

	// The same version with other settings keeps what is there; a newer version upgrades it.
	before := len(es.Writes())
	other := buildPlan(t, map[string]any{"setup.template.settings.index.codec": "best_compression"}, es93)
	rep, err := Install(conn, other, connectOpts)
	if err != nil {
		t.Fatal(err)
	}
	if o := outcomes(rep)["index template defenderbeat"]; o != Kept || len(es.Writes()) != before {
		t.Fatalf("same version, other settings: %s, %d writes", o, len(es.Writes())-before)
	}
	newer := InstallOptions{Mode: ModeConnect, BeatVersion: "9.4.0"}
	newerPlan := buildPlanVersion(t, "9.4.0")
	rep, err = Install(conn, newerPlan, newer)
	if err != nil {
		t.Fatal(err)
	}
	if o := outcomes(rep)["index template defenderbeat"]; o != Replaced {
		t.Errorf("newer version: template %s, want replaced", o)
	}
	if o := outcomes(rep)["index template defenderbeat-vulnerability"]; o != Replaced {
		t.Errorf("newer version: vulnerability template %s, want replaced", o)
	}
}

func buildPlanVersion(t *testing.T, v string) Plan {
	t.Helper()
	info := testInfo()
	info.Version = v
	opts, err := OptionsFromConfig(info, nil, include.FieldsYML(), nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Build(opts, es93)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestServerlessSetupSendsNoILMRequest(t *testing.T) {
	es := stacktest.NewElasticsearch(stacktest.Serverless())
	defer es.Close()
	conn := connect(t, es)
	if !conn.IsServerless() {
		t.Fatal("the fake does not look serverless")
	}
	if _, err := Install(conn, buildPlan(t, nil, Target{Version: conn.GetVersion(), Serverless: true}), setupOpts()); err != nil {
		t.Fatal(err)
	}
	for _, r := range es.Requests() {
		if strings.HasPrefix(r.Path, "/_ilm") {
			t.Errorf("serverless setup called %s", r)
		}
	}
	if get(es.Template("defenderbeat-vulnerability"), "template", "lifecycle", "data_retention") != "7d" {
		t.Error("the vulnerability template has no 7-day data stream lifecycle")
	}
}

func overlay(t *testing.T, files map[string]string) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	base := os.DirFS("../../_meta")
	err := fs.WalkDir(base, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(base, p)
		m[p] = &fstest.MapFile{Data: raw}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, content := range files {
		m[p] = &fstest.MapFile{Data: []byte(content)}
	}
	return m
}

func readSource(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile("../../_meta/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}
