package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

// This file holds a small JSON reader made for the volume path: a record is walked once, member
// by member, and a value is only turned into a Go value when the mapping asks for it. Decoding
// each record into a generic map first (what encoding/json offers) costs more than the whole
// mapping; see docs/benchmarks.md. Anything the reader accepts, encoding/json accepts too, and
// both read it the same way (FuzzScanner checks this).

type kind uint8

const (
	kindNull kind = iota
	kindString
	kindNumber
	kindBool
	kindObject
	kindArray
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	case kindBool:
		return "a boolean"
	case kindObject:
		return "an object"
	case kindArray:
		return "an array"
	}
	return "null"
}

// value is one JSON value as it appears in the input: its kind and its bytes (quotes included
// for strings). A value is only valid while the input it points into is.
type value struct {
	kind kind
	raw  []byte
	// plain is set for a string that holds neither escapes nor bytes above ASCII, whose text is
	// then raw without its quotes.
	plain bool
}

func (v value) isNull() bool { return v.kind == kindNull }

// text returns a string value's text ("" for other kinds).
func (v value) text() string {
	if v.kind != kindString {
		return ""
	}
	if v.plain {
		return string(v.raw[1 : len(v.raw)-1])
	}
	return unquoteSlow(v.raw)
}

// unquoteSlow decodes a string with escapes or non-ASCII bytes exactly as encoding/json does
// (invalid UTF-8 becomes U+FFFD), so documents always encode as valid JSON.
func unquoteSlow(raw []byte) string {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return ""
	}
	return s
}

var errSyntax = errors.New("invalid JSON")

type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.offset, e.msg)
}

func (e *syntaxError) Unwrap() error { return errSyntax }

func syntaxErr(offset int, msg string) error { return &syntaxError{offset: offset, msg: msg} }

// maxDepth bounds nesting, so a hostile message cannot exhaust the stack.
const maxDepth = 512

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanValue reads the value starting at b[i] (no leading space) and returns it with the index
// just after it.
func scanValue(b []byte, i, depth int) (value, int, error) {
	if i >= len(b) {
		return value{}, i, syntaxErr(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '"':
		end, plain, err := scanString(b, i)
		if err != nil {
			return value{}, end, err
		}
		return value{kind: kindString, raw: b[i:end], plain: plain}, end, nil
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return value{}, i, syntaxErr(i, "nested too deeply")
		}
		end, err := scanContainer(b, i, depth+1)
		if err != nil {
			return value{}, end, err
		}
		k := kindObject
		if c == '[' {
			k = kindArray
		}
		return value{kind: k, raw: b[i:end]}, end, nil
	case c == '-' || (c >= '0' && c <= '9'):
		end, err := scanNumber(b, i)
		if err != nil {
			return value{}, end, err
		}
		return value{kind: kindNumber, raw: b[i:end]}, end, nil
	case c == 't':
		return literal(b, i, "true", kindBool)
	case c == 'f':
		return literal(b, i, "false", kindBool)
	case c == 'n':
		return literal(b, i, "null", kindNull)
	default:
		return value{}, i, syntaxErr(i, fmt.Sprintf("unexpected character %q", c))
	}
}

func literal(b []byte, i int, word string, k kind) (value, int, error) {
	end := i + len(word)
	if end > len(b) || string(b[i:end]) != word {
		return value{}, i, syntaxErr(i, "invalid literal")
	}
	return value{kind: k, raw: b[i:end]}, end, nil
}

