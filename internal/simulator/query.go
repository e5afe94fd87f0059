package simulator

import (
	"fmt"
	"strings"
	"time"
)

// Graph stores DateTimeOffset values in 100 ns ticks and prints seven fraction digits.
const graphTimeLayout = "2006-01-02T15:04:05.0000000Z"

func formatGraphTime(t time.Time) string {
	return t.UTC().Truncate(100 * time.Nanosecond).Format(graphTimeLayout)
}

// formatShortGraphTime mimics the values Graph prints with trailing zeros dropped
// ("2026-02-25T16:29:33.1Z").
func formatShortGraphTime(t time.Time) string {
	return t.UTC().Truncate(100 * time.Nanosecond).Format(time.RFC3339Nano)
}

func parseGraphTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC().Truncate(100 * time.Nanosecond), nil
}

// queryError becomes a Graph 400 {"error":{"code":"BadRequest",...}}.
type queryError struct{ msg string }

func (e *queryError) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &queryError{msg: fmt.Sprintf(format, args...)}
}

type predicate func(*record) bool

type propertyType int

const (
	propDateTime propertyType = iota
	propString
)

// Filterable properties as documented for alerts_v2 and incidents.
var filterableProperties = map[entityKind]map[string]propertyType{
	kindAlert: {
		"assignedto": propString, "classification": propString, "determination": propString,
		"createddatetime": propDateTime, "lastupdatedatetime": propDateTime, "severity": propString,
		"servicesource": propString, "status": propString,
	},
	kindIncident: {
		"assignedto": propString, "classification": propString, "createddatetime": propDateTime,
		"determination": propString, "lastupdatedatetime": propDateTime, "severity": propString,
		"status": propString,
	},
}

// canonicalProperty maps the case-insensitive names Graph accepts to the JSON names.
var canonicalProperty = map[string]string{
	"assignedto": "assignedTo", "classification": "classification", "determination": "determination",
	"createddatetime": "createdDateTime", "lastupdatedatetime": "lastUpdateDateTime", "severity": "severity",
	"servicesource": "serviceSource", "status": "status",
}

type token struct {
	kind string // "ident", "string", "literal", "(", ")", ","
	text string
}

func tokenizeFilter(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, token{kind: string(c), text: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !closed {
				return nil, badRequestf("Invalid filter clause: unterminated string literal at position %d.", i)
			}
			toks = append(toks, token{kind: "string", text: b.String()})
			i = j
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n(),'", rune(s[j])) {
				j++
			}
			word := s[i:j]
			kind := "literal"
			if isIdentStart(word[0]) {
				kind = "ident"
			}
			toks = append(toks, token{kind: kind, text: word})
			i = j
		}
	}
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

type filterParser struct {
	toks   []token
	pos    int
	kind   entityKind
	entity string
}

// parseFilter compiles an OData $filter over the entity's filterable properties:
// comparisons (eq ne gt ge lt le, and in with a list of strings) joined by
// and/or/not and parentheses. Date
// literals are unquoted as OData requires; a quoted date is a type error, as on Graph.
func parseFilter(kind entityKind, expr string) (predicate, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, badRequestf("Invalid filter clause: The $filter expression must not be empty.")
	}
	toks, err := tokenizeFilter(expr)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks, kind: kind, entity: entityTypeName(kind)}
	pred, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, badRequestf("Invalid filter clause: Syntax error at position %d in '%s'.", p.pos, expr)
	}
	return pred, nil
}

func entityTypeName(kind entityKind) string {
	if kind == kindIncident {
		return "microsoft.graph.security.incident"
	}
	return "microsoft.graph.security.alert"
}

func (p *filterParser) peekKeyword(word string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == "ident" && strings.EqualFold(p.toks[p.pos].text, word)
}

func (p *filterParser) parseOr() (predicate, error) {
	left, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peekKeyword("or") {
		p.pos++
		right, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(r *record) bool { return l(r) || right(r) }
	}
	return left, nil
}

func (p *filterParser) parseAnd() (predicate, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.peekKeyword("and") {
		p.pos++
		right, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(r *record) bool { return l(r) && right(r) }
	}
	return left, nil
}

func (p *filterParser) parseUnary() (predicate, error) {
	if p.pos >= len(p.toks) {
		return nil, badRequestf("Invalid filter clause: Expression expected at the end of the $filter.")
	}
	if p.peekKeyword("not") {
		p.pos++
		inner, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return func(r *record) bool { return !inner(r) }, nil
	}
	if p.toks[p.pos].kind == "(" {
		p.pos++
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.toks) || p.toks[p.pos].kind != ")" {
			return nil, badRequestf("Invalid filter clause: ')' or operator expected at position %d.", p.pos)
		}
		p.pos++
		return inner, nil
	}
	return p.parseComparison()
}

