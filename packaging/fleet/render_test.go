package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"
	"gopkg.in/yaml.v2"

	"github.com/defenderbeat/defenderbeat/beater"
)

// render compiles a stream template the way Fleet does (Kibana's agent template compiler:
// Handlebars without HTML escaping, escape_string single-quotes and doubles quotes, a yaml
// variable becomes a placeholder replaced by its parsed value), for the constructs StreamTemplate
// writes: {{#if x}}, {{#if x.length}}, {{#each x as |item|}}, {{x}}, {{escape_string x}}.
func render(t *testing.T, tmpl string, vars []Var, values map[string]any) map[string]any {
	t.Helper()
	types := map[string]string{}
	for _, v := range vars {
		types[v.Name] = v.Type
	}
	placeholders := map[string]any{}
	lookup := func(name string) any {
		v, ok := values[name]
		if !ok {
			return nil
		}
		if types[name] == "yaml" {
			var parsed any
			if err := yaml.Unmarshal([]byte(v.(string)), &parsed); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			key := "##" + name + "##"
			placeholders[key] = parsed
			return key
		}
		return v
	}
	truthy := func(v any) bool {
		switch x := v.(type) {
		case nil:
			return false
		case bool:
			return x
		case string:
			return x != ""
		case int:
			return x != 0
		case []any:
			return len(x) > 0
		}
		return true
	}
	escape := func(v any) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(fmt.Sprint(v), "'", "''"), "\n", "\n\n") + "'"
	}
	ifOpen := regexp.MustCompile(`^\{\{#if ([a-z_]+)(\.length)?\}\}$`)
	eachOpen := regexp.MustCompile(`^\{\{#each ([a-z_]+) as \|item\|\}\}$`)
	expr := regexp.MustCompile(`\{\{(escape_string )?([a-z_]+)\}\}`)
	substitute := func(line string, item any) string {
		return expr.ReplaceAllStringFunc(line, func(m string) string {
			g := expr.FindStringSubmatch(m)
			var v any
			if g[2] == "item" {
				v = item
			} else {
				v = lookup(g[2])
			}
			if g[1] != "" {
				return escape(v)
			}
			if s, ok := v.(string); ok && strings.HasPrefix(s, "##") {
				return `"` + s + `"`
			}
			if v == nil {
				return ""
			}
			return fmt.Sprint(v)
		})
	}
	var out []string
	lines := strings.Split(tmpl, "\n")
	skip := false
	var each []string
	var eachOf any
	inEach := false
	for _, line := range lines {
		switch {
		case ifOpen.MatchString(line):
			skip = !truthy(lookup(ifOpen.FindStringSubmatch(line)[1]))
		case line == "{{/if}}":
			skip = false
		case skip:
		case eachOpen.MatchString(line):
			inEach, each, eachOf = true, nil, lookup(eachOpen.FindStringSubmatch(line)[1])
		case line == "{{/each}}":
			inEach = false
			list, _ := eachOf.([]any)
			for _, item := range list {
				for _, l := range each {
					out = append(out, substitute(l, item))
				}
			}
		case inEach:
			each = append(each, line)
		default:
			out = append(out, substitute(line, nil))
		}
	}
	// A yaml variable alone on its line (processors:\n"##processors##") is replaced by its value
	// as YAML text before the template is parsed.
	for i, line := range out {
		if parsed, ok := placeholders[strings.Trim(line, `"`)]; ok && strings.HasPrefix(line, `"##`) {
			dump, err := yaml.Marshal(parsed)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = strings.TrimSuffix(string(dump), "\n")
		}
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(strings.Join(out, "\n")), &doc); err != nil {
		t.Fatalf("the rendered template is no YAML: %v\n%s", err, strings.Join(out, "\n"))
	}
	for k, v := range doc {
		if s, ok := v.(string); ok {
			if parsed, ok := placeholders[s]; ok {
				doc[k] = parsed
			}
		}
	}
	return doc
}

// TestRenderedStreamsPassTheBeatsCheck renders each stream as Fleet would, with the package's
// defaults and a user's values (a secret with quotes and a '#', a proxy, TLS options,
// processors), and gives the result to the beat's configuration check.
func TestRenderedStreamsPassTheBeatsCheck(t *testing.T) {
	dir := build(t)
	byInput := streamVarsByInput(t, dir)
	templates := map[string]string{}
	matches, _ := filepath.Glob(filepath.Join(dir, "data_stream", "*", "manifest.yml"))
	for _, m := range matches {
		var man dataStreamManifest
		readYAML(t, m, &man)
		for _, s := range man.Streams {
			raw, err := readFile(filepath.Join(filepath.Dir(m), "agent", "stream", s.TemplatePath))
			if err != nil {
				t.Fatal(err)
			}
			templates[s.Input] = raw
		}
	}
	const secret = `it's: #secret`
	for _, input := range beater.InputTypes() {
		vars := byInput[input]
		values := map[string]any{}
		for _, v := range vars {
			if v.Default != nil {
				values[v.Name] = v.Default
			}
		}
		for k, v := range minimalSettings[input] {
			values[k] = v
		}
		for _, v := range vars {
			switch v.Name {
			case "client_secret", "storage_account_key":
				values[v.Name] = secret
			case "proxy_url":
				values[v.Name] = "http://proxy.example:3128"
			case "ssl":
				values[v.Name] = "verification_mode: full\nsupported_protocols: [TLSv1.2, TLSv1.3]"
			case "processors":
				values[v.Name] = "- add_fields:\n    target: team\n    fields: {name: soc}"
			}
		}
		doc := render(t, templates[input], vars, values)
		for _, name := range []string{"client_secret", "storage_account_key"} {
			if _, set := values[name]; set && doc[name] != secret {
				t.Errorf("%s: %s renders as %#v", input, name, doc[name])
			}
		}
		if _, ok := doc["ssl"].(map[any]any); !ok && values["ssl"] != nil {
			t.Errorf("%s: ssl renders as %#v", input, doc["ssl"])
		}
		if _, ok := doc["processors"].([]any); !ok {
			t.Errorf("%s: processors render as %#v", input, doc["processors"])
		}
		if tags, _ := doc["tags"].([]any); len(tags) != 2 || tags[0] != "forwarded" {
			t.Errorf("%s: tags render as %#v", input, doc["tags"])
		}
		doc["type"], doc["id"] = input, "from-fleet"
		cfg, err := conf.NewConfigFrom(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := beater.CheckInputs([]*conf.C{cfg}); err != nil {
			t.Errorf("%s rendered by Fleet: %v", input, err)
		}
	}
}

func readFile(name string) (string, error) {
	raw, err := os.ReadFile(name)
	return string(raw), err
}
