package fieldscheck

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const testFields = `
- key: test
  title: test
  description: test fields
  fields:
    - name: event
      type: group
      fields:
        - name: severity
          type: long
        - name: created
          type: date
        - name: kind
    - name: source.ip
      type: ip
    - name: labels
      type: object
    - name: m365_defender
      type: group
      fields:
        - name: alert
          type: group
          fields:
            - name: evidence
              type: group
              fields:
                - name: size
                  type: long
                - name: verdict
                  type: keyword
`

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	s, err := Load(write(t, "fields.yml", testFields))
	if err != nil {
		t.Fatal(err)
	}
	if s.Type("event.kind") != "keyword" || s.Type("event.severity") != "long" || s.Type("nope") != "" {
		t.Errorf("types: %q %q %q", s.Type("event.kind"), s.Type("event.severity"), s.Type("nope"))
	}
	doc := map[string]any{
		"event":  map[string]any{"severity": 47.0, "created": "2024-01-01T00:00:00.000Z", "kind": "alert"},
		"source": map[string]any{"ip": "10.0.0.1"},
		"labels": map[string]any{"anything": "goes"},
		"m365_defender": map[string]any{"alert": map[string]any{"evidence": []any{
			map[string]any{"size": int64(3), "verdict": "unknown"},
			map[string]any{"verdict": "suspicious"},
		}}},
	}
	if problems := s.Check(doc); len(problems) > 0 {
		t.Errorf("valid document reported: %v", problems)
	}

	bad := map[string]any{
		"event":  map[string]any{"severity": 4.5, "created": "yesterday", "kind": 3, "extra": "x"},
		"source": map[string]any{"ip": "not-an-ip"},
		"host":   map[string]any{"name": "h"},
		"m365_defender": map[string]any{"alert": map[string]any{"evidence": []any{
			map[string]any{"size": "big", "verdict": map[string]any{"x": 1}},
		}}},
	}
	problems := s.Check(bad)
	var fields []string
	for _, p := range problems {
		fields = append(fields, strings.SplitN(p, ":", 2)[0])
	}
	sort.Strings(fields)
	want := []string{"event.created", "event.extra", "event.kind", "event.severity", "host", "m365_defender.alert.evidence.size", "m365_defender.alert.evidence.verdict", "source.ip"}
	if strings.Join(fields, ",") != strings.Join(want, ",") {
		t.Errorf("problems:\n got %v\nwant %v\n%s", fields, want, strings.Join(problems, "\n"))
	}
}

func TestLoadRejectsDuplicateDeclarations(t *testing.T) {
	a := write(t, "a.yml", testFields)
	b := write(t, "b.yml", `
- key: other
  title: other
  description: declares event.severity again
  fields:
    - name: event.severity
      type: long
`)
	if _, err := Load(a, b); err == nil {
		t.Error("a field declared in two files must be an error")
	}
	c := write(t, "c.yml", `
- key: other
  title: other
  description: adds to an existing group
  fields:
    - name: event
      type: group
      fields:
        - name: action
          type: keyword
`)
	s, err := Load(a, c)
	if err != nil {
		t.Fatalf("groups may be extended from another file: %v", err)
	}
	if s.Type("event.action") != "keyword" || s.Type("event.severity") != "long" {
		t.Error("both files' fields must be known")
	}
}

// TestProjectFieldFiles loads libbeat's ECS base with the project's fields files, as the template
// build does: no field may be declared twice.
func TestProjectFieldFiles(t *testing.T) {
	ecs, err := LibbeatECSFile()
	if err != nil {
		t.Skipf("libbeat not in the module cache: %v", err)
	}
	root := filepath.Join("..", "..")
	files := []string{ecs, filepath.Join(root, "_meta", "fields.common.yml")}
	matches, _ := filepath.Glob(filepath.Join(root, "module", "*", "_meta", "fields.yml"))
	files = append(files, matches...)
	s, err := Load(files...)
	if err != nil {
		t.Fatal(err)
	}
	for path, typ := range map[string]string{
		"device.id": "keyword", "email.delivery_timestamp": "date", "process.user.name": "keyword",
		"event.severity": "long", "related.ip": "ip",
	} {
		if got := s.Type(path); got != typ {
			t.Errorf("%s: type %q, want %q", path, got, typ)
		}
	}
}