// scanString validates the string starting at b[i] == '"'. plain reports that it holds no
// escape and no byte above ASCII.
func scanString(b []byte, i int) (end int, plain bool, err error) {
	plain = true
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return j + 1, plain, nil
		case c == '\\':
			plain = false
			j++
			if j >= len(b) {
				return j, false, syntaxErr(j, "unterminated escape")
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return j, false, syntaxErr(j, "short unicode escape")
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(b[k]) {
						return k, false, syntaxErr(k, "invalid unicode escape")
					}
				}
				j += 4
			default:
				return j, false, syntaxErr(j, "invalid escape")
			}
		case c < 0x20:
			return j, false, syntaxErr(j, "control character in string")
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return len(b), false, syntaxErr(len(b), "unterminated string")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber validates a number by the JSON grammar.
func scanNumber(b []byte, i int) (int, error) {
	j := i
	if b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && b[j] >= '1' && b[j] <= '9':
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	default:
		return j, syntaxErr(j, "invalid number")
	}
	if j < len(b) && b[j] == '.' {
		j++
		if j >= len(b) || !isDigit(b[j]) {
			return j, syntaxErr(j, "invalid number")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if j >= len(b) || !isDigit(b[j]) {
			return j, syntaxErr(j, "invalid number")
		}
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	return j, nil
}

// scanContainer validates the object or array starting at b[i].
func scanContainer(b []byte, i, depth int) (int, error) {
	if b[i] == '{' {
		return eachMember(b, i, func([]byte, value) error { return nil }, depth)
	}
	return eachElement(b, i, func(value) error { return nil }, depth)
}

// eachMember calls fn for each member of the object starting at b[i] == '{', with the key's raw
// bytes (quotes included), and returns the index just after the object.
func eachMember(b []byte, i int, fn func(key []byte, v value) error, depth int) (int, error) {
	return eachMemberAt(b, i, func(key []byte, at int) (int, error) {
		v, end, err := scanValue(b, at, depth)
		if err != nil {
			return end, err
		}
		return end, fn(key, v)
	})
}

// eachMemberAt walks the object starting at b[i] == '{' and hands each member's key and the index
// of its value to fn, which reads the value itself and returns the index just after it. This
// lets a caller read nested values as it goes, so every byte is looked at once.
func eachMemberAt(b []byte, i int, fn func(key []byte, at int) (int, error)) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr(i, "expected a member name")
		}
		keyEnd, _, err := scanString(b, i)
		if err != nil {
			return keyEnd, err
		}
		key := b[i:keyEnd]
		i = skipSpace(b, keyEnd)
		if i >= len(b) || b[i] != ':' {
			return i, syntaxErr(i, "expected ':'")
		}
		end, err := fn(key, skipSpace(b, i+1))
		if err != nil {
			return end, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return i, syntaxErr(i, "unterminated object")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, syntaxErr(i, "expected ',' or '}'")
		}
	}
}

// eachElement calls fn for each element of the array starting at b[i] == '['.
func eachElement(b []byte, i int, fn func(v value) error, depth int) (int, error) {
	return eachElementAt(b, i, func(at int) (int, error) {
		v, end, err := scanValue(b, at, depth)
		if err != nil {
			return end, err
		}
		return end, fn(v)
	})
}

// eachElementAt is eachMemberAt for arrays.
func eachElementAt(b []byte, i int, fn func(at int) (int, error)) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := fn(i)
		if err != nil {
			return end, err
		}
		i = skipSpace(b, end)
		if i >= len(b) {
			return i, syntaxErr(i, "unterminated array")
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, syntaxErr(i, "expected ',' or ']'")
		}
	}
}

// keyText returns a member name's text.
func keyText(raw []byte) string {
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			return unquoteSlow(raw)
		}
	}
	return string(raw[1 : len(raw)-1])
}

// keyIs compares a member name with an ASCII name without allocating.
func keyIs(raw []byte, name string) bool {
	return len(raw) == len(name)+2 && string(raw[1:len(raw)-1]) == name
}

// parseDocument reads b as exactly one JSON value, surrounded by nothing but white space.
func parseDocument(b []byte) (value, error) {
	i := skipSpace(b, 0)
	v, end, err := scanValue(b, i, 0)
	if err != nil {
		return value{}, err
	}
	if end = skipSpace(b, end); end != len(b) {
		return value{}, syntaxErr(end, "data after the JSON value")
	}
	return v, nil
}

// generic turns an already validated value into the Go value a document carries: objects as
// mapstr.M, arrays as []any, integers as int64 (float64 when they do not fit), other numbers
// as float64 — the types Elasticsearch's json processor produces and libbeat encodes natively.
func generic(v value) any {
	switch v.kind {
	case kindString:
		return v.text()
	case kindNumber:
		return number(v.raw)
	case kindBool:
		return v.raw[0] == 't'
	case kindObject:
		m := mapstr.M{}
		_, _ = eachMember(v.raw, 0, func(k []byte, el value) error {
			m[keyText(k)] = generic(el)
			return nil
		}, 0)
		return m
	case kindArray:
		list := []any{}
		_, _ = eachElement(v.raw, 0, func(el value) error {
			list = append(list, generic(el))
			return nil
		}, 0)
		return list
	}
	return nil
}

// number converts a JSON number: int64 when it is an integer that fits, float64 otherwise.
func number(raw []byte) any {
	if n, ok := integer(raw); ok {
		return n
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) {
		// Out of float64 range: keep the digits rather than invent a value.
		return string(raw)
	}
	return f
}

// integer reads a JSON number without fraction or exponent that fits in int64.
func integer(raw []byte) (int64, bool) {
	if len(raw) == 0 || len(raw) > 20 {
		return 0, false
	}
	for _, c := range raw {
		if c == '.' || c == 'e' || c == 'E' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	return n, err == nil
}
