package cmd

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"

	"github.com/defenderbeat/defenderbeat/beater"
)

// componentSpec is Elastic Agent's component specification (version 2), as far as
// defenderbeat's uses it; parsed strictly, so a misspelt key fails here rather than in the Agent.
type componentSpec struct {
	Version int `yaml:"version"`
	Inputs  []struct {
		Name        string   `yaml:"name"`
		Description string   `yaml:"description"`
		Platforms   []string `yaml:"platforms"`
		Outputs     []string `yaml:"outputs"`
		Command     struct {
			RestartMonitoringPeriod  string            `yaml:"restart_monitoring_period"`
			MaximumRestartsPerPeriod int               `yaml:"maximum_restarts_per_period"`
			Timeouts                 map[string]string `yaml:"timeouts"`
			Args                     []string          `yaml:"args"`
		} `yaml:"command"`
	} `yaml:"inputs"`
}

// TestSpecListsEveryInputType: the Agent runs only the input types the spec lists, so every
// dataset's must be there, and nothing else.
func TestSpecListsEveryInputType(t *testing.T) {
	raw, err := os.ReadFile("../defenderbeat.spec.yml")
	if err != nil {
		t.Fatal(err)
	}
	var spec componentSpec
	if err := yaml.UnmarshalStrict(raw, &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Version != 2 {
		t.Fatalf("version %d, the Agent reads version 2", spec.Version)
	}
	var names []string
	platforms := []string{"linux/amd64", "linux/arm64", "windows/amd64", "darwin/amd64", "darwin/arm64", "container/amd64", "container/arm64"}
	outputs := []string{"elasticsearch", "kafka", "logstash", "redis"}
	for _, in := range spec.Inputs {
		names = append(names, in.Name)
		if in.Description == "" || len(in.Platforms) == 0 || len(in.Outputs) == 0 {
			t.Errorf("%s: description, platforms and outputs are required", in.Name)
		}
		for _, p := range in.Platforms {
			if !slices.Contains(platforms, p) {
				t.Errorf("%s: platform %q is not one the Agent knows", in.Name, p)
			}
		}
		for _, o := range in.Outputs {
			if !slices.Contains(outputs, o) {
				t.Errorf("%s: output %q is not an Agent output libbeat has", in.Name, o)
			}
		}
		args := strings.Join(in.Command.Args, " ")
		for _, want := range []string{"-E management.enabled=true", "-E setup.ilm.enabled=false", "-E setup.template.enabled=false", "-E logging.to_stderr=true"} {
			if !strings.Contains(args, want) {
				t.Errorf("%s: command.args lack %q: %s", in.Name, want, args)
			}
		}
	}
	slices.Sort(names)
	want := beater.InputTypes()
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("the spec lists %v, the beat runs %v", names, want)
	}
}
