package stacktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Kibana is a fake Kibana with the status API and the saved-objects import and export APIs.
type Kibana struct {
	srv     *httptest.Server
	version string

	mu       sync.Mutex
	requests []Request
	objects  map[string]map[string]any // "type/id" -> saved object as stored
	imports  [][]map[string]any        // every accepted import, in order
}

// NewKibana starts a fake Kibana reporting version 9.3.0.
func NewKibana() *Kibana {
	k := &Kibana{version: "9.3.0", objects: map[string]map[string]any{}}
	k.srv = httptest.NewServer(http.HandlerFunc(k.serve))
	return k
}

// URL is Kibana's address.
func (k *Kibana) URL() string { return k.srv.URL }

// Close stops the server.
func (k *Kibana) Close() { k.srv.Close() }

// Requests returns every request so far.
func (k *Kibana) Requests() []Request {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Request(nil), k.requests...)
}

// Object returns a stored saved object.
func (k *Kibana) Object(typ, id string) map[string]any {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.objects[typ+"/"+id]
}

// Objects lists the stored objects as "type/id".
func (k *Kibana) Objects() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return sortedKeys(k.objects)
}

// Imports returns the objects of every accepted import call, in order.
func (k *Kibana) Imports() [][]map[string]any {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]map[string]any(nil), k.imports...)
}

func (k *Kibana) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		kibanaError(w, http.StatusBadRequest, err.Error())
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests = append(k.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body})
	if r.Method != http.MethodGet && r.Header.Get("kbn-xsrf") == "" {
		kibanaError(w, http.StatusBadRequest, "Request must contain a kbn-xsrf header.")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/status":
		writeJSON(w, http.StatusOK, map[string]any{
			"name":    "kibana",
			"version": map[string]any{"number": k.version, "build_snapshot": false, "build_flavor": "traditional"},
			"status":  map[string]any{"overall": map[string]any{"level": "available"}},
		})
	case r.Method == http.MethodPost && r.URL.Path == "/api/saved_objects/_import":
		k.importObjects(w, r, body)
	case r.Method == http.MethodPost && r.URL.Path == "/api/saved_objects/_export":
		k.exportObjects(w, body)
	default:
		kibanaError(w, http.StatusNotFound, "Not Found")
	}
}

// importObjects checks objects the way the import API does: an .ndjson file of saved objects of
// known types whose attributes fit the type's schema (dashboards keep panelsJSON, optionsJSON and
// searchSourceJSON as JSON strings), and whose references exist in Kibana or in the same file.
func (k *Kibana) importObjects(w http.ResponseWriter, r *http.Request, body []byte) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		kibanaError(w, http.StatusUnsupportedMediaType, "Unsupported Media Type")
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "file" {
		kibanaError(w, http.StatusBadRequest, "[request body.file]: expected value of type [Stream] but got [undefined]")
		return
	}
	if !strings.HasSuffix(part.FileName(), ".ndjson") {
		kibanaError(w, http.StatusBadRequest, fmt.Sprintf("Invalid file extension %s", part.FileName()))
		return
	}
	content, _ := io.ReadAll(part)
	var objs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(make([]byte, 0, 1<<20), 32<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var o map[string]any
		if err := json.Unmarshal(line, &o); err != nil {
			kibanaError(w, http.StatusBadRequest, "Unexpected token in JSON: "+err.Error())
			return
		}
		objs = append(objs, o)
	}
	inFile := map[string]bool{}
	for _, o := range objs {
		inFile[fmt.Sprint(o["type"], "/", o["id"])] = true
	}
	var errs []any
	var ok []any
	var accepted []map[string]any
	for _, o := range objs {
		typ, _ := o["type"].(string)
		id, _ := o["id"].(string)
		title, _ := get(o, "attributes", "title").(string)
		if problem := validateObject(o); problem != "" {
			errs = append(errs, map[string]any{"id": id, "type": typ, "title": title, "meta": map[string]any{"title": title},
				"error": map[string]any{"type": "unknown", "message": problem, "statusCode": 400}})
			continue
		}
		var missing []any
		for _, ref := range asList(o["references"]) {
			key := fmt.Sprint(get(ref, "type"), "/", get(ref, "id"))
			if !inFile[key] && k.objects[key] == nil {
				missing = append(missing, map[string]any{"type": get(ref, "type"), "id": get(ref, "id")})
			}
		}
		if len(missing) > 0 {
			errs = append(errs, map[string]any{"id": id, "type": typ, "title": title, "meta": map[string]any{"title": title},
				"error": map[string]any{"type": "missing_references", "references": missing}})
			continue
		}
		stored := map[string]any{}
		for key, v := range o {
			stored[key] = v
		}
		now := time.Now().UTC().Format(time.RFC3339Nano)
		stored["updated_at"], stored["created_at"], stored["version"] = now, now, "WzEsMV0="
		if _, ok := stored["managed"]; !ok {
			stored["managed"] = false
		}
		k.objects[typ+"/"+id] = stored
		accepted = append(accepted, o)
		ok = append(ok, map[string]any{"type": typ, "id": id, "meta": map[string]any{"title": title}})
	}
	if len(accepted) > 0 {
		k.imports = append(k.imports, accepted)
	}
	resp := map[string]any{"success": len(errs) == 0, "successCount": len(ok), "successResults": ok, "warnings": []any{}}
	if len(errs) > 0 {
		resp["errors"] = errs
	}
	writeJSON(w, http.StatusOK, resp)
}

