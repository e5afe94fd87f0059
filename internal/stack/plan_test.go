package stack

import (
	"os"
	"strings"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/version"

	"github.com/defenderbeat/defenderbeat/include"
	"github.com/defenderbeat/defenderbeat/internal/fieldscheck"
)

func TestMain(m *testing.M) {
	SetSources(os.DirFS("../../_meta"))
	os.Exit(m.Run())
}

func testInfo() beat.Info {
	return beat.Info{Beat: "defenderbeat", IndexPrefix: "defenderbeat", Version: "9.3.0", ElasticLicensed: true, Logger: logp.NewNopLogger()}
}

var es93 = Target{Version: *version.MustNew("9.3.0")}

func buildPlan(t *testing.T, settings map[string]any, target Target) Plan {
	t.Helper()
	var root *conf.C
	if settings != nil {
		root = conf.MustNewConfigFrom(settings)
	}
	opts, err := OptionsFromConfig(testInfo(), root, include.FieldsYML(), nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Build(opts, target)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func find(t *testing.T, objs []Object, name string) Object {
	t.Helper()
	for _, o := range objs {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("no object %s", name)
	return Object{}
}

func TestPlanGivesTheIntegrationsLayout(t *testing.T) {
	plan := buildPlan(t, nil, es93)
	var names []string
	for _, o := range plan.Objects() {
		names = append(names, string(o.Kind)+" "+o.Name)
	}
	want := []string{
		"ILM policy defenderbeat",
		"ILM policy defenderbeat-vulnerability",
		"ingest pipeline defenderbeat-final",
		"index template defenderbeat",
		"index template defenderbeat-vulnerability",
		"index security_solution-m365_defender.vulnerability_latest-v3",
		"transform defenderbeat-latest_cdr_vulnerabilities",
	}
	if strings.Join(names, "\n") != strings.Join(want, "\n") {
		t.Fatalf("objects:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}

	shared := find(t, plan.Templates, "defenderbeat")
	if p := patterns(shared.Body); len(p) != 1 || p[0] != "logs-m365_defender.*-*" {
		t.Errorf("shared patterns = %v", p)
	}
	if get(shared.Body, "priority") != float64(150) || get(shared.Body, "data_stream") == nil {
		t.Errorf("shared template: priority %v, data_stream %v", get(shared.Body, "priority"), get(shared.Body, "data_stream"))
	}
	index := get(shared.Body, "template", "settings", "index")
	if get(index, "final_pipeline") != "defenderbeat-final" || get(index, "lifecycle", "name") != "defenderbeat" {
		t.Errorf("shared index settings = %v", index)
	}

	vuln := find(t, plan.Templates, "defenderbeat-vulnerability")
	if p := patterns(vuln.Body); len(p) != 1 || p[0] != "logs-m365_defender.vulnerability-*" {
		t.Errorf("vulnerability patterns = %v", p)
	}
	if get(vuln.Body, "priority") != 151 && get(vuln.Body, "priority") != float64(151) {
		t.Errorf("vulnerability priority = %v, want one above the shared 150 and below Fleet's 200", get(vuln.Body, "priority"))
	}
	if get(vuln.Body, "template", "settings", "index", "lifecycle", "name") != "defenderbeat-vulnerability" {
		t.Errorf("vulnerability lifecycle = %v", get(vuln.Body, "template", "settings", "index", "lifecycle"))
	}
	if get(vuln.Body, "template", "settings", "index", "final_pipeline") != "defenderbeat-final" {
		t.Error("vulnerability template lacks the final pipeline")
	}
	policy := find(t, plan.Policies, "defenderbeat-vulnerability")
	if deleteAfter(policy.Body) != "7d" {
		t.Errorf("vulnerability policy deletes after %q, want 7d", deleteAfter(policy.Body))
	}

	tr := plan.Transforms[0]
	if get(tr.Body, "dest", "index") != "security_solution-m365_defender.vulnerability_latest-v3" ||
		get(tr.Body, "sync", "time", "field") != "event.ingested" || get(tr.Body, "latest") == nil {
		t.Errorf("transform body = %v", tr.Body)
	}
	if get(tr.Dest.Body, "aliases", "security_solution-m365_defender.vulnerability_latest") == nil {
		t.Errorf("destination index aliases = %v", get(tr.Dest.Body, "aliases"))
	}
	if get(tr.Dest.Body, "mappings", "properties", "data_stream", "properties", "namespace", "type") != "keyword" {
		t.Error("the destination index maps data_stream.namespace as constant_keyword: a second namespace would be refused")
	}
	if get(tr.Dest.Body, "settings", "index", "lifecycle") != nil || get(tr.Dest.Body, "settings", "index", "final_pipeline") != nil {
		t.Errorf("destination index settings carry data stream settings: %v", get(tr.Dest.Body, "settings"))
	}
}

// Every field the templates map comes from fields.yml, and every dataset field is there.
func TestTemplateMapsEveryDeclaredField(t *testing.T) {
	plan := buildPlan(t, nil, es93)
	shared := find(t, plan.Templates, "defenderbeat")
	props, _ := get(shared.Body, "template", "mappings", "properties").(map[string]any)
	schema, err := fieldscheck.Load("../../include/fields.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"m365_defender.alert.severity", "m365_defender.incident.status",
		"m365_defender.vulnerability.exploitability_level", "vulnerability.id", "resource.id", "event.ingested"} {
		if schema.Type(field) == "" {
			t.Fatalf("%s is not in fields.yml", field)
		}
		if mapped := get(props, strings.Split(strings.ReplaceAll(field, ".", ".properties."), ".")...); mapped == nil {
			t.Errorf("%s is declared but not mapped", field)
		}
	}
}

func TestPlanHonoursSetupSettings(t *testing.T) {
	plan := buildPlan(t, map[string]any{
		"setup.template.name":                            "xdr",
		"setup.template.priority":                        170,
		"setup.template.settings.index.number_of_shards": 3,
		"setup.ilm.policy_name":                          "xdr-logs",
	}, es93)
	shared := find(t, plan.Templates, "xdr")
	if get(shared.Body, "priority") != float64(170) || get(shared.Body, "template", "settings", "index", "number_of_shards") != float64(3) {
		t.Errorf("shared = priority %v, shards %v", get(shared.Body, "priority"), get(shared.Body, "template", "settings", "index", "number_of_shards"))
	}
	if get(shared.Body, "template", "settings", "index", "lifecycle", "name") != "xdr-logs" {
		t.Errorf("lifecycle = %v", get(shared.Body, "template", "settings", "index", "lifecycle"))
	}
	vuln := find(t, plan.Templates, "xdr-vulnerability")
	if get(vuln.Body, "priority") != 171 && get(vuln.Body, "priority") != float64(171) {
		t.Errorf("vulnerability priority = %v", get(vuln.Body, "priority"))
	}
	find(t, plan.Policies, "xdr-logs-vulnerability")

	off := buildPlan(t, map[string]any{"setup.ilm.enabled": false, "setup.template.enabled": false}, es93)
	if len(off.Policies) != 0 || len(off.Templates) != 0 || len(off.Transforms) != 0 || len(off.Notes) != 2 {
		t.Errorf("with ILM and templates off: %d policies, %d templates, %d transforms, notes %q",
			len(off.Policies), len(off.Templates), len(off.Transforms), off.Notes)
	}
}

func TestServerlessUsesDataStreamLifecycles(t *testing.T) {
	plan := buildPlan(t, nil, Target{Version: *version.MustNew("9.3.0"), Serverless: true})
	if len(plan.Policies) != 0 {
		t.Fatalf("serverless plan has ILM policies: %v", plan.Policies)
	}
	vuln := find(t, plan.Templates, "defenderbeat-vulnerability")
	if get(vuln.Body, "template", "lifecycle", "data_retention") != "7d" {
		t.Errorf("vulnerability lifecycle = %v", get(vuln.Body, "template", "lifecycle"))
	}
	shared := find(t, plan.Templates, "defenderbeat")
	if get(shared.Body, "template", "settings", "index", "lifecycle") != nil || get(shared.Body, "template", "settings", "index", "number_of_shards") != nil {
		t.Errorf("serverless template carries stateful settings: %v", get(shared.Body, "template", "settings", "index"))
	}
	if _, err := Build(mustOptions(t, map[string]any{"setup.ilm.enabled": true}), Target{Serverless: true}); err == nil {
		t.Error("an explicit setup.ilm.enabled on serverless was accepted")
	}
	if _, err := Build(mustOptions(t, map[string]any{"setup.dsl.enabled": true}), es93); err == nil {
		t.Error("setup.dsl.enabled on a stateful cluster was accepted")
	}
}

func mustOptions(t *testing.T, settings map[string]any) Options {
	t.Helper()
	opts, err := OptionsFromConfig(testInfo(), conf.MustNewConfigFrom(settings), include.FieldsYML(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}
