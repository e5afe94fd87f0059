package graphalert

import (
	"fmt"
	"sort"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

// Builder collects multi-valued ECS fields: every value once, in the order first seen, the way
// the integration's `append … allow_duplicates: false` builds them.
type Builder struct {
	order  []string
	values map[string][]any
	seen   map[string]map[string]struct{}
	single map[string]bool
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{
		values: map[string][]any{},
		seen:   map[string]map[string]struct{}{},
		single: map[string]bool{},
	}
}

func key(v any) string { return fmt.Sprintf("%T:%v", v, v) }

// Add appends v to the field at path unless it is already there; empty strings and nil are
// ignored, as the integration's final clean-up would drop them.
func (b *Builder) Add(path string, v any) {
	if v == nil {
		return
	}
	if s, ok := v.(string); ok && s == "" {
		return
	}
	seen, ok := b.seen[path]
	if !ok {
		seen = map[string]struct{}{}
		b.seen[path] = seen
		b.order = append(b.order, path)
	}
	k := key(v)
	if _, dup := seen[k]; dup {
		return
	}
	seen[k] = struct{}{}
	b.values[path] = append(b.values[path], v)
}

// AddText appends the text form of a scalar (see text), ignoring anything else.
func (b *Builder) AddText(path string, v any) {
	if s, ok := text(v); ok {
		b.Add(path, s)
	}
}

// Replace sets the field at path to vs, dropping what was collected before.
func (b *Builder) Replace(path string, vs []any) {
	b.Delete(path)
	for _, v := range vs {
		b.Add(path, v)
	}
}

// Delete removes the field at path.
func (b *Builder) Delete(path string) {
	if _, ok := b.seen[path]; !ok {
		return
	}
	delete(b.seen, path)
	delete(b.values, path)
	for i, p := range b.order {
		if p == path {
			b.order = append(b.order[:i], b.order[i+1:]...)
			break
		}
	}
}

// Values returns the values collected for path.
func (b *Builder) Values(path string) []any { return b.values[path] }

// SingleWhenOne makes path a plain value instead of an array when it holds exactly one value,
// as the integration's scripts do for a few fields.
func (b *Builder) SingleWhenOne(path string) { b.single[path] = true }

// PutInto writes every collected field into m.
func (b *Builder) PutInto(m mapstr.M) {
	for _, path := range b.order {
		vs := b.values[path]
		if len(vs) == 0 {
			continue
		}
		if b.single[path] && len(vs) == 1 {
			_, _ = m.Put(path, vs[0])
			continue
		}
		_, _ = m.Put(path, list(vs))
	}
}

// list returns []string when every value is a string (the common case), else a copy of vs.
func list(vs []any) any {
	strs := make([]string, 0, len(vs))
	for _, v := range vs {
		s, ok := v.(string)
		if !ok {
			return append([]any(nil), vs...)
		}
		strs = append(strs, s)
	}
	return strs
}

// sortedSet is a set that yields its members in ascending order, like the integration's
// convertToOrderedArray.
type sortedSet struct {
	strs  map[string]struct{}
	longs map[int64]struct{}
}

func (s *sortedSet) addText(v any) {
	t, ok := v.(string)
	if !ok || t == "" {
		return
	}
	if s.strs == nil {
		s.strs = map[string]struct{}{}
	}
	s.strs[t] = struct{}{}
}

func (s *sortedSet) addLong(v any) {
	n, ok := v.(int64)
	if !ok {
		return
	}
	if s.longs == nil {
		s.longs = map[int64]struct{}{}
	}
	s.longs[n] = struct{}{}
}

func (s *sortedSet) empty() bool { return len(s.strs) == 0 && len(s.longs) == 0 }

func (s *sortedSet) values() []any {
	out := make([]any, 0, len(s.strs)+len(s.longs))
	if len(s.longs) > 0 {
		ns := make([]int64, 0, len(s.longs))
		for n := range s.longs {
			ns = append(ns, n)
		}
		sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
		for _, n := range ns {
			out = append(out, n)
		}
	}
	if len(s.strs) > 0 {
		ss := make([]string, 0, len(s.strs))
		for t := range s.strs {
			ss = append(ss, t)
		}
		sort.Strings(ss)
		for _, t := range ss {
			out = append(out, t)
		}
	}
	return out
}
