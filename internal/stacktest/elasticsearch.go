// Package stacktest holds fake Elasticsearch and Kibana servers (httptest, 127.0.0.1) that
// record every request and answer like the real APIs defenderbeat uses: index templates (with
// Elasticsearch's rule against two overlapping templates of one priority), ILM policies, ingest
// pipelines, indices and mappings, transforms, _bulk into data streams (op type create only, one
// document per _id, the template's final pipeline run), and Kibana's saved-objects import and
// export (missing references refused). Tests of setup and of the Elasticsearch output use them.
package stacktest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte // decompressed
}

func (r Request) String() string { return r.Method + " " + r.Path }

// Doc is a document indexed through _bulk.
type Doc struct {
	ID     string
	Source map[string]any
}

// DataStream is a data stream created by the first write to its name.
type DataStream struct {
	Name     string
	Template string // the index template it was created from
	Docs     []Doc
}

// Elasticsearch is a fake cluster.
type Elasticsearch struct {
	srv        *httptest.Server
	version    string
	serverless bool

	mu          sync.Mutex
	requests    []Request
	policies    map[string]map[string]any
	pipelines   map[string]map[string]any
	templates   map[string]map[string]any
	indices     map[string]map[string]any // name -> {"mappings", "settings", "aliases"}
	transforms  map[string]map[string]any
	started     map[string]bool
	dataStreams map[string]*DataStream
}

// ESOption configures the fake cluster.
type ESOption func(*Elasticsearch)

// Serverless makes the cluster report the serverless build flavour (no ILM API).
func Serverless() ESOption { return func(e *Elasticsearch) { e.serverless = true } }

// WithIndexTemplate preloads an index template, as another installer (Fleet) would have.
func WithIndexTemplate(name string, body map[string]any) ESOption {
	return func(e *Elasticsearch) { e.templates[name] = body }
}

// WithTransform preloads a transform, as Fleet would have.
func WithTransform(id string, body map[string]any) ESOption {
	return func(e *Elasticsearch) { e.transforms[id] = body }
}

// WithPipeline preloads an ingest pipeline (only set processors can run).
func WithPipeline(name string, body map[string]any) ESOption {
	return func(e *Elasticsearch) { e.pipelines[name] = body }
}

// NewElasticsearch starts a fake cluster reporting version 9.3.0, with Elasticsearch's built-in
// "logs" template (logs-*-*, priority 100).
func NewElasticsearch(opts ...ESOption) *Elasticsearch {
	e := &Elasticsearch{
		version:     "9.3.0",
		policies:    map[string]map[string]any{},
		pipelines:   map[string]map[string]any{},
		templates:   map[string]map[string]any{},
		indices:     map[string]map[string]any{},
		transforms:  map[string]map[string]any{},
		started:     map[string]bool{},
		dataStreams: map[string]*DataStream{},
	}
	e.templates["logs"] = map[string]any{
		"index_patterns": []any{"logs-*-*"},
		"priority":       float64(100),
		"data_stream":    map[string]any{},
		"_meta":          map[string]any{"managed": true, "description": "default logs template installed by x-pack"},
	}
	for _, o := range opts {
		o(e)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	return e
}

// URL is the cluster's address.
func (e *Elasticsearch) URL() string { return e.srv.URL }

// Close stops the server.
func (e *Elasticsearch) Close() { e.srv.Close() }

// Requests returns every request so far.
func (e *Elasticsearch) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.requests...)
}

// Writes returns the requests that change the cluster (neither GET nor HEAD), _bulk excluded.
func (e *Elasticsearch) Writes() []Request {
	var out []Request
	for _, r := range e.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.HasSuffix(r.Path, "/_bulk") {
			out = append(out, r)
		}
	}
	return out
}

// Template returns an installed index template.
func (e *Elasticsearch) Template(name string) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.templates[name]
}

// Policy returns an installed ILM policy body ({"policy": ...}).
func (e *Elasticsearch) Policy(name string) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.policies[name]
}

// Pipeline returns an installed ingest pipeline.
func (e *Elasticsearch) Pipeline(name string) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pipelines[name]
}