// attribute schemas of the saved-object types defenderbeat ships: a key outside the list, or of
// the wrong JSON type, fails the import as it does in Kibana.
var savedObjectSchemas = map[string]map[string]string{
	"dashboard": {
		"title": "string", "description": "string", "panelsJSON": "json-string", "optionsJSON": "json-string",
		"timeRestore": "bool", "timeFrom": "string", "timeTo": "string", "refreshInterval": "object",
		"kibanaSavedObjectMeta": "object", "controlGroupInput": "object", "version": "number", "hits": "number",
	},
	"index-pattern": {
		"title": "string", "name": "string", "timeFieldName": "string", "runtimeFieldMap": "json-string",
		"fieldFormatMap": "json-string", "fieldAttrs": "json-string", "fields": "json-string",
		"sourceFilters": "json-string", "allowNoIndex": "bool", "typeMeta": "json-string", "allowHidden": "bool",
	},
}

func validateObject(o map[string]any) string {
	typ, _ := o["type"].(string)
	id, _ := o["id"].(string)
	if id == "" {
		return "id is required"
	}
	schema, ok := savedObjectSchemas[typ]
	if !ok {
		return fmt.Sprintf("Unsupported saved object type: '%s'", typ)
	}
	attrs, ok := o["attributes"].(map[string]any)
	if !ok {
		return "attributes are required"
	}
	if _, ok := attrs["title"].(string); !ok {
		return "[attributes.title]: expected value of type [string]"
	}
	for key, v := range attrs {
		want, known := schema[key]
		if !known {
			return fmt.Sprintf("[attributes.%s]: definition for this key is missing", key)
		}
		if problem := checkType(want, v); problem != "" {
			return fmt.Sprintf("[attributes.%s]: %s", key, problem)
		}
	}
	if meta, ok := attrs["kibanaSavedObjectMeta"].(map[string]any); ok {
		if problem := checkType("json-string", meta["searchSourceJSON"]); meta["searchSourceJSON"] != nil && problem != "" {
			return "[attributes.kibanaSavedObjectMeta.searchSourceJSON]: " + problem
		}
	}
	for _, ref := range asList(o["references"]) {
		for _, k := range []string{"name", "type", "id"} {
			if s, _ := get(ref, k).(string); s == "" {
				return fmt.Sprintf("[references.%s]: expected value of type [string]", k)
			}
		}
	}
	return ""
}

func checkType(want string, v any) string {
	switch want {
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("expected value of type [string] but got [%T]", v)
		}
	case "json-string":
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("expected value of type [string] but got [%T]", v)
		}
		if !json.Valid([]byte(s)) {
			return "not valid JSON"
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("expected value of type [boolean] but got [%T]", v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Sprintf("expected value of type [number] but got [%T]", v)
		}
	case "object":
		if _, ok := v.(map[string]any); !ok {
			return fmt.Sprintf("expected value of type [object] but got [%T]", v)
		}
	}
	return ""
}

// exportObjects answers like Kibana's export with includeReferencesDeep: the objects asked for
// and everything they reference, one JSON object per line.
func (k *Kibana) exportObjects(w http.ResponseWriter, body []byte) {
	var req struct {
		Objects []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"objects"`
		IncludeReferencesDeep bool `json:"includeReferencesDeep"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		kibanaError(w, http.StatusBadRequest, err.Error())
		return
	}
	seen := map[string]bool{}
	var out bytes.Buffer
	var add func(key string) bool
	add = func(key string) bool {
		if seen[key] {
			return true
		}
		o := k.objects[key]
		if o == nil {
			return false
		}
		seen[key] = true
		line, _ := json.Marshal(o)
		out.Write(line)
		out.WriteByte('\n')
		if req.IncludeReferencesDeep {
			for _, ref := range asList(o["references"]) {
				add(fmt.Sprint(get(ref, "type"), "/", get(ref, "id")))
			}
		}
		return true
	}
	for _, o := range req.Objects {
		if !add(o.Type + "/" + o.ID) {
			kibanaError(w, http.StatusBadRequest, fmt.Sprintf("Error fetching objects to export: %s [%s] not found", o.Type, o.ID))
			return
		}
	}
	w.Header().Set("Content-Type", "application/ndjson")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(bytes.TrimSuffix(out.Bytes(), []byte("\n")))
}

func kibanaError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"statusCode": status, "error": http.StatusText(status), "message": msg})
}
