package fleet

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v2"
)

// Input is one input type as its module's reference snippet (module/<dataset>/_meta/config.yml)
// documents it: the snippet is the one description of an input's options, read by people in
// defenderbeat.reference.yml and by the package generator for the Fleet variables.
type Input struct {
	Type        string // defender-alert
	Description string // the comment above "- type:"
	Options     []Option
	// Inherits names the input whose options also apply ("… options are those of
	// defender-alert, except service_sources"), where the snippet says so instead of repeating
	// them; Except are the ones that do not.
	Inherits string
	Except   []string
}

// Option is one documented option of an input.
//
// The snippet's conventions, which the parser reads:
//   - "  name: value" (set) is an option the user is expected to fill in; "  #name: value"
//     (commented out) is optional, and its value is the default;
//   - a trailing comment starting with "example" says the value is an example, not the
//     default; an environment reference (${VAR}), "" and [] are never defaults either;
//   - a trailing comment starting with "required" makes the option required;
//   - comment lines just above an option, the trailing comment and indented "# …" lines below
//     it describe it.
type Option struct {
	Name        string // dotted for a group member: ssl.certificate_authorities
	Value       any    // as written; nil when empty
	Default     bool   // Value is the default
	Set         bool   // not commented out in the snippet
	Required    bool
	Description string
	Example     string // the value as written, when it is an example
}

// Secret tells an option whose value is a credential: Fleet stores it as a secret and never
// shows it again.
func (o Option) Secret() bool {
	return secretName.MatchString(o.Name)
}

var secretName = regexp.MustCompile(`(secret|password|_key|connection_string)$`)

var (
	typeLine         = regexp.MustCompile(`^- type:\s*(\S+)\s*$`)
	optionLine       = regexp.MustCompile(`^  (#?)([a-z_]+(?:\.[a-z_]+)*):(.*)$`)
	commentLine      = regexp.MustCompile(`^  #(?: (.*))?$`)
	continuationLine = regexp.MustCompile(`^(?:  #\s+|\s{3,})# ?(.*)$`)
	inheritsComment  = regexp.MustCompile(`options are those of (defender-[a-z-]+)(?:, except ([a-z_]+(?:(?:, | and )[a-z_]+)*))?`)
	envReference     = regexp.MustCompile(`^\$\{[^}]*\}$`)
)

