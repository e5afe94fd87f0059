// Package fleet builds defenderbeat's Elastic integration package (package-spec 3.x) from the
// sources the beat itself is built from: the modules' fields.yml and reference snippets, the
// lifecycle policy, ingest pipeline and transform under _meta/elasticsearch, and the dashboards
// under _meta/kibana. Its policy templates use defenderbeat's input types, so an Elastic Agent
// that has the defenderbeat component runs them, and its data streams are those of Elastic's
// m365_defender integration (logs-m365_defender.<dataset>-<namespace>).
package fleet

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/elastic/beats/v7/libbeat/dashboards"
	"github.com/elastic/elastic-agent-libs/logp"

	"github.com/defenderbeat/defenderbeat/beater"
	"gopkg.in/yaml.v2"
)

// Name is the package's name: Fleet prefixes its assets with it.
const Name = "defenderbeat"

// FormatVersion is the package-spec version the package follows.
const FormatVersion = "3.3.0"

// Package describes one build of the integration package.
type Package struct {
	Root    string // the repository: module/, _meta/, docs/, include/
	Out     string // the folder the package folder is written into (build/packages)
	Version string
	// Inputs maps each input type to its dataset (defender-alert: alert), in the order the
	// policy template lists them; Accepts tells whether an input type accepts an option, for
	// the options one snippet inherits from another.
	Inputs  []InputType
	Accepts func(inputType, option string) bool
}

// InputType is one of defenderbeat's input types and the dataset it collects.
type InputType struct {
	Type    string
	Dataset string
}

// Build writes the package folder <Out>/defenderbeat-<version> (replacing an older one) and
// returns its path.
func (p Package) Build() (string, error) {
	if p.Version == "" || len(p.Inputs) == 0 {
		return "", fmt.Errorf("fleet package: a version and the input types are needed")
	}
	snippets, err := ReadInputs(p.Root)
	if err != nil {
		return "", err
	}
	files, err := p.files(snippets)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(p.Out, Name+"-"+p.Version)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		target := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(target, files[name], 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// Zip packs a built package folder into <folder>.zip, the file Kibana's package upload takes:
// one top-level folder named <name>-<version>.
func Zip(dir string) (string, error) {
	out := dir + ".zip"
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	zw := zip.NewWriter(f)
	base := filepath.Base(dir)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		w, err := zw.Create(path.Join(base, filepath.ToSlash(rel)))
		if err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(w, src)
		return err
	})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
		return "", err
	}
	return out, nil
}