func (p *filterParser) parseComparison() (predicate, error) {
	if p.pos+3 > len(p.toks) {
		return nil, badRequestf("Invalid filter clause: incomplete comparison.")
	}
	prop, op, val := p.toks[p.pos], p.toks[p.pos+1], p.toks[p.pos+2]
	p.pos += 3
	if prop.kind != "ident" {
		return nil, badRequestf("Invalid filter clause: property name expected, found '%s'.", prop.text)
	}
	key := strings.ToLower(prop.text)
	typ, ok := filterableProperties[p.kind][key]
	if !ok {
		return nil, badRequestf("Invalid filter clause: Could not find a property named '%s' on type '%s'.", prop.text, p.entity)
	}
	name := canonicalProperty[key]
	opName := strings.ToLower(op.text)
	if op.kind != "ident" {
		return nil, badRequestf("Invalid filter clause: operator expected after '%s'.", prop.text)
	}
	if opName == "in" {
		if typ != propString || val.kind != "(" {
			return nil, badRequestf("Invalid filter clause: The operator 'in' on property '%s' needs a parenthesized list of strings.", name)
		}
		p.pos-- // the list starts at val
		return p.parseInList(name)
	}
	switch opName {
	case "eq", "ne", "gt", "ge", "lt", "le":
	default:
		return nil, badRequestf("Invalid filter clause: The operator '%s' is not supported on property '%s'.", op.text, name)
	}

	if typ == propDateTime {
		if val.kind == "string" {
			return nil, badRequestf("Invalid filter clause: A binary operator with incompatible types was detected. Found operand types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind '%s'.", opName)
		}
		if val.kind != "literal" {
			return nil, badRequestf("Invalid filter clause: DateTimeOffset literal expected after '%s %s'.", name, opName)
		}
		want, err := parseGraphTime(val.text)
		if err != nil {
			return nil, badRequestf("Invalid filter clause: The DateTimeOffset text '%s' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?'.", val.text)
		}
		get := func(r *record) time.Time { return r.updated }
		if name == "createdDateTime" {
			get = func(r *record) time.Time { return r.created }
		}
		cmp := compareOp(opName)
		return func(r *record) bool { return cmp(get(r).Compare(want)) }, nil
	}

	// String-typed enums and assignedTo: only equality makes sense on Graph.
	if opName != "eq" && opName != "ne" {
		return nil, badRequestf("Invalid filter clause: The operator '%s' is not supported on property '%s'.", op.text, name)
	}
	var want *string
	switch {
	case val.kind == "string":
		s := val.text
		want = &s
	case val.kind == "ident" && val.text == "null":
	default:
		return nil, badRequestf("Invalid filter clause: A binary operator with incompatible types was detected. Found operand types 'Edm.String' and '%s' for operator kind '%s'.", val.text, opName)
	}
	eq := opName == "eq"
	return func(r *record) bool {
		v, isString := r.prop(name)
		var match bool
		if want == nil {
			match = !isString
		} else {
			match = isString && v == *want
		}
		return match == eq
	}, nil
}

// parseInList reads ('a','b',...) after "name in" and matches a record whose
// property is one of the strings.
func (p *filterParser) parseInList(name string) (predicate, error) {
	p.pos++ // (
	want := map[string]bool{}
	for {
		if p.pos >= len(p.toks) || p.toks[p.pos].kind != "string" {
			return nil, badRequestf("Invalid filter clause: string literal expected in the list of '%s in (...)'.", name)
		}
		want[p.toks[p.pos].text] = true
		p.pos++
		if p.pos >= len(p.toks) {
			return nil, badRequestf("Invalid filter clause: ')' expected to close the list of '%s in (...)'.", name)
		}
		switch p.toks[p.pos].kind {
		case ",":
			p.pos++
			continue
		case ")":
			p.pos++
			return func(r *record) bool {
				v, isString := r.prop(name)
				return isString && want[v]
			}, nil
		default:
			return nil, badRequestf("Invalid filter clause: ',' or ')' expected in the list of '%s in (...)'.", name)
		}
	}
}

func compareOp(op string) func(int) bool {
	switch op {
	case "eq":
		return func(c int) bool { return c == 0 }
	case "ne":
		return func(c int) bool { return c != 0 }
	case "gt":
		return func(c int) bool { return c > 0 }
	case "ge":
		return func(c int) bool { return c >= 0 }
	case "lt":
		return func(c int) bool { return c < 0 }
	default:
		return func(c int) bool { return c <= 0 }
	}
}

// ordering sorts records; ties (and the default order) fall back to id so
// offset paging is stable.
type ordering struct {
	field string // "", "lastUpdateDateTime" or "createdDateTime"
	desc  bool
}

func parseOrderBy(kind entityKind, s string) (ordering, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return ordering{}, nil
	}
	first := strings.TrimSpace(strings.Split(s, ",")[0])
	parts := strings.Fields(first)
	if len(parts) == 0 || len(parts) > 2 {
		return ordering{}, badRequestf("Invalid $orderby clause '%s'.", s)
	}
	var o ordering
	switch strings.ToLower(parts[0]) {
	case "lastupdatedatetime":
		o.field = "lastUpdateDateTime"
	case "createddatetime":
		o.field = "createdDateTime"
	case "id":
		o.field = ""
	default:
		return ordering{}, badRequestf("Could not find a property named '%s' on type '%s'.", parts[0], entityTypeName(kind))
	}
	if len(parts) == 2 {
		switch strings.ToLower(parts[1]) {
		case "asc":
		case "desc":
			o.desc = true
		default:
			return ordering{}, badRequestf("Invalid $orderby direction '%s': expected asc or desc.", parts[1])
		}
	}
	return o, nil
}

func (o ordering) less(a, b *record) bool {
	var c int
	switch o.field {
	case "lastUpdateDateTime":
		c = a.updated.Compare(b.updated)
	case "createdDateTime":
		c = a.created.Compare(b.created)
	}
	if c == 0 {
		if a.id == b.id {
			return false
		}
		if idLess(a.id, b.id) {
			c = -1
		} else {
			c = 1
		}
	}
	if o.desc {
		return c > 0
	}
	return c < 0
}
