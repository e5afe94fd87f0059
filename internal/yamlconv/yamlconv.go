// Package yamlconv turns what gopkg.in/yaml.v2 decodes into the shapes encoding/json and
// Elasticsearch's APIs take.
package yamlconv

import "fmt"

// JSONShaped turns YAML's map[interface{}]interface{} into map[string]any, recursively (slices
// are converted in place).
func JSONShaped(v any) any {
	switch t := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, v := range t {
			m[fmt.Sprint(k)] = JSONShaped(v)
		}
		return m
	case []any:
		for i := range t {
			t[i] = JSONShaped(t[i])
		}
		return t
	}
	return v
}