// files returns every file of the package by its slash-separated path.
func (p Package) files(snippets []Input) (map[string][]byte, error) {
	files := map[string][]byte{}
	var datasets []string
	byDataset := map[string][]Input{}
	for _, it := range p.Inputs {
		i := slices.IndexFunc(snippets, func(in Input) bool { return in.Type == it.Type })
		if i < 0 {
			return nil, fmt.Errorf("input %s: no module snippet documents it", it.Type)
		}
		in, err := snippets[i].WithInherited(snippets, func(opt string) bool { return p.Accepts(it.Type, opt) })
		if err != nil {
			return nil, err
		}
		if !slices.Contains(datasets, it.Dataset) {
			datasets = append(datasets, it.Dataset)
		}
		byDataset[it.Dataset] = append(byDataset[it.Dataset], in)
	}

	manifest, err := p.manifest(byDataset, datasets)
	if err != nil {
		return nil, err
	}
	files["manifest.yml"] = manifest
	// package-spec wants a link per change, and a GitHub link must name an issue or pull
	// request: the entry links the issue that asked for the package.
	files["changelog.yml"] = mustYAML([]map[string]any{{
		"version": p.Version,
		"changes": []map[string]any{{
			"description": "defenderbeat " + p.Version + ": the integration package is built with the beat, from the same sources.",
			"type":        "enhancement",
			"link":        "https://github.com/defenderbeat/defenderbeat/issues/12",
		}},
	}})
	readme, err := p.readme(datasets)
	if err != nil {
		return nil, err
	}
	files["docs/README.md"] = readme
	// The overview dashboard spans every dataset of the package: its data view,
	// logs-m365_defender.*, is what limits it to them, not a filter on one dataset.
	files["validation.yml"] = mustYAML(map[string]any{"errors": map[string]any{"exclude_checks": []string{"SVR00002"}}})
	if lic, err := os.ReadFile(filepath.Join(p.Root, "LICENSE")); err == nil {
		files["LICENSE.txt"] = lic
	}

	ecs, err := ecsFields(p.Root)
	if err != nil {
		return nil, err
	}
	pipeline, err := defaultPipeline(p.Root)
	if err != nil {
		return nil, err
	}
	for _, ds := range datasets {
		dir := "data_stream/" + ds + "/"
		own, err := moduleFields(p.Root, ds)
		if err != nil {
			return nil, err
		}
		files[dir+"fields/base-fields.yml"] = mustYAML(baseFields(ds))
		files[dir+"fields/ecs.yml"] = mustYAML(ecs)
		files[dir+"fields/fields.yml"] = mustYAML(own)
		// Documents arrive mapped; the default pipeline only records the ingest time (the
		// beat itself asks for no pipeline, pipeline: _none, so this serves other senders).
		files[dir+"elasticsearch/ingest_pipeline/default.yml"] = pipeline
		ilm, err := os.ReadFile(filepath.Join(p.Root, "_meta", "elasticsearch", "data_stream", ds, "ilm", "default_policy.json"))
		switch {
		case err == nil:
			files[dir+"elasticsearch/ilm/default_policy.json"] = ilm
		case !os.IsNotExist(err):
			return nil, err
		}
		dsManifest := map[string]any{
			"title":   "Microsoft Defender XDR " + ds,
			"type":    "logs",
			"dataset": "m365_defender." + ds,
			// Every ECS field is mapped, as in the beat's own template: above Elasticsearch's
			// default limit of 1000 fields, which not every Fleet version raises.
			"elasticsearch": map[string]any{"index_template": map[string]any{"settings": map[string]any{
				"index": map[string]any{"mapping": map[string]any{"total_fields": map[string]any{"limit": totalFieldsLimit}}},
			}}},
		}
		if files[dir+"elasticsearch/ilm/default_policy.json"] != nil {
			dsManifest["ilm_policy"] = "logs-" + Name + "." + ds + "-default_policy"
		}
		var streams []map[string]any
		for _, in := range byDataset[ds] {
			vars, tmpl := streamVars(in)
			template := strings.TrimPrefix(in.Type, "defender-") + ".yml.hbs"
			files[dir+"agent/stream/"+template] = []byte(tmpl)
			streams = append(streams, map[string]any{
				"input":         in.Type,
				"title":         title(in),
				"description":   description(in),
				"template_path": template,
				"enabled":       true,
				"vars":          vars,
			})
		}
		dsManifest["streams"] = streams
		files[dir+"manifest.yml"] = mustYAML(dsManifest)
	}

	if err := p.transforms(files, ecs); err != nil {
		return nil, err
	}
	if err := p.kibana(files); err != nil {
		return nil, err
	}
	return files, nil
}

func (p Package) manifest(byDataset map[string][]Input, datasets []string) ([]byte, error) {
	var inputs []map[string]any
	for _, ds := range datasets {
		for _, in := range byDataset[ds] {
			inputs = append(inputs, map[string]any{
				"type":        in.Type,
				"title":       title(in),
				"description": description(in),
			})
		}
	}
	return mustYAML(map[string]any{
		"format_version": FormatVersion,
		"name":           Name,
		"title":          "Microsoft Defender XDR (defenderbeat)",
		"version":        p.Version,
		"description":    "Collect Microsoft Defender XDR alerts, incidents, events and vulnerabilities with defenderbeat, mapped to ECS at the edge, into the m365_defender data streams.",
		"type":           "integration",
		"categories":     []string{"security", "edr_xdr", "vulnerability_workflow"},
		"conditions": map[string]any{
			"kibana":  map[string]any{"version": "^8.19.0 || ^9.0.0"},
			"elastic": map[string]any{"subscription": "basic"},
		},
		"owner": map[string]any{"github": "defenderbeat/defenderbeat", "type": "community"},
		"policy_templates": []map[string]any{{
			"name":         Name,
			"title":        "Microsoft Defender XDR with defenderbeat",
			"description":  "Collect Microsoft Defender XDR data with the defenderbeat component of Elastic Agent.",
			"data_streams": datasets,
			"inputs":       inputs,
		}},
	}), nil
}

func title(in Input) string {
	return "Microsoft Defender XDR " + strings.TrimPrefix(in.Type, "defender-") + " (" + in.Type + ")"
}

func description(in Input) string {
	if in.Description != "" {
		return in.Description
	}
	return in.Type
}

// readme is docs/fleet-package.md followed by each dataset's own documentation.
func (p Package) readme(datasets []string) ([]byte, error) {
	var b bytes.Buffer
	intro, err := os.ReadFile(filepath.Join(p.Root, "docs", "fleet-package.md"))
	if err != nil {
		return nil, err
	}
	b.Write(intro)
	for _, ds := range datasets {
		doc, err := os.ReadFile(filepath.Join(p.Root, "module", ds, "_meta", "docs.md"))
		if err != nil {
			return nil, err
		}
		b.WriteString("\n\n")
		b.Write(demoteHeadings(doc))
	}
	return b.Bytes(), nil
}