// ReadInputs parses every module's reference snippet under root, in the order of the files.
func ReadInputs(root string) ([]Input, error) {
	snippets, err := filepath.Glob(filepath.Join(root, "module", "*", "_meta", "config.yml"))
	if err != nil {
		return nil, err
	}
	if len(snippets) == 0 {
		return nil, fmt.Errorf("no module/*/_meta/config.yml under %s", root)
	}
	var inputs []Input
	for _, s := range snippets {
		raw, err := os.ReadFile(s)
		if err != nil {
			return nil, err
		}
		in, err := ParseSnippet(string(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		inputs = append(inputs, in...)
	}
	return inputs, nil
}

// ParseSnippet reads the inputs of one reference snippet.
func ParseSnippet(text string) ([]Input, error) {
	var (
		inputs  []Input
		pending []string // comment lines waiting for the next option or input
		last    *Option  // the option continuation lines extend
	)
	for n, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			pending, last = nil, nil
			continue
		}
		if m := typeLine.FindStringSubmatch(line); m != nil {
			inputs = append(inputs, Input{Type: m[1], Description: strings.Join(pending, " ")})
			pending, last = nil, nil
			continue
		}
		if strings.HasPrefix(line, "#") {
			pending = append(pending, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			last = nil
			continue
		}
		if len(inputs) == 0 {
			return nil, fmt.Errorf("line %d: %q before the first \"- type:\"", n+1, line)
		}
		in := &inputs[len(inputs)-1]
		if m := optionLine.FindStringSubmatch(line); m != nil {
			opt, err := parseOption(m[1] == "", m[2], m[3], pending)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			in.Options = append(in.Options, opt)
			pending, last = nil, &in.Options[len(in.Options)-1]
			continue
		}
		if m := continuationLine.FindStringSubmatch(line); m != nil && last != nil {
			last.Description = joinSentence(last.Description, m[1])
			continue
		}
		if m := commentLine.FindStringSubmatch(line); m != nil {
			if inh := inheritsComment.FindStringSubmatch(m[1]); inh != nil {
				in.Inherits = inh[1]
				if inh[2] != "" {
					in.Except = regexp.MustCompile(`, | and `).Split(inh[2], -1)
				}
			}
			pending = append(pending, m[1])
			last = nil
			continue
		}
		return nil, fmt.Errorf("line %d: %q is neither an option nor a comment", n+1, line)
	}
	return inputs, nil
}

func parseOption(set bool, name, rest string, above []string) (Option, error) {
	value, comment := splitComment(rest)
	opt := Option{Name: name, Set: set}
	if value != "" {
		var v any
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return opt, fmt.Errorf("%s: value %q: %w", name, value, err)
		}
		opt.Value = v
	}
	example := false
	if rest, ok := cutWord(comment, "example", ";:,"); ok {
		example, comment = true, rest
	}
	// "required with Entra ID auth types" is a condition, not the marker.
	if rest, ok := cutWord(comment, "required", ";:"); ok {
		opt.Required, comment = true, rest
	}
	opt.Default = !set && !example && !emptyValue(opt.Value, value)
	if example && !emptyValue(opt.Value, value) {
		opt.Example = value
	}
	opt.Description = joinSentence(strings.Join(above, " "), comment)
	return opt, nil
}

// splitComment separates "value   # comment"; a '#' inside a quoted value stays in it.
func splitComment(s string) (value, comment string) {
	s = strings.TrimSpace(s)
	inQuote := rune(0)
	for i, r := range s {
		switch {
		case inQuote != 0:
			if r == inQuote {
				inQuote = 0
			}
		case r == '"' || r == '\'':
			inQuote = r
		case r == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
		}
	}
	return s, ""
}

// cutWord removes a leading marker word, alone or followed by one of the separators.
func cutWord(comment, word, separators string) (string, bool) {
	rest, ok := strings.CutPrefix(comment, word)
	if !ok || (rest != "" && !strings.ContainsRune(separators, rune(rest[0]))) {
		return comment, false
	}
	return strings.TrimSpace(rest[min(1, len(rest)):]), true
}

func emptyValue(v any, raw string) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return t == "" || envReference.MatchString(t)
	case []any:
		return len(t) == 0
	case map[any]any:
		return len(t) == 0
	}
	return envReference.MatchString(raw)
}

func joinSentence(a, b string) string {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasSuffix(a, "."), strings.HasSuffix(a, ":"), strings.HasSuffix(a, ";"), strings.HasSuffix(a, ","):
		return a + " " + b
	}
	return a + "; " + b
}

// WithInherited adds the options of the input this one inherits from that it accepts and does
// not document itself.
func (in Input) WithInherited(all []Input, accepts func(name string) bool) (Input, error) {
	if in.Inherits == "" {
		return in, nil
	}
	i := slices.IndexFunc(all, func(o Input) bool { return o.Type == in.Inherits })
	if i < 0 {
		return in, fmt.Errorf("%s: options inherited from %s, which no snippet documents", in.Type, in.Inherits)
	}
	out := in
	out.Options = slices.Clone(in.Options)
	for _, o := range all[i].Options {
		own := slices.ContainsFunc(in.Options, func(x Option) bool { return x.Name == o.Name })
		if !own && !slices.Contains(in.Except, o.Name) && accepts(o.Name) {
			o.Set, o.Required = false, false
			out.Options = append(out.Options, o)
		}
	}
	return out, nil
}
