package fleet

import (
	"fmt"
	"slices"
	"strings"
)

// notVars are options Fleet and the Agent set themselves: the stream's id, its input type and
// the policy's namespace.
var notVars = []string{"id", "type", "namespace"}

// rawVars are options whose value is YAML of its own (libbeat's processors, a map of settings).
var rawVars = []string{"processors", "oauth_endpoint_params"}

// Var is one Fleet variable of a stream, as its manifest declares it.
type Var struct {
	Name        string `yaml:"name"`
	Type        string `yaml:"type"`
	Title       string `yaml:"title"`
	Description string `yaml:"description,omitempty"`
	Multi       bool   `yaml:"multi"`
	Required    bool   `yaml:"required"`
	ShowUser    bool   `yaml:"show_user"`
	Secret      bool   `yaml:"secret"`
	Default     any    `yaml:"default,omitempty"`
}

// Vars turns an input's documented options into Fleet variables. Options of a group
// (ssl.certificate_authorities) become one YAML variable named after the group (ssl), which
// takes every option of the group.
func Vars(in Input) []Var {
	var vars []Var
	for _, o := range in.Options {
		if slices.Contains(notVars, o.Name) {
			continue
		}
		if group, _, dotted := strings.Cut(o.Name, "."); dotted {
			if slices.ContainsFunc(vars, func(v Var) bool { return v.Name == group }) {
				continue
			}
			desc := fmt.Sprintf("The %s options, as YAML.", group)
			if o.Example != "" {
				desc += fmt.Sprintf(" Example: `%s: %s`.", strings.TrimPrefix(o.Name, group+"."), o.Example)
			}
			vars = append(vars, Var{Name: group, Type: "yaml", Title: titleOf(group), Description: desc})
			continue
		}
		desc := o.Description
		if o.Example != "" {
			desc = joinSentence(desc, fmt.Sprintf("Example: `%s`.", o.Example))
		}
		v := Var{
			Name: o.Name, Title: titleOf(o.Name), Description: desc,
			Required: o.Required, ShowUser: o.Set || o.Required, Secret: o.Secret(),
		}
		switch val := o.Value.(type) {
		case bool:
			v.Type = "bool"
		case int, int64, uint64:
			v.Type = "integer"
		case []any:
			v.Type, v.Multi = "text", true
		default:
			_ = val
			v.Type = "text"
		}
		if slices.Contains(rawVars, o.Name) {
			v.Type, v.Multi = "yaml", false
		}
		if v.Secret {
			v.Type = "password"
		}
		if o.Default {
			v.Default = o.Value
		}
		vars = append(vars, v)
	}
	return vars
}

// StreamTemplate renders every variable into the input's configuration, as the beat reads it
// from a file: a variable left empty leaves the option out, so the beat's default applies.
func StreamTemplate(vars []Var) string {
	var b strings.Builder
	b.WriteString("# Rendered by Fleet into one defenderbeat input; the options are those of its\n")
	b.WriteString("# reference configuration (defenderbeat.reference.yml).\n")
	for _, v := range vars {
		switch {
		case v.Type == "bool" && v.Default != nil:
			// Always rendered: a switch whose default is true must be able to say false.
			fmt.Fprintf(&b, "%s: {{%s}}\n", v.Name, v.Name)
		case v.Multi:
			fmt.Fprintf(&b, "{{#if %s.length}}\n%s:\n{{#each %s as |item|}}\n  - {{escape_string item}}\n{{/each}}\n{{/if}}\n", v.Name, v.Name, v.Name)
		case v.Name == "processors":
			fmt.Fprintf(&b, "{{#if %s}}\n%s:\n{{%s}}\n{{/if}}\n", v.Name, v.Name, v.Name)
		case v.Type == "text" || v.Type == "password":
			// Quoted for YAML; a secret's reference ($co.elastic.secret{…}) reads the same quoted.
			fmt.Fprintf(&b, "{{#if %s}}\n%s: {{escape_string %s}}\n{{/if}}\n", v.Name, v.Name, v.Name)
		default: // integer, bool without default, yaml (Fleet puts the parsed value in place)
			fmt.Fprintf(&b, "{{#if %s}}\n%s: {{%s}}\n{{/if}}\n", v.Name, v.Name, v.Name)
		}
	}
	return b.String()
}

func streamVars(in Input) ([]Var, string) {
	vars := Vars(in)
	return vars, StreamTemplate(vars)
}

// titleOf makes a label of an option name: batch_size → Batch size.
func titleOf(name string) string {
	words := strings.ReplaceAll(name, "_", " ")
	for _, acronym := range []string{"id", "url", "ssl", "cve", "sas", "http"} {
		words = replaceWord(words, acronym, strings.ToUpper(acronym))
	}
	words = replaceWord(words, "oauth", "OAuth")
	return strings.ToUpper(words[:1]) + words[1:]
}

func replaceWord(s, word, with string) string {
	parts := strings.Split(s, " ")
	for i, p := range parts {
		if p == word {
			parts[i] = with
		}
	}
	return strings.Join(parts, " ")
}
