package stack

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/idxmgmt/lifecycle"
	"github.com/elastic/beats/v7/libbeat/template"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/paths"
)

// Names the m365_defender integration gives its data streams; defenderbeat writes to the same.
const (
	DataStreamPrefix = "logs-m365_defender."
	DataStreamType   = "logs"
)

// DefaultPriority puts defenderbeat's templates above Elasticsearch's built-in logs-*-* (100) and
// below the templates Fleet installs with the integration (200), so a cluster that has the
// integration keeps using its templates for the data streams they cover.
const DefaultPriority = 150

// Options are the `setup.template`, `setup.ilm` and `setup.dsl` settings with defenderbeat's
// defaults, plus what the builder needs from the beat.
type Options struct {
	Info     beat.Info
	Fields   []byte // the fields.yml every template maps
	Template template.TemplateConfig
	ILM      Lifecycle
	DSL      Lifecycle
	Paths    *paths.Path // resolves setup.template.fields and setup.template.json.path
}

// Lifecycle is one of setup.ilm and setup.dsl.
type Lifecycle struct {
	Enabled     bool
	Explicit    bool   // enabled was set in the configuration
	PolicyName  string // ILM: the shared policy; datasets with their own add -<dataset>
	Policy      map[string]any
	Overwrite   bool // replace a policy that differs from ours
	CheckExists bool // false: never read nor write policies (for users without read_ilm)
}

// OptionsFromConfig reads the setup settings of the whole configuration.
func OptionsFromConfig(info beat.Info, root *conf.C, fields []byte, beatPaths *paths.Path) (Options, error) {
	opts := Options{
		Info:   info,
		Fields: fields,
		Template: template.TemplateConfig{
			Enabled:  true,
			Name:     info.Beat,
			Pattern:  DataStreamPrefix + "*-*",
			Priority: DefaultPriority,
		},
		Paths: beatPaths,
	}
	var raw struct {
		Template *conf.C `config:"setup.template"`
		ILM      *conf.C `config:"setup.ilm"`
		DSL      *conf.C `config:"setup.dsl"`
	}
	if root != nil {
		if err := root.Unpack(&raw); err != nil {
			return opts, fmt.Errorf("setup: %w", err)
		}
	}
	if raw.Template != nil {
		if err := raw.Template.Unpack(&opts.Template); err != nil {
			return opts, fmt.Errorf("setup.template: %w", err)
		}
	}
	var err error
	defaults := lifecycle.DefaultILMConfig(info)
	if opts.ILM, err = readLifecycle(info, raw.ILM, defaults.ILM, lifecycle.DefaultILMPolicy); err != nil {
		return opts, fmt.Errorf("setup.ilm: %w", err)
	}
	if opts.DSL, err = readLifecycle(info, raw.DSL, defaults.DSL, nil); err != nil {
		return opts, fmt.Errorf("setup.dsl: %w", err)
	}
	return opts, nil
}

func readLifecycle(info beat.Info, raw *conf.C, cfg lifecycle.Config, defaultPolicy map[string]any) (Lifecycle, error) {
	explicit := raw != nil && raw.HasField("enabled")
	if raw != nil {
		if err := raw.Unpack(&cfg); err != nil {
			return Lifecycle{}, err
		}
	}
	name, err := lifecycle.ApplyStaticFmtstr(info, cfg.PolicyName)
	if err != nil {
		return Lifecycle{}, fmt.Errorf("policy_name: %w", err)
	}
	l := Lifecycle{
		Enabled:     cfg.Enabled,
		Explicit:    explicit,
		PolicyName:  name,
		Overwrite:   cfg.Overwrite,
		CheckExists: cfg.CheckExists,
	}
	if cfg.PolicyFile != "" {
		raw, err := os.ReadFile(cfg.PolicyFile)
		if err != nil {
			return l, fmt.Errorf("policy_file: %w", err)
		}
		if err := json.Unmarshal(raw, &l.Policy); err != nil {
			return l, fmt.Errorf("policy_file %s: %w", cfg.PolicyFile, err)
		}
	} else if defaultPolicy != nil {
		l.Policy = plain(defaultPolicy)
	}
	return l, nil
}

func (o Options) log() *logp.Logger {
	if o.Info.Logger != nil {
		return o.Info.Logger.Named("stack")
	}
	return logp.NewNopLogger()
}

// plain deep-copies a JSON-shaped value (mapstr.M included) into maps, slices and scalars only.
func plain[T any](v T) T {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("stack: value is not JSON: %v", err)) // bodies are built from JSON and YAML
	}
	var out T
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(fmt.Sprintf("stack: value does not round-trip: %v", err))
	}
	return out
}
