// Package fieldscheck verifies that documents only carry fields declared in fields.yml files, each
// with a value its declared type accepts. The index template is built from those files, so an
// undeclared field would be mapped dynamically (often wrongly) and a type clash would be rejected
// by Elasticsearch: catching both in unit tests keeps the template and the transforms in step.
package fieldscheck

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/mapping"
)

// Schema is the set of declared fields, by dotted path.
type Schema struct {
	leaves map[string]mapping.Field
	groups map[string]bool
}

// Load reads libbeat-format fields.yml files. Declaring one leaf in two files is an error, as it
// would be when libbeat builds the template from them.
func Load(paths ...string) (*Schema, error) {
	var all mapping.Fields
	for _, p := range paths {
		fields, err := mapping.LoadFieldsYaml(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		merged, err := mapping.ConcatFields(all, fields)
		if err != nil {
			return nil, fmt.Errorf("%s: conflicts with earlier files: %w", p, err)
		}
		all = merged
	}
	s := &Schema{leaves: map[string]mapping.Field{}, groups: map[string]bool{}}
	if err := s.add("", all); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Schema) add(prefix string, fields mapping.Fields) error {
	for _, f := range fields {
		path := f.Name
		if prefix != "" {
			path = prefix + "." + f.Name
		}
		// Dotted names declare intermediate objects too.
		parts := strings.Split(path, ".")
		for i := 1; i < len(parts); i++ {
			s.groups[strings.Join(parts[:i], ".")] = true
		}
		if f.Type == "group" || (f.Type == "" && len(f.Fields) > 0) {
			s.groups[path] = true
			if err := s.add(path, f.Fields); err != nil {
				return err
			}
			continue
		}
		if _, dup := s.leaves[path]; dup {
			return fmt.Errorf("field %s declared twice", path)
		}
		s.leaves[path] = f
	}
	return nil
}

// Type returns the declared type of a leaf field ("" when it is not declared).
func (s *Schema) Type(path string) string {
	f, ok := s.leaves[path]
	if !ok {
		return ""
	}
	if f.Type == "" {
		return "keyword" // libbeat's default
	}
	return f.Type
}

// Check returns one problem per undeclared field or value of an incompatible type in doc, a
// document as it would be encoded to JSON (nested objects, arrays for multi-valued fields).
func (s *Schema) Check(doc map[string]any) []string {
	var problems []string
	s.walk("", doc, &problems)
	sort.Strings(problems)
	return dedup(problems)
}

func dedup(in []string) []string {
	out := in[:0]
	for i, p := range in {
		if i == 0 || p != in[i-1] {
			out = append(out, p)
		}
	}
	return out
}

func (s *Schema) walk(path string, v any, problems *[]string) {
	switch val := v.(type) {
	case map[string]any:
		if f, ok := s.leaves[path]; ok && acceptsObject(f) {
			return
		}
		if path != "" && !s.groups[path] {
			if _, leaf := s.leaves[path]; leaf {
				*problems = append(*problems, fmt.Sprintf("%s: declared %s, got an object", path, s.Type(path)))
			} else {
				*problems = append(*problems, fmt.Sprintf("%s: object not declared", path))
			}
			return
		}
		for k, child := range val {
			p := k
			if path != "" {
				p = path + "." + k
			}
			s.walk(p, child, problems)
		}
	case []any:
		for _, el := range val {
			s.walk(path, el, problems)
		}
	case nil:
		*problems = append(*problems, fmt.Sprintf("%s: null value", path))
	default:
		typ := s.Type(path)
		if typ == "" {
			*problems = append(*problems, fmt.Sprintf("%s: not declared (value %v)", path, val))
			return
		}
		if err := compatible(typ, val); err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: %v", path, err))
		}
	}
}

func acceptsObject(f mapping.Field) bool {
	switch f.Type {
	case "object", "flattened", "nested":
		return true
	}
	return false
}

func compatible(typ string, v any) error {
	switch typ {
	case "keyword", "wildcard", "text", "match_only_text", "constant_keyword":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("declared %s, got %T %v", typ, v, v)
		}
	case "long", "integer", "short", "byte", "unsigned_long":
		f, ok := numeric(v)
		if !ok || f != math.Trunc(f) {
			return fmt.Errorf("declared %s, got %T %v", typ, v, v)
		}
	case "float", "double", "half_float", "scaled_float":
		if _, ok := numeric(v); !ok {
			return fmt.Errorf("declared %s, got %T %v", typ, v, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("declared boolean, got %T %v", v, v)
		}
	case "date":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("declared date, got %T %v", v, v)
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return fmt.Errorf("declared date, got %q", s)
		}
	case "ip":
		s, ok := v.(string)
		if !ok || net.ParseIP(s) == nil {
			return fmt.Errorf("declared ip, got %v", v)
		}
	case "object", "flattened", "nested":
	default:
		return fmt.Errorf("type %s is not understood by fieldscheck", typ)
	}
	return nil
}

func numeric(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

// LibbeatECSFile returns the path of the ECS fields libbeat puts in every beat's template, found
// through the module cache of the libbeat version this module builds with.
func LibbeatECSFile() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/elastic/beats/v7").Output()
	if err != nil {
		return "", fmt.Errorf("locating libbeat: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("libbeat module directory not found (module cache empty?)")
	}
	return filepath.Join(dir, "libbeat", "_meta", "fields.ecs.yml"), nil
}