// demoteHeadings moves a dataset's headings one level down, below the package's title.
func demoteHeadings(doc []byte) []byte {
	lines := strings.Split(string(doc), "\n")
	inCode := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(l, "#") {
			lines[i] = "#" + l
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

// transforms adds every transform under _meta/elasticsearch/transform with, as the mappings of
// its destination index, the fields of the data stream it reads.
func (p Package) transforms(files map[string][]byte, ecs []map[string]any) error {
	root := filepath.Join(p.Root, "_meta", "elasticsearch", "transform")
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(root, e.Name(), "transform.yml"))
		if err != nil {
			return err
		}
		var t struct {
			Source struct {
				Index []string `yaml:"index"`
			} `yaml:"source"`
		}
		if err := yaml.Unmarshal(raw, &t); err != nil {
			return fmt.Errorf("transform %s: %w", e.Name(), err)
		}
		dir := "elasticsearch/transform/" + e.Name() + "/"
		files[dir+"transform.yml"] = raw
		for _, idx := range t.Source.Index {
			ds, ok := strings.CutPrefix(strings.TrimSuffix(idx, "-*"), "logs-m365_defender.")
			if !ok {
				continue
			}
			own, err := moduleFields(p.Root, ds)
			if err != nil {
				return err
			}
			files[dir+"fields/base-fields.yml"] = mustYAML(baseFields(ds))
			files[dir+"fields/ecs.yml"] = mustYAML(ecs)
			files[dir+"fields/fields.yml"] = mustYAML(own)
		}
	}
	return nil
}

// kibana adds the dashboards, with their JSON attributes encoded as strings as Kibana stores
// them (the sources keep them decoded, for review), and the data views they use.
func (p Package) kibana(files map[string][]byte) error {
	root := filepath.Join(p.Root, "_meta", "kibana", "7")
	for _, kind := range []struct{ from, to string }{{"dashboard", "dashboard"}, {"index-pattern", "index_pattern"}} {
		matches, err := filepath.Glob(filepath.Join(root, kind.from, "*.json"))
		if err != nil {
			return err
		}
		for _, m := range matches {
			raw, err := os.ReadFile(m)
			if err != nil {
				return err
			}
			var probe map[string]any
			if err := json.Unmarshal(raw, &probe); err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
			encoded := dashboards.EncodeJSONObjects(raw, logp.NewNopLogger())
			var out bytes.Buffer
			if err := json.Indent(&out, encoded, "", "  "); err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
			// Fleet wants each object in a file named after its id.
			id, _ := probe["id"].(string)
			if id == "" {
				return fmt.Errorf("%s: a saved object without id", m)
			}
			files["kibana/"+kind.to+"/"+id+".json"] = out.Bytes()
		}
	}
	return nil
}

func mustYAML(v any) []byte {
	out, err := yaml.Marshal(v)
	if err != nil {
		panic(err) // only maps, slices and scalars built here
	}
	return out
}

// totalFieldsLimit is the mapping limit of the package's data streams, as libbeat sets it.
const totalFieldsLimit = 12500

// defaultPipeline is the beat's final pipeline, which only sets event.ingested, as a data
// stream's default pipeline: its processors, under a description that says where it runs.
func defaultPipeline(root string) ([]byte, error) {
	name := filepath.Join(root, "_meta", "elasticsearch", "ingest_pipeline", "final.yml")
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var final struct {
		Processors []any `yaml:"processors"`
	}
	if err := yaml.Unmarshal(raw, &final); err != nil || len(final.Processors) == 0 {
		return nil, fmt.Errorf("%s: no processors (%v)", name, err)
	}
	body := mustYAML(yaml.MapSlice{
		{Key: "description", Value: "defenderbeat data stream pipeline: documents arrive mapped; it only sets event.ingested."},
		{Key: "processors", Value: final.Processors},
	})
	// package-spec wants pipelines to start with a YAML document marker.
	return append([]byte("---\n"), body...), nil
}

// ForBeat describes the package of this build of defenderbeat: its input types and what they
// accept come from the beat's own list of datasets.
func ForBeat(root, out, version string) Package {
	var inputs []InputType
	for _, t := range beater.InputTypes() {
		ds, _ := beater.DatasetOfInput(t)
		inputs = append(inputs, InputType{Type: t, Dataset: ds})
	}
	return Package{Root: root, Out: out, Version: version, Inputs: inputs, Accepts: beater.InputAccepts}
}
