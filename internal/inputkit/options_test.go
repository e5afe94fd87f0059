package inputkit

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/transport/tlscommon"

	"github.com/defenderbeat/defenderbeat/internal/msapi"
)

// selfUnpacking stands for option types go-ucfg hands the raw value to.
type selfUnpacking struct{ Inner string }

func (s *selfUnpacking) Unpack(any) error { return nil }

type sampleConfig struct {
	msapi.Options `config:",inline"`
	Common        `config:",inline"`

	Interval time.Duration     `config:"interval"`
	Params   map[string]string `config:"params"`
	List     []string          `config:"list"`
	Nested   struct {
		Depth int `config:"depth"`
	} `config:"nested"`
	Dotted    string        `config:"service.name"`
	Custom    selfUnpacking `config:"custom"`
	Since     time.Time     `config:"since"`
	Untagged  int
	unexposed int
}

func mustConfig(t *testing.T, m map[string]any) *conf.C {
	t.Helper()
	c, err := conf.NewConfigFrom(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func problems(errs []error) []string {
	out := make([]string, len(errs))
	for i, err := range errs {
		out[i] = err.Error()
	}
	return out
}

func TestOptionsOfReadsConfigTags(t *testing.T) {
	set := OptionsOf(sampleConfig{})
	for _, name := range []string{"tenant_id", "client_secret", "ssl", "id", "namespace", "interval", "params", "list", "nested", "service", "custom", "since", "untagged"} {
		if _, ok := set[name]; !ok {
			t.Errorf("option %s missing from %v", name, set)
		}
	}
	if _, ok := set["unexposed"]; ok {
		t.Error("an unexported field is not an option")
	}
	if _, ok := set["ssl"]["certificate_authorities"]; !ok {
		t.Error("ssl's own options are not a group")
	}
	if _, ok := set["ssl"]["key_passphrase"]; !ok {
		t.Error("ssl's inline certificate options are missing")
	}
	if _, ok := set["service"]["name"]; !ok {
		t.Error(`a dotted tag ("service.name") is not a nested option`)
	}
	for _, leaf := range []string{"custom", "since", "params", "list", "interval"} {
		if set[leaf] != nil {
			t.Errorf("%s must accept any value below it, got the group %v", leaf, set[leaf])
		}
	}
}

func TestUnknownNamesEveryUnknownOption(t *testing.T) {
	set := OptionsOf(sampleConfig{}).WithBeatOptions()
	cfg := mustConfig(t, map[string]any{
		"type": "defender-alert", "id": "a", "tenant_id": "t",
		"tenantid":                    "typo",
		"ssl.certificate_authorities": []string{"/ca.pem"},
		"ssl.certificate_authority":   "/ca.pem",
		"params":                      map[string]any{"anything": "goes"},
		"nested":                      map[string]any{"depth": 1, "width": 2},
		"custom":                      map[string]any{"whatever": 1},
		"service.name":                "x",
		// What libbeat reads from every input is accepted.
		"processors": []any{map[string]any{"drop_fields": map[string]any{"fields": []string{"a"}}}},
		"index":      "x", "pipeline": "p", "keep_null": true, "tags": []string{"a"},
		"fields": map[string]any{"a": 1}, "fields_under_root": true,
		"publisher_pipeline": map[string]any{"disable_host": true},
		"clean_inactive":     "48h", "enabled": true,
		"completely_unrelated_option": 1,
	})
	got := problems(set.Unknown(cfg))
	want := []string{
		"completely_unrelated_option: unknown option",
		"nested.width: unknown option",
		"ssl.certificate_authority: unknown option (did you mean ssl.certificate_authorities?)",
		"tenantid: unknown option (did you mean tenant_id?)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnknownLeavesValuesOfAnotherShapeToUnpacking(t *testing.T) {
	set := OptionsOf(struct {
		SSL *tlscommon.Config `config:"ssl"`
	}{})
	if errs := set.Unknown(mustConfig(t, map[string]any{"ssl": "yes"})); len(errs) != 0 {
		t.Fatalf("a scalar where a group is expected is not an unknown option: %v", errs)
	}
}

func TestValidateReportsUnknownOptionsWithTheOtherProblems(t *testing.T) {
	ds := Dataset{
		InputType: "defender-sample",
		Options:   OptionsOf(sampleConfig{}),
		Check: func(c *conf.C) error {
			return Report("defender-sample", "a", []error{errors.New("interval: must be positive")})
		},
	}
	err := ds.Validate(mustConfig(t, map[string]any{"type": "defender-sample", "id": "a", "intervall": "1m"}))
	var report *ConfigError
	if !errors.As(err, &report) {
		t.Fatalf("not one report: %v", err)
	}
	got := problems(report.Problems)
	want := []string{"intervall: unknown option (did you mean interval?)", "interval: must be positive"}
	if !slices.Equal(got, want) {
		t.Fatalf("problems = %q, want %q", got, want)
	}

	ds.Check = func(*conf.C) error { return nil }
	err = ds.Validate(mustConfig(t, map[string]any{"type": "defender-sample", "id": "a", "intervall": "1m"}))
	if err == nil || !strings.Contains(err.Error(), `input "a" (type defender-sample): 1 problem(s)`) || !strings.Contains(err.Error(), "intervall") {
		t.Fatalf("unknown option alone: %v", err)
	}
	if err := ds.Validate(mustConfig(t, map[string]any{"type": "defender-sample", "id": "a", "interval": "1m"})); err != nil {
		t.Fatalf("a valid configuration: %v", err)
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"tenantid", "tenant_id", 1}, {"kitten", "sitting", 3}, {"abc", "", 3}} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
