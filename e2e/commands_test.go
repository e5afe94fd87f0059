package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"
)

const alertLine = `{"id":"da1","providerAlertId":"p1","incidentId":"7","status":"new","severity":"high","serviceSource":"microsoftDefenderForEndpoint","detectionSource":"antivirus","tenantId":"t1","title":"Test","category":"Execution","createdDateTime":"2024-01-02T03:04:05.1234567Z","lastUpdateDateTime":"2024-01-02T03:05:05.1234567Z","firstActivityDateTime":"2024-01-02T03:00:00Z","lastActivityDateTime":"2024-01-02T03:01:00Z","evidence":[],"mitreTechniques":["T1059"]}`

func TestTransformCommandContract(t *testing.T) {
	t.Run("one record gives one document", func(t *testing.T) {
		r := run(t, alertLine+"\n", "transform", "--dataset", "alert", "--tags", "forwarded,m365_defender-alert")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 1 {
			t.Fatalf("%d lines, want 1:\n%s", len(lines), r.stdout)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(lines[0]), &doc); err != nil {
			t.Fatal(err)
		}
		if get(doc, "event.id") != "da1" || get(doc, "@timestamp") == nil {
			t.Fatalf("unexpected document: %v", doc)
		}
		if tags, _ := doc["tags"].([]any); len(tags) != 2 {
			t.Fatalf("tags = %v, want exactly the two given", doc["tags"])
		}
		for _, absent := range []string{"@metadata", "agent", "input", "data_stream", "host.hostname"} {
			if get(doc, absent) != nil {
				t.Fatalf("document carries %s: %v", absent, doc)
			}
		}
		if get(doc, "event.original") != nil {
			t.Fatal("event.original kept without the preserve_original_event tag")
		}
	})
	t.Run("a page gives one line per record and an empty page null", func(t *testing.T) {
		page := `{"value":[` + alertLine + `,` + strings.Replace(alertLine, `"da1"`, `"da2"`, 1) + `]}` + "\n" + `{"value":[]}` + "\n"
		r := run(t, page, "transform", "--dataset", "alert")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 3 || lines[2] != "null" {
			t.Fatalf("exit %d, lines %q", r.code, lines)
		}
	})
	t.Run("a malformed line gives an error document and exit 1", func(t *testing.T) {
		r := run(t, "{not json\n"+alertLine+"\n", "transform", "--dataset", "alert")
		if r.code != 1 {
			t.Fatalf("exit %d, want 1", r.code)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 {
			t.Fatalf("want the error document and the good one, got %q", lines)
		}
		var doc map[string]any
		_ = json.Unmarshal([]byte(lines[0]), &doc)
		if get(doc, "event.kind") != "pipeline_error" || get(doc, "event.original") != "{not json" || get(doc, "error.message") == nil {
			t.Fatalf("error document: %v", doc)
		}
		if !strings.Contains(r.stderr, "line 1") {
			t.Fatalf("stderr does not say which line: %q", r.stderr)
		}
	})
	t.Run("usage errors exit 2", func(t *testing.T) {
		if r := run(t, "", "transform", "--dataset", "nope"); r.code != 2 {
			t.Fatalf("unknown dataset: exit %d, want 2", r.code)
		}
	})
}

func writeConfig(t *testing.T, cfg map[string]any) string { return writeConfigB(t, cfg) }

func writeConfigB(t testing.TB, cfg map[string]any) string {
	t.Helper()
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "defenderbeat.yml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestInvalidConfigReportsEveryProblem(t *testing.T) {
	path := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{
			map[string]any{"type": "defender-alert", "batch_size": 5000},
			map[string]any{"type": "defender-incident", "id": "inc", "tenant_id": "t", "client_id": "c", "cloud": "mars"},
			map[string]any{"type": "defender-nope", "id": "x"},
		},
		"output.console.enabled": true,
	})
	r := run(t, "", "test", "config", "-c", path)
	if r.code == 0 {
		t.Fatal("invalid config accepted")
	}
	all := r.stdout + r.stderr
	for _, want := range []string{"inputs[0]", "id: required", "batch_size", "client_secret", "inputs[1]", "cloud", "inputs[2]", "defender-nope"} {
		if !strings.Contains(all, want) {
			t.Errorf("output does not mention %q:\n%s", want, all)
		}
	}
}

func TestRunWithoutCredentialsIsAConfigError(t *testing.T) {
	path := writeConfig(t, map[string]any{
		"defenderbeat.inputs":    []any{map[string]any{"type": "defender-alert", "id": "a"}},
		"output.console.enabled": true,
	})
	r := run(t, "", "-e", "-c", path)
	if r.code == 0 {
		t.Fatal("a run without credentials started")
	}
	for _, want := range []string{"tenant_id", "client_id", "client_secret"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, r.stderr)
		}
	}
}

func TestExportTemplateHasEveryDatasetField(t *testing.T) {
	cfg := writeConfig(t, map[string]any{"output.console.enabled": true})
	r := run(t, "", "export", "template", "-c", cfg)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var templates map[string]map[string]any // keyed by template name
	if err := json.Unmarshal([]byte(r.stdout), &templates); err != nil {
		t.Fatal(err)
	}
	props, _ := get(templates["defenderbeat"], "template.mappings.properties").(map[string]any)
	files, _ := filepath.Glob("../module/*/_meta/fields.yml")
	if len(files) < 2 {
		t.Fatalf("found %d module fields files", len(files))
	}
	for _, f := range files {
		for _, field := range leafFields(t, f) {
			if !hasMapping(props, field) {
				t.Errorf("%s: %s is not in the exported template", f, field)
			}
		}
	}
}

// leafFields lists the full names of the non-group fields a fields.yml declares.
func leafFields(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type field struct {
		Name   string  `yaml:"name"`
		Type   string  `yaml:"type"`
		Fields []field `yaml:"fields"`
	}
	var keys []struct {
		Fields []field `yaml:"fields"`
	}
	if err := yaml.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, fs []field)
	walk = func(prefix string, fs []field) {
		for _, f := range fs {
			name := f.Name
			if prefix != "" {
				name = prefix + "." + f.Name
			}
			if f.Type == "group" || (f.Type == "" && len(f.Fields) > 0) {
				walk(name, f.Fields)
				continue
			}
			out = append(out, name)
		}
	}
	for _, k := range keys {
		walk("", k.Fields)
	}
	return out
}

func hasMapping(props map[string]any, field string) bool {
	parts := strings.Split(field, ".")
	cur := props
	for i, p := range parts {
		node, ok := cur[p].(map[string]any)
		if !ok {
			// A dotted name may be mapped as one key (flattened or object leaves).
			node, ok = cur[strings.Join(parts[i:], ".")].(map[string]any)
			return ok
		}
		if i == len(parts)-1 {
			return true
		}
		next, ok := node["properties"].(map[string]any)
		if !ok {
			// object/flattened types end the mapping tree.
			return node["type"] == "object" || node["type"] == "flattened" || node["type"] == "nested"
		}
		cur = next
	}
	return false
}
