package stack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/elastic/elastic-agent-libs/version"
)

// Client is the slice of libbeat's Elasticsearch connection the installer uses.
type Client interface {
	Request(method, path, pipeline string, params map[string]string, body any) (int, []byte, error)
}

// Mode says who installs.
type Mode int

const (
	// ModeSetup is the setup command: everything is installed, and what differs from this
	// binary's version is replaced (an ILM policy only with setup.ilm.overwrite, since users tune
	// retention).
	ModeSetup Mode = iota
	// ModeConnect runs each time the output connects: what is missing is created, and what an
	// older defenderbeat installed is upgraded; transforms are left to setup.
	ModeConnect
)

// InstallOptions tune what may be replaced.
type InstallOptions struct {
	Mode               Mode
	BeatVersion        string
	OverwritePolicies  bool // setup.ilm.overwrite
	OverwriteTemplates bool // setup.template.overwrite (connect mode; setup always replaces)
}

// Outcome is what happened to one object.
type Outcome string

const (
	Created   Outcome = "created"
	Replaced  Outcome = "replaced"
	Updated   Outcome = "mappings updated"
	Unchanged Outcome = "unchanged"
	Kept      Outcome = "kept"
	Skipped   Outcome = "skipped"
)

// Result reports one object.
type Result struct {
	Kind    Kind
	Name    string
	About   string
	Outcome Outcome
	Detail  string // why it was kept or skipped, or what else was done (a transform started)
}

func (r Result) String() string {
	s := fmt.Sprintf("%s %s (%s): %s", r.Kind, r.Name, r.About, r.Outcome)
	if r.Detail != "" {
		s += "; " + r.Detail
	}
	return s
}

// Report is the outcome of an installation.
type Report struct {
	Results []Result
	// Others are objects of the integration found in the cluster and left untouched.
	Others []string
}

