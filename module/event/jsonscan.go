package event

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
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
	off  int // where raw starts in the buffer it was read from
	// plain is set for a string that holds neither escapes nor bytes above ASCII, whose text is
	// then raw without its quotes.
	plain bool
}

func (v value) isNull() bool { return v.kind == kindNull }

// text returns a string value's text ("" for other kinds).
func (v value) text() string { return sourceOf(v).text(v) }

// A source hands out the text of values read from one buffer. Most strings need no decoding;
// those are cut from owner, a string copy of the buffer the document keeps anyway (the record is
// event.original), so they cost no allocation of their own.
type source struct {
	owner string
	base  int // the offset of owner[0] in the buffer the values' offsets refer to
}

// sourceOf makes a source of a value's own bytes.
func sourceOf(v value) source { return source{owner: string(v.raw), base: v.off} }

func (s source) text(v value) string {
	if v.kind != kindString {
		return ""
	}
	inner := v.raw[1 : len(v.raw)-1]
	if v.plain || (bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner)) {
		from := v.off - s.base + 1
		return s.owner[from : from+len(inner)]
	}
	return unquote(inner)
}

// unquote decodes the inside of a JSON string with escapes exactly as encoding/json does:
// invalid UTF-8 and unpaired surrogates become U+FFFD, so documents always encode as valid JSON.
// The string was validated when it was scanned.
func unquote(s []byte) string {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch e := s[i+1]; e {
			case 'u':
				r := hex4(s[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(s[i+2:i+6])); dec != utf8.RuneError {
							b = utf8.AppendRune(b, dec)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
				continue
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			default: // '"', '\\', '/'
				b = append(b, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	return string(b)
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

var errSyntax = errors.New("invalid JSON")

type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("%s at byte %d", e.msg, e.offset)
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
		return value{kind: kindString, raw: b[i:end], off: i, plain: plain}, end, nil
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
		return value{kind: k, raw: b[i:end], off: i}, end, nil
	case c == '-' || (c >= '0' && c <= '9'):
		end, err := scanNumber(b, i)
		if err != nil {
			return value{}, end, err
		}
		return value{kind: kindNumber, raw: b[i:end], off: i}, end, nil
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
	return value{kind: k, raw: b[i:end], off: i}, end, nil
}

// scanString validates the string starting at b[i] == '"'. plain reports that it holds no
// escape and no byte above ASCII.
func scanString(b []byte, i int) (end int, plain bool, err error) {
	plain = true
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		if plainByte[c] {
			continue
		}
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

// plainByte marks the bytes a string holds as they are: printable ASCII but the quote and the
// backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

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
		return eachMember(b, i, func(value, value) error { return nil }, depth)
	}
	return eachElement(b, i, func(value) error { return nil }, depth)
}

// eachMember calls fn for each member of the object starting at b[i] == '{', with the key's raw
// bytes (quotes included), and returns the index just after the object.
func eachMember(b []byte, i int, fn func(key value, v value) error, depth int) (int, error) {
	return eachMemberAt(b, i, func(key value, at int) (int, error) {
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
func eachMemberAt(b []byte, i int, fn func(key value, at int) (int, error)) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, syntaxErr(i, "expected a member name")
		}
		keyEnd, plain, err := scanString(b, i)
		if err != nil {
			return keyEnd, err
		}
		key := value{kind: kindString, raw: b[i:keyEnd], off: i, plain: plain}
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

// keyIs compares a member name with an ASCII name without allocating.
func keyIs(key value, name string) bool {
	return len(key.raw) == len(name)+2 && string(key.raw[1:len(key.raw)-1]) == name
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
func generic(v value) any { return sourceOf(v).generic(v) }

func (s source) generic(v value) any {
	switch v.kind {
	case kindString:
		return s.text(v)
	case kindNumber:
		return number(v.raw)
	case kindBool:
		return v.raw[0] == 't'
	case kindObject:
		m := mapstr.M{}
		_, _ = eachMember(v.raw, 0, func(k value, el value) error {
			m[s.text(shift(k, v.off))] = s.generic(shift(el, v.off))
			return nil
		}, 0)
		return m
	case kindArray:
		list := []any{}
		_, _ = eachElement(v.raw, 0, func(el value) error {
			list = append(list, s.generic(shift(el, v.off)))
			return nil
		}, 0)
		return list
	}
	return nil
}

// shift moves the offset of a value read from a sub-slice to the buffer the slice came from.
func shift(v value, by int) value {
	v.off += by
	return v
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