// Index returns an index ({"mappings", "settings", "aliases"}).
func (e *Elasticsearch) Index(name string) map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.indices[name]
}

// Transform returns a transform and whether it is started.
func (e *Elasticsearch) Transform(id string) (map[string]any, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.transforms[id], e.started[id]
}

// DataStream returns a data stream created by _bulk.
func (e *Elasticsearch) DataStream(name string) *DataStream {
	e.mu.Lock()
	defer e.mu.Unlock()
	ds, ok := e.dataStreams[name]
	if !ok {
		return nil
	}
	cp := *ds
	cp.Docs = append([]Doc(nil), ds.Docs...)
	return &cp
}

// DataStreams names every data stream.
func (e *Elasticsearch) DataStreams() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for n := range e.dataStreams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BulkAction is one action line of a _bulk request.
type BulkAction struct {
	Op       string // create, index, ...
	Index    string
	ID       string
	Pipeline string
}

// BulkActions lists the action lines of every _bulk request, in order.
func (e *Elasticsearch) BulkActions() []BulkAction {
	var out []BulkAction
	for _, r := range e.Requests() {
		if !strings.HasSuffix(r.Path, "/_bulk") {
			continue
		}
		var lines [][]byte
		for _, l := range bytes.Split(r.Body, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 { // Elasticsearch skips blank lines; libbeat sends some
				lines = append(lines, l)
			}
		}
		for i := 0; i+1 < len(lines); i += 2 {
			var action map[string]map[string]any
			if json.Unmarshal(lines[i], &action) != nil {
				continue
			}
			for op, meta := range action {
				index, _ := meta["_index"].(string)
				id, _ := meta["_id"].(string)
				pipeline, _ := meta["pipeline"].(string)
				out = append(out, BulkAction{Op: op, Index: index, ID: id, Pipeline: pipeline})
			}
		}
	}
	return out
}

func (e *Elasticsearch) serve(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "parse_exception", err.Error())
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = append(e.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body})

	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.URL.Path == "/":
		e.root(w)
	case parts[0] == "_license":
		writeJSON(w, http.StatusOK, map[string]any{"license": map[string]any{"uid": "fake", "type": "basic", "status": "active"}})
	case parts[0] == "_bulk" || (len(parts) == 2 && parts[1] == "_bulk"):
		e.bulk(w, r, body)
	case parts[0] == "_ilm" && len(parts) == 3 && parts[1] == "policy":
		e.ilmPolicy(w, r, parts[2], body)
	case parts[0] == "_ingest" && len(parts) == 3 && parts[1] == "pipeline":
		e.pipeline(w, r, parts[2], body)
	case parts[0] == "_index_template" && len(parts) == 2:
		e.indexTemplate(w, r, parts[1], body)
	case parts[0] == "_transform" && len(parts) >= 2:
		e.transform(w, r, parts[1:], body)
	case parts[0] == "_data_stream" && len(parts) == 2:
		if ds, ok := e.dataStreams[parts[1]]; ok {
			writeJSON(w, http.StatusOK, map[string]any{"data_streams": []any{map[string]any{"name": ds.Name, "template": ds.Template}}})
			return
		}
		writeError(w, http.StatusNotFound, "index_not_found_exception", "no such index ["+parts[1]+"]")
	case !strings.HasPrefix(parts[0], "_") && len(parts) == 1:
		e.index(w, r, parts[0], body)
	case !strings.HasPrefix(parts[0], "_") && len(parts) == 2 && parts[1] == "_mapping":
		e.mapping(w, r, parts[0], body)
	default:
		writeError(w, http.StatusNotFound, "unsupported", "the fake does not serve "+r.Method+" "+r.URL.Path)
	}
}

func (e *Elasticsearch) root(w http.ResponseWriter) {
	flavor := "default"
	if e.serverless {
		flavor = "serverless"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": "fake", "cluster_name": "fake", "cluster_uuid": "fake-uuid",
		"version": map[string]any{"number": e.version, "build_flavor": flavor},
		"tagline": "You Know, for Search",
	})
}

