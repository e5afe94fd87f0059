package stack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/elastic/beats/v7/libbeat/template"
	"github.com/elastic/elastic-agent-libs/mapstr"
	"github.com/elastic/elastic-agent-libs/paths"
	"github.com/elastic/elastic-agent-libs/version"
)

// Kind is the sort of Elasticsearch object; it decides the API that installs it.
type Kind string

const (
	KindPolicy    Kind = "ILM policy"
	KindPipeline  Kind = "ingest pipeline"
	KindTemplate  Kind = "index template"
	KindIndex     Kind = "index"
	KindTransform Kind = "transform"
)

// Object is one thing setup installs, with the exact body it sends.
type Object struct {
	Kind Kind
	Name string
	Body map[string]any
	// Fingerprint identifies the body; it is stored in the object's _meta, so a later setup can
	// tell "unchanged" from "changed" with one GET.
	Fingerprint string
	About       string // one line for the user: what it applies to
	// Transforms only: their destination index, created first with the right mappings, and the
	// id pattern of the integration's own copy of the transform.
	Dest         *Object
	FleetPattern string
}

// Target is the Elasticsearch the bodies are built for.
type Target struct {
	Version    version.V
	Serverless bool // data stream lifecycles (DSL) instead of ILM policies
}

// Plan is everything setup installs, each list in the order it is installed: policies and the
// pipeline before the templates that name them, templates before the transforms that read the
// data streams.
type Plan struct {
	Policies   []Object
	Pipelines  []Object
	Templates  []Object
	Transforms []Object
	// Notes say what was left out on purpose (for example ILM on serverless).
	Notes []string
}

// Objects lists every object in install order (a transform's destination index before it).
func (p Plan) Objects() []Object {
	var all []Object
	all = append(all, p.Policies...)
	all = append(all, p.Pipelines...)
	all = append(all, p.Templates...)
	for _, t := range p.Transforms {
		if t.Dest != nil {
			all = append(all, *t.Dest)
		}
		all = append(all, t)
	}
	return all
}

const (
	pipelineFile   = "elasticsearch/ingest_pipeline/final.yml"
	dataStreamDir  = "elasticsearch/data_stream"
	datasetPolicy  = "ilm/default_policy.json"
	transformDir   = "elasticsearch/transform"
	transformFile  = "transform.yml"
	ownerMetaKey   = "managed_by"
	ownerMetaValue = "defenderbeat"
)

// PipelineName is the final ingest pipeline every template sets.
func PipelineName(beatName string) string { return beatName + "-final" }

// Build turns the sources and the options into the objects setup installs on target.
func Build(opts Options, target Target) (Plan, error) {
	var plan Plan
	fsys, err := Sources()
	if err != nil {
		return plan, err
	}
	mode, note, err := lifecycleMode(opts, target)
	if err != nil {
		return plan, err
	}
	if note != "" {
		plan.Notes = append(plan.Notes, note)
	}
	datasets, err := dirsHolding(fsys, dataStreamDir, datasetPolicy)
	if err != nil {
		return plan, err
	}
	datasetPolicies := map[string]map[string]any{}
	for _, ds := range datasets {
		body, err := readDocument(fsys, path.Join(dataStreamDir, ds, datasetPolicy))
		if err != nil {
			return plan, err
		}
		datasetPolicies[ds] = body
	}

	if mode == modeILM {
		if !opts.ILM.CheckExists {
			plan.Notes = append(plan.Notes, "ILM policies are neither checked nor installed (setup.ilm.check_exists: false); the templates still name them.")
		} else {
			plan.Policies = append(plan.Policies, policyObject(opts, opts.ILM.PolicyName, opts.ILM.Policy, "every data stream without its own policy"))
			for _, ds := range datasets {
				plan.Policies = append(plan.Policies, policyObject(opts, datasetPolicyName(opts, ds), datasetPolicies[ds], DataStreamPrefix+ds+"-*"))
			}
		}
	}

	pipelineBody, err := readDocument(fsys, pipelineFile)
	if err != nil {
		return plan, err
	}
	pipeline := PipelineName(opts.Info.Beat)
	plan.Pipelines = append(plan.Pipelines, stamp(opts, Object{Kind: KindPipeline, Name: pipeline, Body: pipelineBody, About: "sets event.ingested"}))

	if !opts.Template.Enabled {
		plan.Notes = append(plan.Notes, "Index templates are not installed (setup.template.enabled: false).")
		return plan, nil
	}
	shared, err := sharedTemplate(opts, target, mode, pipeline)
	if err != nil {
		return plan, err
	}
	// Derived objects copy the shared body before it is stamped: each carries its own stamp.
	var derived []Object
	for _, ds := range datasets {
		derived = append(derived, stamp(opts, datasetTemplate(opts, shared, mode, ds, datasetPolicies[ds])))
	}

	transforms, err := dirsHolding(fsys, transformDir, transformFile)
	if err != nil {
		return plan, err
	}
	for _, name := range transforms {
		body, err := readDocument(fsys, path.Join(transformDir, name, transformFile))
		if err != nil {
			return plan, err
		}
		t, err := transformObject(opts, shared, name, body)
		if err != nil {
			return plan, err
		}
		plan.Transforms = append(plan.Transforms, t)
	}
	plan.Templates = append(append(plan.Templates, stamp(opts, shared)), derived...)
	return plan, nil
}

