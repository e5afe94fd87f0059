package inputkit

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	conf "github.com/elastic/elastic-agent-libs/config"
)

// OptionSet names the options an input accepts. A name maps to the options grouped under it
// (ssl: certificate_authorities, verification_mode, …), or to nil when anything below it is
// accepted: a list, a map of parameters, libbeat's processors.
//
// go-ucfg, which unpacks configurations, ignores keys that no struct field names, so a
// misspelt option would silently fall back to its default. Inputs check their
// configuration against their OptionSet instead, at start-up, in `test config` and when
// Elastic Agent hands them a policy.
type OptionSet map[string]OptionSet

// OptionsOf collects the options the given configuration structs read, from their `config`
// tags: an inline struct adds its options to its parent's, a struct-typed option becomes a
// group. A type that unpacks itself (an Unpack method) is one option whatever its shape.
func OptionsOf(structs ...any) OptionSet {
	set := OptionSet{}
	for _, s := range structs {
		if s != nil {
			set.addStruct(reflect.TypeOf(s))
		}
	}
	return set
}

// beatInputOptions are read from every input by libbeat (publishing settings, the cursor
// lifetime) or by the beat's input list (enabled), not by the input itself.
var beatInputOptions = OptionSet{
	"type": nil, "id": nil, "enabled": nil,
	"processors": nil, "index": nil, "pipeline": nil, "keep_null": nil,
	"tags": nil, "fields": nil, "fields_under_root": nil,
	"publisher_pipeline": {"disable_host": nil},
	"service":            {"type": nil},
	"clean_inactive":     nil,
}

// WithBeatOptions adds the options libbeat reads from every input.
func (s OptionSet) WithBeatOptions() OptionSet {
	out := OptionSet{}
	out.merge(beatInputOptions)
	out.merge(s)
	return out
}

func (s OptionSet) merge(from OptionSet) {
	for name, group := range from {
		if group == nil {
			if _, ok := s[name]; !ok {
				s[name] = nil
			}
			continue
		}
		if s[name] == nil {
			s[name] = OptionSet{}
		}
		s[name].merge(group)
	}
}

// Unknown returns one problem per option of cfg that is not in the set, naming its full path
// and, when one is close, the option probably meant.
func (s OptionSet) Unknown(cfg *conf.C) []error {
	var errs []error
	s.unknown(cfg, "", &errs)
	return errs
}

func (s OptionSet) unknown(cfg *conf.C, prefix string, errs *[]error) {
	if cfg == nil || !cfg.IsDict() {
		return
	}
	fields := cfg.GetFields()
	slices.Sort(fields)
	for _, name := range fields {
		group, known := s[name]
		if !known {
			msg := fmt.Sprintf("%s%s: unknown option", prefix, name)
			if near := s.closest(name); near != "" {
				msg += fmt.Sprintf(" (did you mean %s%s?)", prefix, near)
			}
			*errs = append(*errs, fmt.Errorf("%s", msg))
			continue
		}
		if group == nil {
			continue
		}
		// A value of another shape (ssl: true) is the unpacking's to report.
		if child, err := cfg.Child(name, -1); err == nil {
			group.unknown(child, prefix+name+".", errs)
		}
	}
}

// closest is the known name nearest to name, if one is near: within two edits, or one edit in
// five for a long name (certificate_authority, certificate_authorities).
func (s OptionSet) closest(name string) string {
	best, bestDist := "", max(2, len(name)/5)+1
	for known := range s {
		if d := editDistance(name, known); d < bestDist || (d == bestDist && known < best) {
			best, bestDist = known, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (s OptionSet) addStruct(t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("config"), ",")
		name, inline := tag[0], slices.Contains(tag[1:], "inline")
		if name == "-" {
			continue
		}
		if name == "" && inline {
			s.addStruct(f.Type)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // go-ucfg's default
		}
		s.addOption(strings.Split(name, "."), f.Type)
	}
}

// addOption adds one option at a dotted path; go-ucfg reads "service.type" as service: {type}.
func (s OptionSet) addOption(path []string, t reflect.Type) {
	if len(path) > 1 {
		if s[path[0]] == nil {
			s[path[0]] = OptionSet{}
		}
		s[path[0]].addOption(path[1:], t)
		return
	}
	if !isGroup(t) {
		if _, ok := s[path[0]]; !ok {
			s[path[0]] = nil
		}
		return
	}
	if s[path[0]] == nil {
		s[path[0]] = OptionSet{}
	}
	s[path[0]].addStruct(t)
}

// isGroup tells a struct whose fields are options from a value go-ucfg hands to the type
// itself (it has an Unpack method) or one without options of its own (time.Time).
func isGroup(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	if _, ok := reflect.PointerTo(t).MethodByName("Unpack"); ok {
		return false
	}
	for i := range t.NumField() {
		if t.Field(i).IsExported() {
			return true
		}
	}
	return false
}