func (e *Elasticsearch) ilmPolicy(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	if e.serverless {
		writeError(w, http.StatusGone, "api_not_available_exception", "Request for uri ["+r.URL.Path+"] with method ["+r.Method+"] exists but is not available when running in serverless mode")
		return
	}
	switch r.Method {
	case http.MethodGet:
		p, ok := e.policies[name]
		if !ok {
			writeError(w, http.StatusNotFound, "resource_not_found_exception", "Lifecycle policy not found: "+name)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{name: map[string]any{"version": 1, "modified_date": "2025-01-01T00:00:00.000Z", "policy": p["policy"]}})
	case http.MethodPut:
		doc, err := decodeObject(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		if err := onlyKeys(doc, "put_lifecycle_request", "policy"); err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		phases, _ := get(doc, "policy", "phases").(map[string]any)
		if len(phases) == 0 {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", "[policy] phases are required")
			return
		}
		e.policies[name] = doc
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method)
	}
}

func (e *Elasticsearch) pipeline(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	switch r.Method {
	case http.MethodGet:
		p, ok := e.pipelines[name]
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]any{})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{name: p})
	case http.MethodPut:
		doc, err := decodeObject(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "parse_exception", err.Error())
			return
		}
		if err := onlyKeys(doc, "pipeline", "description", "processors", "on_failure", "version", "_meta", "deprecated"); err != nil {
			writeError(w, http.StatusBadRequest, "parse_exception", err.Error())
			return
		}
		if _, ok := doc["processors"].([]any); !ok {
			writeError(w, http.StatusBadRequest, "parse_exception", "[processors] required property is missing")
			return
		}
		e.pipelines[name] = doc
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method)
	}
}

func (e *Elasticsearch) indexTemplate(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		var list []any
		for _, n := range sortedKeys(e.templates) {
			if glob(name, n) {
				list = append(list, map[string]any{"name": n, "index_template": e.templates[n]})
			}
		}
		if len(list) == 0 && !strings.Contains(name, "*") {
			writeError(w, http.StatusNotFound, "resource_not_found_exception", "index template matching ["+name+"] not found")
			return
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusOK)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"index_templates": list})
	case http.MethodPut:
		doc, err := decodeObject(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		if err := onlyKeys(doc, "index_template", "index_patterns", "template", "composed_of", "priority", "version", "_meta", "data_stream", "allow_auto_create", "ignore_missing_component_templates", "deprecated"); err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		pats := stringList(doc["index_patterns"])
		if len(pats) == 0 {
			writeError(w, http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;")
			return
		}
		prio := number(doc["priority"])
		for _, other := range sortedKeys(e.templates) {
			if other == name || number(e.templates[other]["priority"]) != prio {
				continue
			}
			for _, p := range pats {
				for _, q := range stringList(e.templates[other]["index_patterns"]) {
					if globsIntersect(p, q) {
						writeError(w, http.StatusBadRequest, "illegal_argument_exception", fmt.Sprintf(
							"index template [%s] has index patterns %v matching patterns from existing templates [%s] with patterns (%s => %v) that have the same priority [%v], multiple index templates may not match during index creation, please use a different priority",
							name, pats, other, other, stringList(e.templates[other]["index_patterns"]), prio))
						return
					}
				}
			}
		}
		e.templates[name] = doc
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method)
	}
}

func (e *Elasticsearch) index(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	idx, exists := e.indices[name]
	switch r.Method {
	case http.MethodHead:
		if exists {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusNotFound)
		}
	case http.MethodGet:
		if !exists {
			writeError(w, http.StatusNotFound, "index_not_found_exception", "no such index ["+name+"]")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{name: idx})
	case http.MethodPut:
		if exists {
			writeError(w, http.StatusBadRequest, "resource_already_exists_exception", "index ["+name+"] already exists")
			return
		}
		doc, err := decodeObject(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		if err := onlyKeys(doc, "create_index_request", "mappings", "settings", "aliases"); err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		for alias := range asMap(doc["aliases"]) {
			if _, clash := e.indices[alias]; clash {
				writeError(w, http.StatusBadRequest, "invalid_alias_name_exception", "an index exists with the same name as the alias")
				return
			}
		}
		e.indices[name] = map[string]any{"mappings": asMap(doc["mappings"]), "settings": asMap(doc["settings"]), "aliases": asMap(doc["aliases"])}
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true, "shards_acknowledged": true, "index": name})
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method)
	}
}