type lifecycleKind int

const (
	modeNone lifecycleKind = iota
	modeILM
	modeDSL
)

func lifecycleMode(opts Options, target Target) (lifecycleKind, string, error) {
	if target.Serverless {
		if opts.ILM.Explicit && opts.ILM.Enabled {
			return modeNone, "", errors.New("setup.ilm.enabled is true but Elasticsearch is serverless, which has no ILM: remove it (serverless uses data stream lifecycles, setup.dsl)")
		}
		if opts.DSL.Explicit && !opts.DSL.Enabled {
			return modeNone, "Data stream lifecycles are not set (setup.dsl.enabled: false).", nil
		}
		return modeDSL, "", nil
	}
	if opts.DSL.Explicit && opts.DSL.Enabled {
		return modeNone, "", errors.New("setup.dsl.enabled is true but Elasticsearch is not serverless: data stream lifecycles are for serverless projects; use setup.ilm")
	}
	if !opts.ILM.Enabled {
		return modeNone, "No lifecycle policies (setup.ilm.enabled: false): data streams keep their data until deleted by hand.", nil
	}
	return modeILM, "", nil
}

func datasetPolicyName(opts Options, dataset string) string {
	return opts.ILM.PolicyName + "-" + dataset
}

func policyObject(opts Options, name string, body map[string]any, about string) Object {
	return stamp(opts, Object{Kind: KindPolicy, Name: name, Body: plain(body), About: about})
}

// sharedTemplate maps every field of every dataset for all defenderbeat data streams, with libbeat's
// template builder (so setup.template.* behave as in other Beats).
func sharedTemplate(opts Options, target Target, mode lifecycleKind, pipeline string) (Object, error) {
	cfg := opts.Template
	index := mapstr.M{
		"final_pipeline": pipeline,
		// As Elasticsearch's logs data streams: a malformed value loses its field, not the document.
		"mapping": mapstr.M{"ignore_malformed": true},
	}
	switch mode {
	case modeILM:
		index["lifecycle"] = mapstr.M{"name": opts.ILM.PolicyName}
	case modeDSL:
		if opts.DSL.Policy != nil {
			cfg.Settings.Lifecycle = opts.DSL.Policy
		}
	}
	index.DeepUpdate(plain(mapstr.M(cfg.Settings.Index))) // the user's settings win
	cfg.Settings.Index = index

	tmpl, err := template.New(target.Serverless, opts.Info.Version, opts.Info.Beat, opts.Info.ElasticLicensed,
		target.Version, cfg, false, opts.log())
	if err != nil {
		return Object{}, fmt.Errorf("setup.template: %w", err)
	}
	var body mapstr.M
	switch {
	case cfg.JSON.Enabled:
		body, err = jsonTemplate(opts.Paths, cfg)
	case cfg.Fields != "":
		body, err = tmpl.LoadFile(resolveConfigPath(opts.Paths, cfg.Fields))
	default:
		body, err = tmpl.LoadBytes(opts.Fields)
	}
	if err != nil {
		return Object{}, fmt.Errorf("building the index template: %w", err)
	}
	name := tmpl.GetName()
	if cfg.JSON.Enabled {
		name = cfg.JSON.Name
	}
	out := Object{Kind: KindTemplate, Name: name, Body: plain(map[string]any(body))}
	out.About = fmt.Sprintf("%s, priority %v", strings.Join(patterns(out.Body), ", "), out.Body["priority"])
	return out, nil
}

