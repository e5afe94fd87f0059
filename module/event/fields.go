package event

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// A field is one m365_defender.event.* field. Fields are numbered when the package starts, so a
// record keeps its values in a slice indexed by field instead of in a map.
type field uint16

type fieldDef struct {
	path string   // dotted path below m365_defender.event
	segs []string // path split on dots
	top  int      // number of the first segment among all fields' first segments
}

var (
	fieldDefs []fieldDef
	topKeys   = map[string]int{} // first segments, numbered; only written while the package starts
)

func newField(path string) field {
	segs := strings.Split(path, ".")
	top, ok := topKeys[segs[0]]
	if !ok {
		top = len(topKeys)
		topKeys[segs[0]] = top
	}
	fieldDefs = append(fieldDefs, fieldDef{path: path, segs: segs, top: top})
	return field(len(fieldDefs) - 1)
}

// A conversion says how a column's raw value becomes the value of its field, following the
// processor the integration's pipeline applies to that column.
type conversion uint8

const (
	asIs      conversion = iota // rename: the JSON value as it came
	toString                    // convert to string: numbers and booleans as text
	toLong                      // convert to long
	toIP                        // convert to ip; anything else is dropped, as the pipeline does for "-" and ""
	toDate                      // date (ISO 8601) → UTC with milliseconds
	truthy                      // 1/0, "1"/"0", "true"/"false" and booleans → boolean, anything else dropped
	toBool                      // convert to boolean ("true"/"false" in any case, or a boolean)
	jsonText                    // json: a string holding JSON is decoded; other values kept
	lowercase                   // lowercase
)

// A column maps one Advanced Hunting column (a property of the record) to a field.
type column struct {
	f    field
	conv conversion
}

// columns indexes a table family's columns by property name.
type columns map[string]column

func cols(list ...any) columns {
	m := columns{}
	for i := 0; i < len(list); i += 3 {
		m[list[i].(string)] = column{f: list[i+1].(field), conv: list[i+2].(conversion)}
	}
	return m
}

// convert applies a column's conversion. ok is false when the value is absent or dropped;
// problem describes a value the conversion refused (reported in error.message).
func (r *record) convert(v value, conv conversion) (out any, ok bool, problem string) {
	return convertFrom(r.src, v, conv)
}

func convertFrom(src source, v value, conv conversion) (out any, ok bool, problem string) {
	if v.kind == kindNull || (v.kind == kindString && len(v.raw) == 2) {
		return nil, false, ""
	}
	switch conv {
	case asIs:
		return src.generic(v), true, ""
	case toString:
		switch v.kind {
		case kindString:
			return src.text(v), true, ""
		case kindNumber:
			return string(v.raw), true, ""
		case kindBool:
			return strconv.FormatBool(v.raw[0] == 't'), true, ""
		}
		return src.generic(v), true, ""
	case toLong:
		switch v.kind {
		case kindNumber:
			if n, ok := parseInt(v.raw); ok {
				return n, true, ""
			}
		case kindString:
			if n, err := strconv.ParseInt(strings.TrimSpace(src.text(v)), 10, 64); err == nil {
				return n, true, ""
			}
		}
		return nil, false, "a whole number"
	case toIP:
		if v.kind == kindString {
			if s := src.text(v); validIP(s) {
				return s, true, ""
			}
		}
		return nil, false, ""
	case toDate:
		if v.kind == kindString {
			if t, ok := parseTime(src.text(v)); ok {
				return formatTime(t), true, ""
			}
		}
		return nil, false, "an ISO 8601 date"
	case truthy:
		switch v.kind {
		case kindBool:
			return v.raw[0] == 't', true, ""
		case kindNumber:
			switch string(v.raw) {
			case "1":
				return true, true, ""
			case "0":
				return false, true, ""
			}
		case kindString:
			switch src.text(v) {
			case "1", "true":
				return true, true, ""
			case "0", "false":
				return false, true, ""
			}
		}
		return nil, false, ""
	case toBool:
		switch v.kind {
		case kindBool:
			return v.raw[0] == 't', true, ""
		case kindString:
			switch s := src.text(v); {
			case strings.EqualFold(s, "true"):
				return true, true, ""
			case strings.EqualFold(s, "false"):
				return false, true, ""
			}
		}
		return nil, false, "a boolean"
	case jsonText:
		if v.kind != kindString {
			return src.generic(v), true, ""
		}
		s := src.text(v)
		inner, err := parseDocument([]byte(s))
		if err != nil {
			return s, true, "JSON text"
		}
		// s is the text inner was read from, offsets and all: its strings are cut from s
		// rather than from another copy of the text.
		return source{owner: s}.generic(inner), true, ""
	case lowercase:
		if v.kind == kindString {
			return strings.ToLower(src.text(v)), true, ""
		}
		return src.generic(v), true, ""
	}
	return nil, false, ""
}

// parseInt reads a JSON integer without allocating.
func parseInt(raw []byte) (int64, bool) {
	neg := false
	i := 0
	if len(raw) > 0 && raw[0] == '-' {
		neg, i = true, 1
	}
	if i >= len(raw) || len(raw)-i > 19 {
		return 0, false
	}
	var n uint64
	for ; i < len(raw); i++ {
		c := raw[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

func validIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// timeLayouts are the ISO 8601 forms Defender writes: with a zone ("…Z", seven-digit fractions)
// and, rarely, without one, which Elasticsearch reads as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02",
}

func parseTime(s string) (time.Time, bool) {
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// formatTime writes a time as Elasticsearch's date processor does: UTC, milliseconds, truncated.
func formatTime(t time.Time) string {
	var buf [24]byte
	return string(appendTime(buf[:0], t))
}

func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	}
	b = appendInt(b, year, 4)
	b = append(b, '-')
	b = appendInt(b, int(month), 2)
	b = append(b, '-')
	b = appendInt(b, day, 2)
	b = append(b, 'T')
	b = appendInt(b, hour, 2)
	b = append(b, ':')
	b = appendInt(b, minute, 2)
	b = append(b, ':')
	b = appendInt(b, sec, 2)
	b = append(b, '.')
	b = appendInt(b, t.Nanosecond()/1e6, 3)
	return append(b, 'Z')
}

func appendInt(b []byte, n, width int) []byte {
	var digits [4]byte
	for i := width - 1; i >= 0; i-- {
		digits[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, digits[:width]...)
}