func (e *Elasticsearch) mapping(w http.ResponseWriter, r *http.Request, name string, body []byte) {
	idx, exists := e.indices[name]
	if !exists {
		writeError(w, http.StatusNotFound, "index_not_found_exception", "no such index ["+name+"]")
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{name: map[string]any{"mappings": idx["mappings"]}})
	case http.MethodPut:
		doc, err := decodeObject(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "mapper_parsing_exception", err.Error())
			return
		}
		current := asMap(idx["mappings"])
		if err := mergeProperties(asMap(current["properties"]), asMap(doc["properties"]), ""); err != nil {
			writeError(w, http.StatusBadRequest, "illegal_argument_exception", err.Error())
			return
		}
		if props := asMap(doc["properties"]); len(props) > 0 && current["properties"] == nil {
			current["properties"] = props
		}
		for _, k := range []string{"_meta", "dynamic_templates"} {
			if v, ok := doc[k]; ok {
				current[k] = v
			}
		}
		idx["mappings"] = current
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method)
	}
}

// mergeProperties adds new fields; changing a field's type is refused, as by Elasticsearch.
func mergeProperties(into, add map[string]any, prefix string) error {
	for k, v := range add {
		nv := asMap(v)
		old, ok := into[k]
		if !ok {
			into[k] = nv
			continue
		}
		ov := asMap(old)
		if ot, nt := ov["type"], nv["type"]; ot != nil && nt != nil && ot != nt {
			return fmt.Errorf("mapper [%s%s] cannot be changed from type [%v] to [%v]", prefix, k, ot, nt)
		}
		if np := asMap(nv["properties"]); len(np) > 0 {
			op := asMap(ov["properties"])
			if err := mergeProperties(op, np, prefix+k+"."); err != nil {
				return err
			}
			ov["properties"] = op
		}
	}
	return nil
}

func (e *Elasticsearch) transform(w http.ResponseWriter, r *http.Request, parts []string, body []byte) {
	id := parts[0]
	action := ""
	if len(parts) > 1 {
		action = parts[1]
	}
	t, exists := e.transforms[id]
	notFound := func() {
		writeError(w, http.StatusNotFound, "resource_not_found_exception", "Transform with id ["+id+"] could not be found")
	}
	switch {
	case action == "" && r.Method == http.MethodGet:
		var list []any
		for _, n := range sortedKeys(e.transforms) {
			if glob(id, n) {
				list = append(list, e.transforms[n])
			}
		}
		if len(list) == 0 && !strings.Contains(id, "*") {
			notFound()
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"count": len(list), "transforms": list})
	case action == "" && r.Method == http.MethodPut:
		if exists {
			writeError(w, http.StatusConflict, "resource_already_exists_exception", "Transform with id ["+id+"] already exists")
			return
		}
		doc, err := decodeObject(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		if err := onlyKeys(doc, "data_frame_transform_config", "source", "dest", "latest", "pivot", "description", "frequency", "sync", "retention_policy", "settings", "_meta"); err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		if get(doc, "dest", "index") == nil || get(doc, "source", "index") == nil || (doc["latest"] == nil) == (doc["pivot"] == nil) {
			writeError(w, http.StatusBadRequest, "action_request_validation_exception", "Validation Failed: source.index, dest.index and exactly one of latest or pivot are required")
			return
		}
		if r.URL.Query().Get("defer_validation") != "true" {
			// Without deferral Elasticsearch checks that the source exists now.
			if !e.sourceExists(doc) {
				writeError(w, http.StatusBadRequest, "validation_exception", "Source index does not exist")
				return
			}
		}
		doc["id"] = id
		doc["version"] = "10.0.0"
		doc["create_time"] = time.Now().UnixMilli()
		e.transforms[id] = doc
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	case action == "" && r.Method == http.MethodDelete:
		if !exists {
			notFound()
			return
		}
		if e.started[id] && r.URL.Query().Get("force") != "true" {
			writeError(w, http.StatusConflict, "status_exception", "Cannot delete transform ["+id+"] as the task is running. Stop the task first")
			return
		}
		delete(e.transforms, id)
		delete(e.started, id)
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	case action == "_start" && r.Method == http.MethodPost:
		if !exists {
			notFound()
			return
		}
		if e.started[id] {
			writeError(w, http.StatusConflict, "status_exception", "Cannot start transform ["+id+"] as it is already started.")
			return
		}
		if unattended, _ := get(t, "settings", "unattended").(bool); !unattended && !e.sourceExists(t) {
			writeError(w, http.StatusBadRequest, "validation_exception", "Source index does not exist")
			return
		}
		e.started[id] = true
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	case action == "_stop" && r.Method == http.MethodPost:
		if !exists {
			notFound()
			return
		}
		e.started[id] = false
		writeJSON(w, http.StatusOK, map[string]any{"acknowledged": true})
	case action == "_stats" && r.Method == http.MethodGet:
		if !exists {
			notFound()
			return
		}
		state := "stopped"
		if e.started[id] {
			state = "started"
		}
		writeJSON(w, http.StatusOK, map[string]any{"count": 1, "transforms": []any{map[string]any{"id": id, "state": state}}})
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" "+r.URL.Path)
	}
}

