package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Generated files are committed so that a plain `go build` works; these tests fail when a
// fields.yml or config.yml changed without `go tool mage update`.

func TestFieldsAssetIsUpToDate(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/elastic/beats/v7").Output()
	if err != nil {
		t.Fatal(err)
	}
	beats := strings.TrimSpace(string(dir))
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "fields.yml")
	// The same command `go tool mage fields` runs (dev-tools/mage GenerateFieldsYAMLTo).
	gen := exec.Command("go", "run", filepath.Join(beats, "libbeat/scripts/cmd/global_fields/main.go"),
		"-es_beats_path", beats, "-beat_path", root, "-out", out, "module")
	gen.Dir = root
	if msg, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("generating fields: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../include/fields.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("include/fields.yml is stale: run `go tool mage update`")
	}
}

func TestReferenceConfigCarriesEveryDatasetSnippet(t *testing.T) {
	ref, err := os.ReadFile("../defenderbeat.reference.yml")
	if err != nil {
		t.Fatal(err)
	}
	snippets, _ := filepath.Glob("../module/*/_meta/config.yml")
	if len(snippets) == 0 {
		t.Fatal("no module/*/_meta/config.yml found")
	}
	for _, s := range snippets {
		body, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(ref, body) {
			t.Errorf("defenderbeat.reference.yml lacks %s: run `go tool mage update`", s)
		}
	}
}

// Forwarded documents describe other machines: the shipped configurations add no processor that
// stamps the collector's own host or cloud into them, not even as a commented example.
func TestShippedConfigsAddNoCollectorMetadata(t *testing.T) {
	for _, f := range []string{"../defenderbeat.yml", "../defenderbeat.reference.yml"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"add_host_metadata", "add_cloud_metadata", "add_docker_metadata", "add_kubernetes_metadata"} {
			if bytes.Contains(raw, []byte(p)) {
				t.Errorf("%s mentions %s", f, p)
			}
		}
	}
}
