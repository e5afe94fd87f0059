package fleet

import (
	"archive/zip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"
	"gopkg.in/yaml.v2"

	"github.com/defenderbeat/defenderbeat/beater"
)

const repoRoot = "../.."

func build(t *testing.T) string {
	t.Helper()
	dir, err := ForBeat(repoRoot, t.TempDir(), "9.3.0").Build()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func readYAML(t *testing.T, name string, into any) {
	t.Helper()
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

type dataStreamManifest struct {
	Type          string `yaml:"type"`
	Dataset       string `yaml:"dataset"`
	ILMPolicy     string `yaml:"ilm_policy"`
	Elasticsearch struct {
		IndexTemplate struct {
			Settings struct {
				Index struct {
					Mapping struct {
						TotalFields struct {
							Limit int `yaml:"limit"`
						} `yaml:"total_fields"`
					} `yaml:"mapping"`
				} `yaml:"index"`
			} `yaml:"settings"`
		} `yaml:"index_template"`
	} `yaml:"elasticsearch"`
	Streams []struct {
		Input        string `yaml:"input"`
		TemplatePath string `yaml:"template_path"`
		Vars         []Var  `yaml:"vars"`
	} `yaml:"streams"`
}

// TestPackageValidates builds the package and runs package-spec's validator on it, then checks
// that it lands documents where the m365_defender integration does and runs every input type.
func TestPackageValidates(t *testing.T) {
	dir := build(t)
	if err := Validate(dir); err != nil {
		t.Fatalf("package-spec refuses %s:\n%v", dir, err)
	}

	var inputs []string
	for _, ds := range []string{"alert", "incident", "event", "vulnerability"} {
		var m dataStreamManifest
		readYAML(t, filepath.Join(dir, "data_stream", ds, "manifest.yml"), &m)
		if m.Type != "logs" || m.Dataset != "m365_defender."+ds {
			t.Errorf("%s: type %q dataset %q, want logs and m365_defender.%s", ds, m.Type, m.Dataset, ds)
		}
		for _, s := range m.Streams {
			inputs = append(inputs, s.Input)
			if _, err := os.Stat(filepath.Join(dir, "data_stream", ds, "agent", "stream", s.TemplatePath)); err != nil {
				t.Errorf("%s: stream %s: %v", ds, s.Input, err)
			}
		}
		for _, f := range []string{"base-fields.yml", "ecs.yml", "fields.yml"} {
			if _, err := os.Stat(filepath.Join(dir, "data_stream", ds, "fields", f)); err != nil {
				t.Error(err)
			}
		}
		if m.Elasticsearch.IndexTemplate.Settings.Index.Mapping.TotalFields.Limit < 2048 {
			t.Errorf("%s: total fields limit %d, below the fields package-spec allows", ds, m.Elasticsearch.IndexTemplate.Settings.Index.Mapping.TotalFields.Limit)
		}
		var pipeline struct {
			Processors []map[string]struct {
				Field string `yaml:"field"`
			} `yaml:"processors"`
		}
		readYAML(t, filepath.Join(dir, "data_stream", ds, "elasticsearch", "ingest_pipeline", "default.yml"), &pipeline)
		if len(pipeline.Processors) != 1 || pipeline.Processors[0]["set"].Field != "event.ingested" {
			t.Errorf("%s: the default pipeline is %+v, want one set of event.ingested", ds, pipeline.Processors)
		}
		if ds == "vulnerability" && m.ILMPolicy != "logs-defenderbeat.vulnerability-default_policy" {
			t.Errorf("vulnerability: ilm_policy %q", m.ILMPolicy)
		}
	}
	slices.Sort(inputs)
	want := beater.InputTypes()
	slices.Sort(want)
	if !slices.Equal(inputs, want) {
		t.Errorf("streams run %v, the beat has %v", inputs, want)
	}
	for _, f := range []string{
		"data_stream/vulnerability/elasticsearch/ilm/default_policy.json",
		"elasticsearch/transform/latest_cdr_vulnerabilities/transform.yml",
		"kibana/dashboard/defenderbeat-overview.json",
		"docs/README.md",
	} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestValidationRefusesABrokenPackage: the validator is really run on what was built.
func TestValidationRefusesABrokenPackage(t *testing.T) {
	dir := build(t)
	manifest := filepath.Join(dir, "manifest.yml")
	var m map[string]any
	readYAML(t, manifest, &m)
	delete(m, "title")
	raw, _ := yaml.Marshal(m)
	if err := os.WriteFile(manifest, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Validate(dir)
	if err == nil || !strings.Contains(err.Error(), "title is required") {
		t.Fatalf("a manifest without title: %v", err)
	}
}

func TestZipHoldsOneFolder(t *testing.T) {
	dir := build(t)
	path, err := Zip(dir)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	found := false
	for _, f := range zr.File {
		if !strings.HasPrefix(f.Name, "defenderbeat-9.3.0/") {
			t.Fatalf("%s is outside the package folder", f.Name)
		}
		found = found || f.Name == "defenderbeat-9.3.0/manifest.yml"
	}
	if !found {
		t.Fatal("no manifest.yml in the zip")
	}
}

func streamVarsByInput(t *testing.T, dir string) map[string][]Var {
	t.Helper()
	out := map[string][]Var{}
	matches, _ := filepath.Glob(filepath.Join(dir, "data_stream", "*", "manifest.yml"))
	for _, m := range matches {
		var man dataStreamManifest
		readYAML(t, m, &man)
		for _, s := range man.Streams {
			out[s.Input] = s.Vars
		}
	}
	return out
}

// Credentials are Fleet secrets: stored apart, never shown again, never in the policy.
func TestCredentialsAreSecretVars(t *testing.T) {
	byInput := streamVarsByInput(t, build(t))
	want := map[string][]string{
		"defender-alert":         {"client_secret", "certificate_password"},
		"defender-incident":      {"client_secret", "certificate_password"},
		"defender-vulnerability": {"client_secret"},
		"defender-event":         {"connection_string", "client_secret", "certificate_password", "storage_account_key", "storage_account_connection_string"},
		"defender-event-storage": {"storage_account_key", "storage_account_connection_string", "client_secret", "certificate_password"},
	}
	for input, names := range want {
		vars := byInput[input]
		for _, name := range names {
			i := slices.IndexFunc(vars, func(v Var) bool { return v.Name == name })
			if i < 0 {
				t.Errorf("%s: no variable %s", input, name)
				continue
			}
			if v := vars[i]; !v.Secret || v.Type != "password" || v.Default != nil {
				t.Errorf("%s: %s is %+v, want a secret password without default", input, name, v)
			}
		}
		for _, v := range vars {
			if v.Secret && !slices.Contains(names, v.Name) {
				t.Errorf("%s: %s is secret", input, v.Name)
			}
		}
	}
}

// minimalSettings are what each input needs besides the package's defaults to pass the beat's
// configuration check.
var minimalSettings = map[string]map[string]any{
	"defender-alert":         {"tenant_id": "t", "client_id": "c", "client_secret": "s"},
	"defender-incident":      {"tenant_id": "t", "client_id": "c", "client_secret": "s"},
	"defender-vulnerability": {"tenant_id": "t", "client_id": "c", "client_secret": "s"},
	"defender-event": {
		"eventhub":          "insights_defender_streaming",
		"connection_string": "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=a2V5",
		"storage_account":   "contoso", "storage_account_key": "a2V5",
	},
	"defender-event-storage": {"storage_account": "contoso", "storage_account_key": "a2V5"},
}

// Every variable is an option its input accepts, and an input configured with every default
// the package sets passes the beat's own check: the defaults are the beat's, not a copy.
func TestVarDefaultsPassTheBeatsCheck(t *testing.T) {
	byInput := streamVarsByInput(t, build(t))
	for _, input := range beater.InputTypes() {
		vars := byInput[input]
		if len(vars) < 10 {
			t.Errorf("%s: only %d variables", input, len(vars))
		}
		settings := map[string]any{"type": input, "id": "from-fleet"}
		for _, v := range vars {
			if !beater.InputAccepts(input, v.Name) {
				t.Errorf("%s: variable %s is no option of the input", input, v.Name)
			}
			if v.Default != nil {
				settings[v.Name] = v.Default
			}
		}
		for k, v := range minimalSettings[input] {
			settings[k] = v
		}
		cfg, err := conf.NewConfigFrom(settings)
		if err != nil {
			t.Fatal(err)
		}
		if err := beater.CheckInputs([]*conf.C{cfg}); err != nil {
			t.Errorf("%s with the package's defaults: %v", input, err)
		}
	}
}

func TestIncidentInheritsAlertConnectionOptions(t *testing.T) {
	vars := streamVarsByInput(t, build(t))["defender-incident"]
	for _, name := range []string{"auth_type", "cloud", "login_url", "proxy_url", "ssl", "http_client_timeout"} {
		if !slices.ContainsFunc(vars, func(v Var) bool { return v.Name == name }) {
			t.Errorf("defender-incident has no variable %s", name)
		}
	}
	if slices.ContainsFunc(vars, func(v Var) bool { return v.Name == "service_sources" }) {
		t.Error("defender-incident offers service_sources, which its snippet excepts")
	}
	// Its own defaults win over the alert input's.
	i := slices.IndexFunc(vars, func(v Var) bool { return v.Name == "batch_size" })
	if i < 0 || vars[i].Default != 50 {
		t.Errorf("defender-incident batch_size: %+v", vars)
	}
}

func TestParseSnippet(t *testing.T) {
	inputs, err := ParseSnippet(`# Things from somewhere.
- type: defender-thing
  # Stable.
  id: things
  tenant_id: ${TENANT:}       # required: the tenant
  client_secret: ${SECRET:}
  #interval: 5m                # how often
  #                              # and more
  #enabled_things: true
  #proxy_url: http://proxy:3128   # example
  #filter: "a # b"             # example; OData
  #tables: []                  # example: [A, B]
  #ssl.certificate_authorities: ["/ca.pem"]   # example
  #storage_account_key: ${KEY}
  #batch_size: 50
  #namespace_host: a.example   # example; required with Entra ID auth types
  # Other options are those of defender-alert, except service_sources and filter
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) != 1 || inputs[0].Type != "defender-thing" || inputs[0].Description != "Things from somewhere." || inputs[0].Inherits != "defender-alert" ||
		!slices.Equal(inputs[0].Except, []string{"service_sources", "filter"}) {
		t.Fatalf("%+v", inputs)
	}
	got := map[string]Option{}
	for _, o := range inputs[0].Options {
		got[o.Name] = o
	}
	check := func(name string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: %+v", name, got[name])
		}
	}
	check("id", got["id"].Set && got["id"].Description == "Stable.")
	check("tenant_id", got["tenant_id"].Required && got["tenant_id"].Set && !got["tenant_id"].Default && got["tenant_id"].Description == "the tenant")
	check("client_secret", got["client_secret"].Secret() && !got["client_secret"].Default)
	check("interval", got["interval"].Default && got["interval"].Value == "5m" && got["interval"].Description == "how often; and more")
	check("enabled_things", got["enabled_things"].Default && got["enabled_things"].Value == true)
	check("proxy_url", !got["proxy_url"].Default && got["proxy_url"].Example == "http://proxy:3128")
	check("filter", !got["filter"].Default && got["filter"].Value == "a # b" && got["filter"].Description == "OData")
	check("tables", !got["tables"].Default && got["tables"].Example == "")
	check("ssl.certificate_authorities", !got["ssl.certificate_authorities"].Default)
	check("storage_account_key", got["storage_account_key"].Secret() && !got["storage_account_key"].Default)
	check("batch_size", got["batch_size"].Default && got["batch_size"].Value == 50)
	check("namespace_host", !got["namespace_host"].Required && got["namespace_host"].Description == "required with Entra ID auth types")

	if _, err := ParseSnippet("- type: x\n  not an option\n"); err == nil {
		t.Error("a line that is neither option nor comment is accepted")
	}
}

func TestStreamTemplateRendersEveryVar(t *testing.T) {
	inputs, err := ReadInputs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		vars, tmpl := streamVars(in)
		for _, v := range vars {
			if !strings.Contains(tmpl, "\n"+v.Name+":") {
				t.Errorf("%s: the template does not render %s", in.Type, v.Name)
			}
		}
	}
}

// Options whose default follows cloud (or a file path, a proxy) are examples in the snippets:
// as policy defaults they would override the cloud a user picks.
func TestCloudDerivedOptionsHaveNoDefault(t *testing.T) {
	byInput := streamVarsByInput(t, build(t))
	derived := []string{"login_url", "request_url", "token_scopes", "authority_host", "resource_manager_endpoint", "storage_account_container", "download_hosts", "proxy_url", "certificate", "federated_token_file"}
	seen := 0
	for input, vars := range byInput {
		for _, v := range vars {
			if slices.Contains(derived, v.Name) {
				seen++
				if v.Default != nil {
					t.Errorf("%s: %s defaults to %v", input, v.Name, v.Default)
				}
			}
		}
	}
	if seen < 15 {
		t.Errorf("only %d of those variables found", seen)
	}
}