func jsonTemplate(p *paths.Path, cfg template.TemplateConfig) (mapstr.M, error) {
	if cfg.JSON.Name == "" {
		return nil, errors.New("setup.template.json.name is required with setup.template.json.enabled")
	}
	raw, err := os.ReadFile(resolveConfigPath(p, cfg.JSON.Path))
	if err != nil {
		return nil, err
	}
	var body mapstr.M
	if err := json.Unmarshal(raw, &body); err != nil {
		return nil, fmt.Errorf("setup.template.json.path: %w", err)
	}
	return body, nil
}

func resolveConfigPath(p *paths.Path, file string) string {
	if p == nil {
		return file
	}
	return p.Resolve(paths.Config, file)
}

// datasetTemplate is the shared template narrowed to one dataset that has its own lifecycle, one
// priority step above the shared one.
func datasetTemplate(opts Options, shared Object, mode lifecycleKind, dataset string, policy map[string]any) Object {
	body := plain(shared.Body)
	pattern := DataStreamPrefix + dataset + "-*"
	body["index_patterns"] = []any{pattern}
	priority := opts.Template.Priority + 1
	body["priority"] = priority
	tmpl, _ := body["template"].(map[string]any)
	settings, _ := tmpl["settings"].(map[string]any)
	index, _ := settings["index"].(map[string]any)
	switch mode {
	case modeILM:
		if index != nil {
			index["lifecycle"] = map[string]any{"name": datasetPolicyName(opts, dataset)}
		}
	case modeDSL:
		if retention := deleteAfter(policy); retention != "" && tmpl != nil {
			tmpl["lifecycle"] = map[string]any{"data_retention": retention}
		}
	}
	return Object{
		Kind: KindTemplate, Name: shared.Name + "-" + dataset, Body: body,
		About: fmt.Sprintf("%s, priority %d", pattern, priority),
	}
}

// deleteAfter reads the min_age of an ILM policy's delete phase: the retention a data stream
// lifecycle gives the same data on serverless.
func deleteAfter(policy map[string]any) string {
	phases, _ := get(policy, "policy", "phases").(map[string]any)
	del, _ := phases["delete"].(map[string]any)
	age, _ := del["min_age"].(string)
	return age
}

