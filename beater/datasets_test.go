package beater

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"
)

// The integration's boolean switches become the tags of their name, before the input's own
// tags, as the integration's policy renders them; the default tags stay.
func TestInputDefaultsTurnSwitchesIntoTags(t *testing.T) {
	event, _ := datasetOf("defender-event")
	alert, _ := datasetOf("defender-alert")
	cfg, err := applyInputDefaults(event, conf.MustNewConfigFrom(map[string]any{
		"type": "defender-event", "id": "x", "preserve_original_event": true, "preserve_duplicate_custom_fields": true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tags  []string `config:"tags"`
		Index string   `config:"index"`
	}
	if err := cfg.Unpack(&got); err != nil {
		t.Fatal(err)
	}
	want := []string{"preserve_original_event", "preserve_duplicate_custom_fields", "forwarded", "m365_defender-event"}
	if !slices.Equal(got.Tags, want) || got.Index != "logs-m365_defender.event-default" {
		t.Fatalf("tags %v index %q, want %v and logs-m365_defender.event-default", got.Tags, got.Index, want)
	}

	cfg, _ = applyInputDefaults(alert, conf.MustNewConfigFrom(map[string]any{
		"type": "defender-alert", "id": "y", "tags": []string{"preserve_original_event", "mine"}, "preserve_original_event": true,
	}))
	var again struct {
		Tags []string `config:"tags"`
	}
	_ = cfg.Unpack(&again)
	if !slices.Equal(again.Tags, []string{"preserve_original_event", "mine"}) {
		t.Fatalf("a tag already present was added again: %v", again.Tags)
	}
}

// inputOption matches an option of an input in a reference snippet, set or commented out:
// "  tenant_id: …", "  #ssl.certificate_authorities: […]".
var inputOption = regexp.MustCompile(`^  #?([a-z_]+(?:\.[a-z_]+)*):`)

// TestEveryDatasetAcceptsItsReferenceOptions: every option a dataset's reference configuration
// shows is one its input accepts, so the strict check never refuses documented options.
func TestEveryDatasetAcceptsItsReferenceOptions(t *testing.T) {
	snippets, err := filepath.Glob("../module/*/_meta/config.yml")
	if err != nil || len(snippets) == 0 {
		t.Fatalf("no reference snippets: %v", err)
	}
	checked := map[string]int{}
	for _, snippet := range snippets {
		raw, err := os.ReadFile(snippet)
		if err != nil {
			t.Fatal(err)
		}
		var typ string
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "- type: "); ok {
				typ = strings.TrimSpace(rest)
				continue
			}
			m := inputOption.FindStringSubmatch(line)
			if m == nil || typ == "" {
				continue
			}
			ds, ok := datasetOf(typ)
			if !ok {
				t.Fatalf("%s: type %s is not a dataset's", snippet, typ)
			}
			set := ds.Options.WithBeatOptions()
			for _, part := range strings.Split(m[1], ".") {
				group, known := set[part]
				if !known {
					t.Errorf("%s: %s documents %s, which the input reports as unknown", snippet, typ, m[1])
					break
				}
				set = group
			}
			checked[typ]++
		}
	}
	for _, ds := range datasets {
		if checked[ds.InputType] < 5 {
			t.Errorf("%s: only %d options found in its reference snippet", ds.InputType, checked[ds.InputType])
		}
	}
}

func alertInput(extra map[string]any) *conf.C {
	m := map[string]any{"type": "defender-alert", "id": "a", "tenant_id": "t", "client_id": "c", "client_secret": "s"}
	for k, v := range extra {
		m[k] = v
	}
	return conf.MustNewConfigFrom(m)
}

func TestCheckInputsNamesUnknownOptions(t *testing.T) {
	err := CheckInputs([]*conf.C{
		alertInput(nil),
		alertInput(map[string]any{"id": "b", "intervall": "1m", "ssl.verification_mod": "none"}),
	})
	if err == nil {
		t.Fatal("unknown options accepted")
	}
	for _, want := range []string{
		`defenderbeat.inputs[1]: input "b" (type defender-alert): 2 problem(s)`,
		"intervall: unknown option (did you mean interval?)",
		"ssl.verification_mod: unknown option (did you mean ssl.verification_mode?)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "inputs[0]") {
		t.Errorf("the valid input is reported:\n%v", err)
	}
}

func TestBeatInputOptionsAreAccepted(t *testing.T) {
	in := alertInput(map[string]any{
		"enabled": true, "index": "custom-%{+yyyy}", "pipeline": "p", "keep_null": true,
		"tags": []string{"forwarded"}, "fields": map[string]any{"team": "soc"}, "fields_under_root": true,
		"processors":         []any{map[string]any{"add_tags": map[string]any{"tags": []string{"x"}}}},
		"publisher_pipeline": map[string]any{"disable_host": false},
		"clean_inactive":     "720h",
		"namespace":          "prod",
	})
	if err := CheckInputs([]*conf.C{in}); err != nil {
		t.Fatal(err)
	}
}

func TestDisabledInputIsNotChecked(t *testing.T) {
	disabled := conf.MustNewConfigFrom(map[string]any{"type": "defender-alert", "enabled": false})
	if err := CheckInputs([]*conf.C{disabled, alertInput(nil)}); err != nil {
		t.Fatalf("a disabled input was checked: %v", err)
	}
}

// TestRunnerFactoryRefusesUnknownOptions covers the path Elastic Agent's policies take: the
// runner list creates the input from the configuration the manager hands it.
func TestRunnerFactoryRefusesUnknownOptions(t *testing.T) {
	_, err := prepareInput(alertInput(map[string]any{"batchsize": 10}))
	if err == nil || !strings.Contains(err.Error(), "batchsize: unknown option (did you mean batch_size?)") {
		t.Fatalf("err = %v", err)
	}
	cfg, err := prepareInput(alertInput(map[string]any{"namespace": "prod"}))
	if err != nil {
		t.Fatal(err)
	}
	if index, _ := cfg.String("index", -1); index != "logs-m365_defender.alert-prod" {
		t.Fatalf("index = %q", index)
	}
}
