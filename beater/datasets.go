package beater

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/cfgfile"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"

	"github.com/defenderbeat/defenderbeat/internal/health"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/transform"
	"github.com/defenderbeat/defenderbeat/module/alert"
	"github.com/defenderbeat/defenderbeat/module/event"
	"github.com/defenderbeat/defenderbeat/module/incident"
	"github.com/defenderbeat/defenderbeat/module/vulnerability"
)

// datasets lists every input defenderbeat runs: adding a dataset is one folder under module/
// and one line here.
var datasets = []inputkit.Dataset{
	alert.Dataset,
	incident.Dataset,
	event.Dataset,
	event.StorageDataset,
	vulnerability.Dataset,
}

func datasetOf(inputType string) (inputkit.Dataset, bool) {
	i := slices.IndexFunc(datasets, func(d inputkit.Dataset) bool { return d.InputType == inputType })
	if i < 0 {
		return inputkit.Dataset{}, false
	}
	return datasets[i], true
}

// DatasetOfInput names the dataset an input type collects (alert for defender-alert).
func DatasetOfInput(inputType string) (string, bool) {
	ds, ok := datasetOf(inputType)
	return ds.Name, ok
}

// Datasets names every dataset once (two inputs may collect one), in the order the docs list
// them.
func Datasets() []string {
	var names []string
	for _, d := range datasets {
		if !slices.Contains(names, d.Name) {
			names = append(names, d.Name)
		}
	}
	return names
}

// TransformFor returns a dataset's processing, for the `transform` command.
func TransformFor(name string) (transform.Func, bool) {
	i := slices.IndexFunc(datasets, func(d inputkit.Dataset) bool { return d.Name == name })
	if i < 0 {
		return nil, false
	}
	return datasets[i].Transform, true
}

// ProbeInput acquires a token and calls the API once with one input's options.
func ProbeInput(ctx context.Context, cfg *conf.C, log *logp.Logger) error {
	typ, _ := cfg.String("type", -1)
	ds, ok := datasetOf(typ)
	if !ok {
		return fmt.Errorf("type: %q is not one of %s", typ, strings.Join(InputTypes(), ", "))
	}
	if err := ds.Validate(cfg); err != nil {
		return err
	}
	return ds.Probe(ctx, cfg, log)
}

// InputTypes names every input type, in the order the docs list them.
func InputTypes() []string {
	types := make([]string, len(datasets))
	for i, d := range datasets {
		types[i] = d.InputType
	}
	return types
}