// transformObject prepares a latest transform and its destination index, mapped like the source
// data streams so the Security app and the dashboards read typed fields.
func transformObject(opts Options, shared Object, name string, body map[string]any) (Object, error) {
	destIndex, _ := get(body, "dest", "index").(string)
	if destIndex == "" {
		return Object{}, fmt.Errorf("%s/%s: dest.index is required", name, transformFile)
	}
	delete(body, "_meta")
	tmpl, _ := shared.Body["template"].(map[string]any)
	indexBody := map[string]any{}
	if mappings, ok := tmpl["mappings"].(map[string]any); ok {
		mappings = plain(mappings)
		// One index gathers every namespace: a constant_keyword would refuse the second one.
		relaxConstantKeywords(mappings)
		indexBody["mappings"] = mappings
	}
	if settings, ok := tmpl["settings"].(map[string]any); ok {
		settings = plain(settings)
		if index, ok := settings["index"].(map[string]any); ok {
			// The transform, not ILM, prunes it (retention_policy); and the documents already
			// carry event.ingested from their data stream.
			delete(index, "lifecycle")
			delete(index, "final_pipeline")
		}
		indexBody["settings"] = settings
	}
	var aliasNames []string
	if aliases, ok := get(body, "dest", "aliases").([]any); ok {
		set := map[string]any{}
		for _, a := range aliases {
			if alias, _ := get(a, "alias").(string); alias != "" {
				set[alias] = map[string]any{}
				aliasNames = append(aliasNames, alias)
			}
		}
		if len(set) > 0 {
			indexBody["aliases"] = set
		}
	}
	dest := stamp(opts, Object{Kind: KindIndex, Name: destIndex, Body: indexBody, About: "alias " + strings.Join(aliasNames, ", ")})
	sources := fmt.Sprint(get(body, "source", "index"))
	t := stamp(opts, Object{
		Kind: KindTransform, Name: opts.Info.Beat + "-" + name, Body: body,
		About:        fmt.Sprintf("%s into %s", strings.Trim(sources, "[]"), destIndex),
		Dest:         &dest,
		FleetPattern: DataStreamPrefix + name + "-*",
	})
	return t, nil
}

// stamp fingerprints an object's body and records the fingerprint, the beat version and the owner
// in the body's _meta.
func stamp(opts Options, o Object) Object {
	var hashed any = o.Body
	if o.Kind == KindIndex {
		// Only an index's mappings can change in place; its settings belong to the index version.
		hashed = o.Body["mappings"]
	}
	raw, _ := json.Marshal(hashed) // maps marshal with sorted keys: one body, one fingerprint
	sum := sha256.Sum256(raw)
	o.Fingerprint = hex.EncodeToString(sum[:8])
	meta := metaOf(o.Kind, o.Body, true)
	meta[ownerMetaKey] = ownerMetaValue
	meta[ownerMetaValue] = map[string]any{"fingerprint": o.Fingerprint, "version": opts.Info.Version}
	return o
}

// metaOf finds the _meta object of a body (as sent, or as Elasticsearch returns it inside its
// envelope, which the installer strips first), creating it when create is set.
func metaOf(kind Kind, body map[string]any, create bool) map[string]any {
	holder := body
	switch kind {
	case KindPolicy:
		holder, _ = body["policy"].(map[string]any)
	case KindIndex:
		holder, _ = body["mappings"].(map[string]any)
	}
	if holder == nil {
		if !create {
			return nil
		}
		holder = map[string]any{}
		switch kind {
		case KindPolicy:
			body["policy"] = holder
		case KindIndex:
			body["mappings"] = holder
		}
	}
	meta, _ := holder["_meta"].(map[string]any)
	if meta == nil && create {
		meta = map[string]any{}
		holder["_meta"] = meta
	}
	return meta
}

// stampOf reads back what stamp wrote: the fingerprint and beat version, empty when the object
// was not installed by defenderbeat.
func stampOf(kind Kind, body map[string]any) (fingerprint, beatVersion string) {
	meta := metaOf(kind, body, false)
	s, _ := meta[ownerMetaValue].(map[string]any)
	fingerprint, _ = s["fingerprint"].(string)
	beatVersion, _ = s["version"].(string)
	return fingerprint, beatVersion
}

func patterns(body map[string]any) []string {
	var out []string
	switch p := body["index_patterns"].(type) {
	case []any:
		for _, v := range p {
			out = append(out, fmt.Sprint(v))
		}
	case string:
		out = append(out, p)
	}
	return out
}

// get walks nested JSON objects.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// relaxConstantKeywords maps every constant_keyword field of a mapping as keyword.
func relaxConstantKeywords(mapping map[string]any) {
	props, _ := mapping["properties"].(map[string]any)
	for _, v := range props {
		field, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if field["type"] == "constant_keyword" {
			field["type"] = "keyword"
			delete(field, "value")
		}
		relaxConstantKeywords(field)
	}
}
