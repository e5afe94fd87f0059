package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/defenderbeat/defenderbeat/internal/stacktest"
)

// stackConfig points the beat at fake Elasticsearch and Kibana servers.
func stackConfig(t *testing.T, es *stacktest.Elasticsearch, kb *stacktest.Kibana, extra map[string]any) string {
	t.Helper()
	cfg := map[string]any{
		"output.elasticsearch.hosts": []string{es.URL()},
		"setup.kibana.host":          kb.URL(),
	}
	for k, v := range extra {
		cfg[k] = v
	}
	return writeConfig(t, cfg)
}

func requestList(reqs []stacktest.Request) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.String())
	}
	return out
}

// The binary runs in an empty directory: everything it installs is embedded.
func TestSetupInstallsTheIntegrationsLayoutAndDashboards(t *testing.T) {
	es, kb := stacktest.NewElasticsearch(), stacktest.NewKibana()
	defer es.Close()
	defer kb.Close()
	cfg := stackConfig(t, es, kb, nil)

	r := run(t, "", "setup", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	wantWrites := []string{
		"PUT /_ilm/policy/defenderbeat",
		"PUT /_ilm/policy/defenderbeat-vulnerability",
		"PUT /_ingest/pipeline/defenderbeat-final",
		"PUT /_index_template/defenderbeat",
		"PUT /_index_template/defenderbeat-vulnerability",
		"PUT /security_solution-m365_defender.vulnerability_latest-v3",
		"PUT /_transform/defenderbeat-latest_cdr_vulnerabilities",
		"POST /_transform/defenderbeat-latest_cdr_vulnerabilities/_start",
	}
	if got := requestList(es.Writes()); strings.Join(got, "\n") != strings.Join(wantWrites, "\n") {
		t.Fatalf("Elasticsearch writes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantWrites, "\n"))
	}
	for _, want := range []string{
		"index template defenderbeat (logs-m365_defender.*-*, priority 150): created",
		"index template defenderbeat-vulnerability (logs-m365_defender.vulnerability-*, priority 151): created",
		"ILM policy defenderbeat-vulnerability (logs-m365_defender.vulnerability-*): created",
		"transform defenderbeat-latest_cdr_vulnerabilities (logs-m365_defender.vulnerability-* into security_solution-m365_defender.vulnerability_latest-v3): created; started",
		"data view logs-m365_defender.*: loaded",
		"dashboard [defenderbeat] Alerts (defenderbeat-alerts): loaded",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("setup does not say %q:\n%s", want, r.stdout)
		}
	}
	shipped, _ := filepath.Glob("../_meta/kibana/7/*/*.json")
	if objs := kb.Objects(); len(objs) != len(shipped) || len(objs) < 7 {
		t.Fatalf("Kibana holds %v, want the %d shipped objects", objs, len(shipped))
	}

	// Again: nothing changes in Elasticsearch, and Kibana gets the same objects.
	writes := len(es.Writes())
	r = run(t, "", "setup", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("second setup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if extra := requestList(es.Writes()[writes:]); len(extra) != 0 {
		t.Fatalf("second setup wrote %v", extra)
	}
	if strings.Count(r.stdout, ": unchanged") != 7 || !strings.Contains(r.stdout, "unchanged; running") {
		t.Errorf("second setup does not report everything unchanged:\n%s", r.stdout)
	}
}

func TestSetupFlagsSelectSteps(t *testing.T) {
	for _, tc := range []struct {
		flag            string
		esWrites        []string
		kibanaRequested bool
	}{
		{"--pipelines", []string{"PUT /_ingest/pipeline/defenderbeat-final"}, false},
		{"--dashboards", nil, true},
		{"--index-management", nil, false}, // checked below: everything but Kibana
	} {
		t.Run(tc.flag, func(t *testing.T) {
			es, kb := stacktest.NewElasticsearch(), stacktest.NewKibana()
			defer es.Close()
			defer kb.Close()
			r := run(t, "", "setup", tc.flag, "-c", stackConfig(t, es, kb, nil))
			if r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			got := requestList(es.Writes())
			if tc.flag == "--index-management" {
				if len(got) != 8 {
					t.Errorf("--index-management wrote %v", got)
				}
			} else if strings.Join(got, ",") != strings.Join(tc.esWrites, ",") {
				t.Errorf("Elasticsearch writes %v, want %v", got, tc.esWrites)
			}
			if tc.flag == "--dashboards" && len(es.Requests()) != 0 {
				t.Errorf("--dashboards talked to Elasticsearch: %v", requestList(es.Requests()))
			}
			if (len(kb.Requests()) > 0) != tc.kibanaRequested {
				t.Errorf("Kibana requests: %v", requestList(kb.Requests()))
			}
		})
	}
}

func TestSetupHonoursTemplateAndILMSettings(t *testing.T) {
	es, kb := stacktest.NewElasticsearch(), stacktest.NewKibana()
	defer es.Close()
	defer kb.Close()
	cfg := stackConfig(t, es, kb, map[string]any{
		"setup.template.name":     "xdr",
		"setup.template.priority": 160,
		"setup.ilm.policy_name":   "xdr-logs",
	})
	if r := run(t, "", "setup", "--index-management", "-c", cfg); r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	tmpl := es.Template("xdr-vulnerability")
	if tmpl == nil || tmpl["priority"] != float64(161) || get(tmpl, "template.settings.index.lifecycle.name") != "xdr-logs-vulnerability" {
		t.Fatalf("xdr-vulnerability = %v", tmpl)
	}
	if es.Policy("xdr-logs") == nil {
		t.Error("the ILM policy is not named after setup.ilm.policy_name")
	}
}

func TestSetupNeedsTheElasticsearchOutput(t *testing.T) {
	cfg := writeConfig(t, map[string]any{"output.console.enabled": true})
	r := run(t, "", "setup", "--index-management", "-c", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "output.elasticsearch") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestExportPrintsWhatSetupInstalls(t *testing.T) {
	cfg := writeConfig(t, map[string]any{"output.console.enabled": true})
	for cmd, want := range map[string][]string{
		"template":   {"defenderbeat", "defenderbeat-vulnerability"},
		"ilm-policy": {"defenderbeat", "defenderbeat-vulnerability"},
		"pipelines":  {"defenderbeat-final"},
		"transforms": {"defenderbeat-latest_cdr_vulnerabilities"},
	} {
		r := run(t, "", "export", cmd, "-c", cfg)
		if r.code != 0 {
			t.Fatalf("export %s: exit %d: %s", cmd, r.code, r.stderr)
		}
		var got map[string]map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("export %s: %v\n%s", cmd, err, r.stdout)
		}
		var names []string
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("export %s names %v, want %v", cmd, names, want)
		}
		switch cmd {
		case "ilm-policy":
			if get(got["defenderbeat-vulnerability"], "policy.phases.delete.min_age") != "7d" {
				t.Errorf("vulnerability policy: %v", got["defenderbeat-vulnerability"])
			}
		case "transforms":
			tr := got["defenderbeat-latest_cdr_vulnerabilities"]
			if get(tr, "transform.dest.index") != "security_solution-m365_defender.vulnerability_latest-v3" ||
				get(tr, "destination_index") == nil {
				t.Errorf("transform export: %v", tr)
			}
		}
	}

	r := run(t, "", "export", "index-pattern", "-c", cfg)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("export index-pattern: exit %d, %d lines:\n%s", r.code, len(lines), r.stdout)
	}
	for _, l := range lines {
		var view map[string]any
		if err := json.Unmarshal([]byte(l), &view); err != nil || view["type"] != "index-pattern" || get(view, "attributes.title") != view["id"] {
			t.Errorf("data view line %s (%v)", l, err)
		}
	}

	dir := t.TempDir()
	if r := run(t, "", "export", "template", "--noilm", "--dir", dir, "-c", cfg); r.code != 0 {
		t.Fatalf("export template --dir: exit %d: %s", r.code, r.stderr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "template", "defenderbeat.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	if get(tmpl, "template.settings.index.lifecycle") != nil {
		t.Error("--noilm template names a lifecycle policy")
	}
}

// A dashboard exported from Kibana lands where setup reads it from, byte for byte as shipped.
func TestExportDashboardRoundTrips(t *testing.T) {
	es, kb := stacktest.NewElasticsearch(), stacktest.NewKibana()
	defer es.Close()
	defer kb.Close()
	cfg := stackConfig(t, es, kb, nil)
	if r := run(t, "", "setup", "--dashboards", "-c", cfg); r.code != 0 {
		t.Fatalf("setup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sources, _ := filepath.Glob("../_meta/kibana/7/dashboard/*.json")
	if len(sources) < 5 {
		t.Fatalf("dashboards: %v", sources)
	}
	folder := t.TempDir()
	for _, src := range sources {
		id := strings.TrimSuffix(filepath.Base(src), ".json")
		r := run(t, "", "export", "dashboard", "--id", id, "--folder", folder, "-c", cfg)
		if r.code != 0 {
			t.Fatalf("export dashboard %s: exit %d\n%s%s", id, r.code, r.stdout, r.stderr)
		}
		want, _ := os.ReadFile(src)
		got, err := os.ReadFile(filepath.Join(folder, "_meta", "kibana", "7", "dashboard", id+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s does not round-trip through Kibana", id)
		}
	}
}