// Install puts the plan into Elasticsearch, idempotently: an object whose stored fingerprint equals
// the plan's is not written again. It stops at the first error, which names the object.
func Install(c Client, plan Plan, opts InstallOptions) (Report, error) {
	in := installer{c: c, opts: opts}
	var rep Report
	if opts.Mode == ModeSetup && len(plan.Templates) > 0 {
		others, err := in.integrationTemplates(plan)
		if err != nil {
			return rep, err
		}
		rep.Others = others
	}
	for _, list := range [][]Object{plan.Policies, plan.Pipelines, plan.Templates} {
		for _, o := range list {
			r, err := in.ensure(o)
			if err != nil {
				return rep, err
			}
			rep.Results = append(rep.Results, r)
		}
	}
	if opts.Mode != ModeSetup {
		return rep, nil
	}
	for _, t := range plan.Transforms {
		rs, err := in.ensureTransform(t)
		rep.Results = append(rep.Results, rs...)
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type installer struct {
	c    Client
	opts InstallOptions
}

// ensure creates, replaces or keeps one policy, pipeline, template or index.
func (in installer) ensure(o Object) (Result, error) {
	r := Result{Kind: o.Kind, Name: o.Name, About: o.About}
	existing, found, err := in.fetch(o.Kind, o.Name)
	if err != nil {
		return r, err
	}
	if !found {
		if err := in.put(o, false); err != nil {
			return r, err
		}
		r.Outcome = Created
		return r, nil
	}
	fingerprint, installedBy := stampOf(o.Kind, existing)
	if fingerprint == o.Fingerprint {
		r.Outcome = Unchanged
		return r, nil
	}
	replace, why := in.mayReplace(o.Kind, installedBy)
	if !replace {
		r.Outcome, r.Detail = Kept, why
		return r, nil
	}
	if err := in.put(o, true); err != nil {
		return r, err
	}
	r.Outcome = Replaced
	if o.Kind == KindIndex {
		r.Outcome = Updated
	}
	return r, nil
}

// mayReplace decides for an existing object whose fingerprint differs from the plan's;
// installedBy is the defenderbeat version that installed it ("" when defenderbeat did not).
func (in installer) mayReplace(kind Kind, installedBy string) (bool, string) {
	switch kind {
	case KindPolicy:
		if in.opts.OverwritePolicies {
			return true, ""
		}
		return false, "it differs from this version's; set setup.ilm.overwrite: true to replace it"
	case KindIndex:
		if installedBy == "" {
			return false, "it was not created by defenderbeat"
		}
		return true, ""
	}
	if in.opts.Mode == ModeSetup || in.opts.OverwriteTemplates {
		return true, ""
	}
	if installedBy != "" && olderThan(installedBy, in.opts.BeatVersion) {
		return true, ""
	}
	return false, "it differs from this version's; run `setup` (or set setup.template.overwrite: true) to replace it"
}

func olderThan(a, b string) bool {
	va, err := version.New(a)
	if err != nil {
		return true
	}
	vb, err := version.New(b)
	if err != nil {
		return false
	}
	return va.LessThan(vb)
}

// ensureTransform installs a latest transform after its destination index and starts it; when the
// integration's own copy of the transform exists, both are left to it.
func (in installer) ensureTransform(t Object) ([]Result, error) {
	r := Result{Kind: t.Kind, Name: t.Name, About: t.About}
	if t.FleetPattern != "" {
		ids, err := in.transformIDs(t.FleetPattern)
		if err != nil {
			return nil, err
		}
		if len(ids) > 0 {
			r.Outcome = Skipped
			r.Detail = fmt.Sprintf("the integration's transform %s already fills %s", strings.Join(ids, ", "), t.Dest.Name)
			return []Result{r}, nil
		}
	}
	var results []Result
	if t.Dest != nil {
		dr, err := in.ensure(*t.Dest)
		results = append(results, dr)
		if err != nil {
			return results, err
		}
	}
	existing, found, err := in.fetch(KindTransform, t.Name)
	if err != nil {
		return results, err
	}
	switch fingerprint, _ := stampOf(KindTransform, existing); {
	case !found:
		if err := in.put(t, false); err != nil {
			return results, err
		}
		r.Outcome = Created
	case fingerprint == t.Fingerprint:
		r.Outcome = Unchanged
	default:
		// A transform's latest/pivot cannot be updated in place: stop, delete, create.
		path := "/_transform/" + url.PathEscape(t.Name)
		if err := in.do("POST", path+"/_stop", map[string]string{"force": "true", "wait_for_completion": "true"}, nil, t); err != nil {
			return results, err
		}
		if err := in.do("DELETE", path, nil, nil, t); err != nil {
			return results, err
		}
		if err := in.put(t, false); err != nil {
			return results, err
		}
		r.Outcome = Replaced
	}
	started, err := in.startTransform(t)
	if err != nil {
		return append(results, r), err
	}
	if started {
		r.Detail = "started"
	} else {
		r.Detail = "running"
	}
	return append(results, r), nil
}

// startTransform starts a transform unless it runs already; it reports whether it started it.
func (in installer) startTransform(t Object) (bool, error) {
	path := "/_transform/" + url.PathEscape(t.Name)
	status, body, err := in.c.Request("GET", path+"/_stats", "", nil, nil)
	if status != http.StatusOK {
		return false, in.failure("reading the state of", t, status, body, err)
	}
	var stats struct {
		Transforms []struct {
			State string `json:"state"`
		} `json:"transforms"`
	}
	_ = json.Unmarshal(body, &stats)
	if len(stats.Transforms) == 1 {
		switch stats.Transforms[0].State {
		case "started", "indexing":
			return false, nil
		}
	}
	status, body, err = in.c.Request("POST", path+"/_start", "", nil, nil)
	if status == http.StatusConflict { // started meanwhile
		return false, nil
	}
	if status != http.StatusOK {
		return false, in.failure("starting", t, status, body, err)
	}
	return true, nil
}

// fetch reads an object back in the shape it was sent (Elasticsearch's envelope removed).
func (in installer) fetch(kind Kind, name string) (map[string]any, bool, error) {
	var path string
	switch kind {
	case KindPolicy:
		path = "/_ilm/policy/" + url.PathEscape(name)
	case KindPipeline:
		path = "/_ingest/pipeline/" + url.PathEscape(name)
	case KindTemplate:
		path = "/_index_template/" + url.PathEscape(name)
	case KindIndex:
		path = "/" + url.PathEscape(name) + "/_mapping"
	case KindTransform:
		path = "/_transform/" + url.PathEscape(name)
	}
	status, body, err := in.c.Request("GET", path, "", nil, nil)
	if status == http.StatusNotFound {
		return nil, false, nil
	}
	if status != http.StatusOK {
		return nil, false, in.failure("reading", Object{Kind: kind, Name: name}, status, body, err)
	}
	var resp map[string]any
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, false, fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	switch kind {
	case KindPolicy:
		policy, _ := get(resp, name, "policy").(map[string]any)
		return map[string]any{"policy": policy}, true, nil
	case KindPipeline:
		pipeline, _ := resp[name].(map[string]any)
		return pipeline, true, nil
	case KindTemplate:
		for _, t := range asList(resp["index_templates"]) {
			if get(t, "name") == name {
				tmpl, _ := get(t, "index_template").(map[string]any)
				return tmpl, true, nil
			}
		}
		return nil, false, nil
	case KindIndex:
		for _, idx := range resp { // keyed by the concrete index name
			m, _ := idx.(map[string]any)
			return m, true, nil
		}
		return nil, false, nil
	case KindTransform:
		for _, t := range asList(resp["transforms"]) {
			if get(t, "id") == name {
				m, _ := t.(map[string]any)
				return m, true, nil
			}
		}
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("unknown kind %q", kind)
}

// put writes an object; update replaces an existing one (for an index: its mappings).
func (in installer) put(o Object, update bool) error {
	name := url.PathEscape(o.Name)
	switch o.Kind {
	case KindPolicy:
		return in.do("PUT", "/_ilm/policy/"+name, nil, o.Body, o)
	case KindPipeline:
		return in.do("PUT", "/_ingest/pipeline/"+name, nil, o.Body, o)
	case KindTemplate:
		return in.do("PUT", "/_index_template/"+name, nil, o.Body, o)
	case KindIndex:
		if update {
			return in.do("PUT", "/"+name+"/_mapping", nil, o.Body["mappings"], o)
		}
		return in.do("PUT", "/"+name, nil, o.Body, o)
	case KindTransform:
		// The source data streams may not exist yet: validation waits for the first start.
		return in.do("PUT", "/_transform/"+name, map[string]string{"defer_validation": "true"}, o.Body, o)
	}
	return fmt.Errorf("unknown kind %q", o.Kind)
}

func (in installer) do(method, path string, params map[string]string, body any, o Object) error {
	status, resp, err := in.c.Request(method, path, "", params, body)
	if status >= 200 && status < 300 {
		return nil
	}
	return in.failure(strings.ToLower(method)+" of", o, status, resp, err)
}

// failure names the object and quotes Elasticsearch's reason.
func (in installer) failure(what string, o Object, status int, body []byte, err error) error {
	var e struct {
		Error struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	}
	reason := ""
	if json.Unmarshal(body, &e) == nil && e.Error.Reason != "" {
		reason = fmt.Sprintf(": %s: %s", e.Error.Type, e.Error.Reason)
	} else if err != nil {
		reason = ": " + err.Error()
	}
	hint := ""
	if status == http.StatusForbidden || status == http.StatusUnauthorized {
		hint = " (the Elasticsearch user lacks a privilege; see the privileges in docs/setup.md)"
	}
	return fmt.Errorf("%s %s %s failed with HTTP %d%s%s", what, o.Kind, o.Name, status, reason, hint)
}

// transformIDs lists the transforms whose id matches a wildcard pattern.
func (in installer) transformIDs(pattern string) ([]string, error) {
	status, body, err := in.c.Request("GET", "/_transform/"+url.PathEscape(pattern), "", map[string]string{"size": "100"}, nil)
	if status == http.StatusNotFound {
		return nil, nil
	}
	if status != http.StatusOK {
		return nil, in.failure("listing", Object{Kind: KindTransform, Name: pattern}, status, body, err)
	}
	var resp struct {
		Transforms []struct {
			ID string `json:"id"`
		} `json:"transforms"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("listing transforms %s: %w", pattern, err)
	}
	var ids []string
	for _, t := range resp.Transforms {
		ids = append(ids, t.ID)
	}
	sort.Strings(ids)
	return ids, nil
}

// integrationTemplates lists the integration's own index templates (Fleet names them
// logs-m365_defender.<dataset>); defenderbeat never writes them, and their higher priority means
// they keep governing the data streams they match.
func (in installer) integrationTemplates(plan Plan) ([]string, error) {
	pattern := DataStreamPrefix + "*"
	status, body, err := in.c.Request("GET", "/_index_template/"+url.PathEscape(pattern), "", nil, nil)
	if status == http.StatusNotFound {
		return nil, nil
	}
	if status != http.StatusOK {
		return nil, in.failure("listing", Object{Kind: KindTemplate, Name: pattern}, status, body, err)
	}
	var resp map[string]any
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("listing index templates %s: %w", pattern, err)
	}
	ours := map[string]bool{}
	for _, t := range plan.Templates {
		ours[t.Name] = true
	}
	var others []string
	for _, t := range asList(resp["index_templates"]) {
		name, _ := get(t, "name").(string)
		if name == "" || ours[name] {
			continue
		}
		tmpl, _ := get(t, "index_template").(map[string]any)
		owner := "not managed by defenderbeat"
		if by, _ := get(tmpl, "_meta", "managed_by").(string); by != "" {
			owner = "managed by " + by
		}
		others = append(others, fmt.Sprintf("index template %s (%s, priority %v, %s) takes precedence where it matches; left as is",
			name, strings.Join(patterns(tmpl), ", "), tmpl["priority"], owner))
	}
	sort.Strings(others)
	return others, nil
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// ErrNoElasticsearch is returned when setup needs Elasticsearch but another output is configured.
var ErrNoElasticsearch = errors.New("index management needs the Elasticsearch output (output.elasticsearch)")