func (e *Elasticsearch) sourceExists(t map[string]any) bool {
	for _, src := range stringList(get(t, "source", "index")) {
		for n := range e.dataStreams {
			if glob(src, n) {
				return true
			}
		}
		for n := range e.indices {
			if glob(src, n) {
				return true
			}
		}
	}
	return false
}

// bulk indexes NDJSON actions. Names matching a data stream template become data streams, which
// take only op type create and index each _id once (409 for a repeat).
func (e *Elasticsearch) bulk(w http.ResponseWriter, r *http.Request, body []byte) {
	defaultIndex := ""
	if parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/"); len(parts) == 2 {
		defaultIndex = parts[0]
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var items []any
	failed := false
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var action map[string]map[string]any
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			writeError(w, http.StatusBadRequest, "illegal_argument_exception", "Malformed action/metadata line")
			return
		}
		var op string
		var meta map[string]any
		for op, meta = range action {
		}
		if !sc.Scan() {
			writeError(w, http.StatusBadRequest, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
			return
		}
		var source map[string]any
		if err := json.Unmarshal(sc.Bytes(), &source); err != nil {
			writeError(w, http.StatusBadRequest, "x_content_parse_exception", err.Error())
			return
		}
		index, _ := meta["_index"].(string)
		if index == "" {
			index = defaultIndex
		}
		id, _ := meta["_id"].(string)
		pipeline, _ := meta["pipeline"].(string)
		if pipeline == "" {
			pipeline = r.URL.Query().Get("pipeline")
		}
		status, errType, reason := e.indexDoc(op, index, id, pipeline, source)
		item := map[string]any{"_index": index, "_id": id, "status": status}
		if errType != "" {
			failed = true
			item["error"] = map[string]any{"type": errType, "reason": reason}
		} else {
			item["result"] = "created"
		}
		items = append(items, map[string]any{op: item})
	}
	writeJSON(w, http.StatusOK, map[string]any{"took": 1, "errors": failed, "items": items})
}

// indexDoc stores one document. Like Elasticsearch it runs the request's pipeline, or else the
// index's default_pipeline ("_none" runs neither), and then the final_pipeline.
func (e *Elasticsearch) indexDoc(op, index, id, requested string, source map[string]any) (int, string, string) {
	ds, ok := e.dataStreams[index]
	if !ok {
		tmplName, tmpl := e.matchingTemplate(index)
		if tmpl == nil || tmpl["data_stream"] == nil {
			return http.StatusBadRequest, "illegal_argument_exception", "the fake only indexes into data streams; no data stream template matches [" + index + "]"
		}
		ds = &DataStream{Name: index, Template: tmplName}
		e.dataStreams[index] = ds
	}
	if op != "create" {
		return http.StatusBadRequest, "illegal_argument_exception", "only write ops with an op_type of create are allowed in data streams"
	}
	if id == "" {
		id = fmt.Sprintf("auto-%d", len(ds.Docs))
	}
	for _, d := range ds.Docs {
		if d.ID == id {
			return http.StatusConflict, "version_conflict_engine_exception", "[" + id + "]: version conflict, document already exists"
		}
	}
	settings := get(e.templates[ds.Template], "template", "settings", "index")
	first := requested
	if first == "" {
		first, _ = get(settings, "default_pipeline").(string)
	}
	final, _ := get(settings, "final_pipeline").(string)
	for _, pipeline := range []string{first, final} {
		if pipeline == "" || pipeline == "_none" {
			continue
		}
		p, ok := e.pipelines[pipeline]
		if !ok {
			return http.StatusBadRequest, "illegal_argument_exception", "pipeline with id [" + pipeline + "] does not exist"
		}
		runPipeline(p, source)
	}
	ds.Docs = append(ds.Docs, Doc{ID: id, Source: source})
	return http.StatusCreated, "", ""
}

