package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/defenderbeat/defenderbeat/internal/yamlconv"

	"gopkg.in/yaml.v2"
)

// A data stream's fields are those the beat's own index template has for it: the ECS fields
// (libbeat's ECS base, as include/fields.yml carries it, and _meta/fields.common.yml) and the
// module's fields.yml. The data stream's constant fields come first, in base-fields.yml, as
// Fleet packages declare them.

// baseFields are the fields every data stream of the package declares itself.
func baseFields(dataset string) []map[string]any {
	return []map[string]any{
		{"name": "data_stream.type", "type": "constant_keyword", "description": "Data stream type."},
		{"name": "data_stream.dataset", "type": "constant_keyword", "description": "Data stream dataset."},
		{"name": "data_stream.namespace", "type": "constant_keyword", "description": "Data stream namespace."},
		{"name": "event.module", "type": "constant_keyword", "description": "Event module.", "value": "m365_defender"},
		{"name": "event.dataset", "type": "constant_keyword", "description": "Event dataset.", "value": "m365_defender." + dataset},
		{"name": "@timestamp", "type": "date", "description": "Event timestamp."},
	}
}

// ecsFields are the ECS fields of the beat's template, less the base fields.
func ecsFields(root string) ([]map[string]any, error) {
	generated, err := readFieldsFile(filepath.Join(root, "include", "fields.yml"))
	if err != nil {
		return nil, err
	}
	common, err := readFieldsFile(filepath.Join(root, "_meta", "fields.common.yml"))
	if err != nil {
		return nil, err
	}
	keep := []string{"ecs"}
	for _, k := range common {
		keep = append(keep, fmt.Sprint(k["key"]))
	}
	var fields []map[string]any
	for _, k := range generated {
		if slices.Contains(keep, fmt.Sprint(k["key"])) {
			fields = append(fields, children(k)...)
		}
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("include/fields.yml has no ECS fields: run go tool mage update")
	}
	for _, f := range baseFields("") {
		fields = without(fields, strings.Split(f["name"].(string), "."))
	}
	return fields, nil
}

// moduleFields are the fields a module's fields.yml declares, every section's.
func moduleFields(root, dataset string) ([]map[string]any, error) {
	keys, err := readFieldsFile(filepath.Join(root, "module", dataset, "_meta", "fields.yml"))
	if err != nil {
		return nil, err
	}
	var fields []map[string]any
	for _, k := range keys {
		fields = append(fields, children(k)...)
	}
	return fields, nil
}

// readFieldsFile reads a libbeat fields.yml: a list of sections ("key", "title", "fields").
func readFieldsFile(name string) ([]map[string]any, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	list, ok := yamlconv.JSONShaped(doc).([]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a list of sections", name)
	}
	var sections []map[string]any
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			sections = append(sections, m)
		}
	}
	return sections, nil
}

func children(f map[string]any) []map[string]any {
	list, _ := f["fields"].([]any)
	return maps(list)
}

func maps(list []any) []map[string]any {
	out := make([]map[string]any, 0, len(list))
	for _, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if m["type"] == "object" && m["object_type"] == nil {
			// A container whose members ECS declares one by one (dns.answers): its mapping
			// follows from theirs, and package-spec wants a type for an object's values.
			continue
		}
		out = append(out, clean(m))
	}
	return out
}

// packageFieldKeys are the field properties package-spec knows; libbeat's fields.yml has a few
// more (required, input_format…) that only libbeat's template builder reads.
var packageFieldKeys = []string{
	"name", "type", "description", "value", "example", "pattern", "fields", "doc_values", "index",
	"store", "copy_to", "enabled", "dynamic", "scaling_factor", "analyzer", "search_analyzer",
	"multi_fields", "null_value", "ignore_malformed", "ignore_above", "object_type",
	"object_type_mapping_type", "path", "normalize", "normalizer", "include_in_parent",
	"include_in_root", "subobjects", "level", "group", "footnote", "format", "title",
	"default_field", "norms", "expected_values", "date_format", "unit", "metric_type",
}

func clean(f map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range f {
		if !slices.Contains(packageFieldKeys, k) {
			continue
		}
		if list, ok := v.([]any); ok && (k == "fields" || k == "multi_fields") {
			v = maps(list)
		}
		out[k] = v
	}
	return out
}

// without removes the field at a dotted path, and a group left empty by it.
func without(fields []map[string]any, path []string) []map[string]any {
	var out []map[string]any
	for _, f := range fields {
		name := strings.Split(fmt.Sprint(f["name"]), ".")
		switch {
		case slices.Equal(name, path):
			continue
		case len(name) < len(path) && slices.Equal(name, path[:len(name)]):
			sub, _ := f["fields"].([]map[string]any)
			sub = without(sub, path[len(name):])
			if len(sub) == 0 {
				continue
			}
			f["fields"] = sub
		}
		out = append(out, f)
	}
	return out
}