// CheckInputs validates every configured input and returns all problems of all inputs at once.
// A disabled input (enabled: false) is neither checked nor run.
func CheckInputs(inputs []*conf.C) error {
	var problems []string
	ids := map[string]int{}
	for i, cfg := range inputs {
		if !cfg.Enabled() {
			continue
		}
		typ, err := cfg.String("type", -1)
		if err != nil || typ == "" {
			problems = append(problems, fmt.Sprintf("defenderbeat.inputs[%d]: type: required, one of %s", i, strings.Join(InputTypes(), ", ")))
			continue
		}
		ds, ok := datasetOf(typ)
		if !ok {
			problems = append(problems, fmt.Sprintf("defenderbeat.inputs[%d]: type: %q is not one of %s", i, typ, strings.Join(InputTypes(), ", ")))
			continue
		}
		if err := ds.Validate(cfg); err != nil {
			problems = append(problems, fmt.Sprintf("defenderbeat.inputs[%d]: %v", i, err))
		}
		if id, _ := cfg.String("id", -1); id != "" {
			if j, dup := ids[id]; dup {
				problems = append(problems, fmt.Sprintf("defenderbeat.inputs[%d]: id: %q is already used by defenderbeat.inputs[%d]; ids must be unique, each keeps its own cursor", i, id, j))
			}
			ids[id] = i
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n%s", strings.Join(problems, "\n"))
}

// NoIngestPipeline is Elasticsearch's name for "no default ingest pipeline for this document".
const NoIngestPipeline = "_none"

// withInputDefaults validates every input configuration the runner list is given, from the
// file or from Elastic Agent (so an unknown option fails the input, naming it), then fills,
// per dataset, the publishing settings libbeat reads from an input's config (tags, index, ingest
// pipeline, host metadata), so documents land where the reference integration's land and carry
// its default tags.
// Every runner it creates reports its input's status to the health registry.
type withInputDefaults struct {
	next   cfgfile.RunnerFactory
	health *health.Registry
}

func (f withInputDefaults) Create(p beat.PipelineConnector, cfg *conf.C) (cfgfile.Runner, error) {
	cfg, err := prepareInput(cfg)
	if err != nil {
		return nil, err
	}
	runner, err := f.next.Create(p, cfg)
	if err != nil {
		return nil, err
	}
	return withHealth(f.health, runner, cfg), nil
}

func (f withInputDefaults) CheckConfig(cfg *conf.C) error {
	cfg, err := prepareInput(cfg)
	if err != nil {
		return err
	}
	return f.next.CheckConfig(cfg)
}

func prepareInput(in *conf.C) (*conf.C, error) {
	typ, _ := in.String("type", -1)
	ds, ok := datasetOf(typ)
	if !ok {
		return in, nil // the loader reports the unknown type
	}
	if err := ds.Validate(in); err != nil {
		return nil, err
	}
	return applyInputDefaults(ds, in)
}

func applyInputDefaults(ds inputkit.Dataset, in *conf.C) (*conf.C, error) {
	cfg, err := conf.NewConfigFrom(in)
	if err != nil {
		return nil, err
	}
	if !cfg.HasField("tags") {
		if err := cfg.Merge(map[string]any{"tags": []string{transform.TagForwarded, "m365_defender-" + ds.Name}}); err != nil {
			return nil, err
		}
	}
	var tags struct {
		Tags []string `config:"tags"`
	}
	if err := cfg.Unpack(&tags); err != nil {
		return nil, err
	}
	// The integration's switches (preserve_original_event: true) add the tag of their name, as
	// its policy template does: the tag is what the documents carry and the processing reads.
	for _, sw := range []string{transform.TagPreserveDuplicateCustom, transform.TagPreserveOriginal} {
		if on, _ := cfg.Bool(sw, -1); on && !slices.Contains(tags.Tags, sw) {
			tags.Tags = append([]string{sw}, tags.Tags...)
			for i, tag := range tags.Tags {
				if err := cfg.SetString("tags", i, tag); err != nil {
					return nil, err
				}
			}
		}
	}
	if slices.Contains(tags.Tags, transform.TagForwarded) && !cfg.HasField("publisher_pipeline") {
		// Forwarded data describes other machines: the collector's own host.* would be wrong.
		if err := cfg.SetBool("publisher_pipeline.disable_host", -1, true); err != nil {
			return nil, err
		}
	}
	if !cfg.HasField("pipeline") {
		// Documents leave the beat fully processed. Where the m365_defender integration's
		// templates govern a data stream, their default ingest pipeline expects raw records and
		// would process them a second time: "_none" skips any default pipeline (the final
		// pipeline, which sets event.ingested, still runs).
		if err := cfg.SetString("pipeline", -1, NoIngestPipeline); err != nil {
			return nil, err
		}
	}
	if !cfg.HasField("index") {
		ns, _ := cfg.String("namespace", -1)
		if ns == "" {
			ns = "default"
		}
		if err := cfg.SetString("index", -1, "logs-m365_defender."+ds.Name+"-"+ns); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// InputAccepts tells whether an input type accepts an option (a dotted name for a member of a
// group: ssl.certificate_authorities), as its configuration check would.
func InputAccepts(inputType, option string) bool {
	ds, ok := datasetOf(inputType)
	if !ok {
		return false
	}
	set := ds.Options.WithBeatOptions()
	for _, part := range strings.Split(option, ".") {
		group, known := set[part]
		if !known {
			return false
		}
		if group == nil {
			return true // anything below it is accepted
		}
		set = group
	}
	return true
}