// matchingTemplate picks the highest-priority template whose pattern matches, as Elasticsearch
// does when it creates an index or data stream.
func (e *Elasticsearch) matchingTemplate(index string) (string, map[string]any) {
	best, bestPrio := "", -1.0
	for _, n := range sortedKeys(e.templates) {
		for _, p := range stringList(e.templates[n]["index_patterns"]) {
			if glob(p, index) && number(e.templates[n]["priority"]) > bestPrio {
				best, bestPrio = n, number(e.templates[n]["priority"])
			}
		}
	}
	if best == "" {
		return "", nil
	}
	return best, e.templates[best]
}

// runPipeline applies the set processors that copy the ingest timestamp, the only kind the beat's
// pipeline uses; any other processor is an error in the test that sent it.
func runPipeline(p map[string]any, doc map[string]any) {
	for _, proc := range asList(p["processors"]) {
		set := asMap(asMap(proc)["set"])
		field, _ := set["field"].(string)
		if field == "" {
			panic(fmt.Sprintf("stacktest: unsupported processor %v", proc))
		}
		value := set["value"]
		if value == "{{{_ingest.timestamp}}}" {
			value = time.Now().UTC().Format(time.RFC3339Nano)
		}
		putPath(doc, field, value)
	}
}

func putPath(doc map[string]any, field string, value any) {
	parts := strings.Split(field, ".")
	cur := doc
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = value
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		defer gz.Close()
		rd = gz
	}
	return io.ReadAll(rd)
}

func decodeObject(body []byte) (map[string]any, error) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("request body is not a JSON object: %w", err)
	}
	if doc == nil {
		return nil, fmt.Errorf("request body is required")
	}
	return doc, nil
}

// onlyKeys refuses unknown top-level keys, as Elasticsearch's strict request parsers do.
func onlyKeys(doc map[string]any, parser string, allowed ...string) error {
	for k := range doc {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("[%s] unknown field [%s]", parser, k)
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, typ, reason string) {
	writeJSON(w, status, map[string]any{
		"error":  map[string]any{"type": typ, "reason": reason, "root_cause": []any{map[string]any{"type": typ, "reason": reason}}},
		"status": status,
	})
}

// glob matches a name against Elasticsearch's simple wildcard patterns (only *).
func glob(pattern, name string) bool { return globsIntersect(pattern, name) }

// globsIntersect tells whether some name matches both wildcard patterns.
func globsIntersect(a, b string) bool {
	switch {
	case a == "" && b == "":
		return true
	case a == "":
		return strings.Trim(b, "*") == ""
	case b == "":
		return strings.Trim(a, "*") == ""
	case a[0] == '*':
		return globsIntersect(a[1:], b) || globsIntersect(a, b[1:])
	case b[0] == '*':
		return globsIntersect(a, b[1:]) || globsIntersect(a[1:], b)
	case a[0] == b[0]:
		return globsIntersect(a[1:], b[1:])
	}
	return false
}

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

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func stringList(v any) []string {
	var out []string
	switch t := v.(type) {
	case []any:
		for _, s := range t {
			out = append(out, fmt.Sprint(s))
		}
	case []string:
		out = t
	case string:
		out = []string{t}
	}
	return out
}

func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
