package graphalert

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

// DateLayout is how every date is written: UTC with milliseconds, as Elasticsearch's date
// processor prints them (Microsoft's 7-digit fractions are truncated, not rounded).
const DateLayout = "2006-01-02T15:04:05.000Z07:00"

// DecodeObject parses one JSON object, keeping numbers exact until Clean converts them.
func DecodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("invalid JSON: data after the first value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not a JSON object")
	}
	return obj, nil
}

// Clean returns v ready to be published: nulls, empty strings and objects or arrays left empty
// are dropped (the integration's last step does the same), numbers become int64 or float64,
// objects become mapstr.M, and every "@odata.type" key becomes "odata_type" (a dotted key would
// otherwise be expanded into an "@odata" object by Elasticsearch). The second result is false
// when nothing is left.
func Clean(v any) (any, bool) {
	switch val := v.(type) {
	case nil:
		return nil, false
	case string:
		return val, val != ""
	case json.Number:
		if i, err := val.Int64(); err == nil {
			return i, true
		}
		f, err := val.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return val.String(), true
		}
		return f, true
	case map[string]any:
		out := make(mapstr.M, len(val))
		for k, child := range val {
			if c, ok := Clean(child); ok {
				if k == "@odata.type" {
					k = "odata_type"
				}
				out[k] = c
			}
		}
		return out, len(out) > 0
	case mapstr.M:
		return Clean(map[string]any(val))
	case []any:
		out := make([]any, 0, len(val))
		for _, child := range val {
			if c, ok := Clean(child); ok {
				out = append(out, c)
			}
		}
		return out, len(out) > 0
	default:
		return val, true
	}
}

// text renders a scalar the way the integration's templates do; ok is false for missing values,
// empty strings, objects and arrays.
func text(v any) (string, bool) {
	switch val := v.(type) {
	case string:
		return val, val != ""
	case int64:
		return strconv.FormatInt(val, 10), true
	case float64:
		return strconv.FormatFloat(val, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(val), true
	case json.Number:
		return val.String(), true
	}
	return "", false
}

// ParseTime reads an ISO 8601 timestamp; one without a zone is UTC, as in Elasticsearch.
func ParseTime(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok || s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// Date normalises an ISO 8601 timestamp to DateLayout.
func Date(v any) (string, bool) {
	t, ok := ParseTime(v)
	if !ok {
		return "", false
	}
	return t.Format(DateLayout), true
}

// Severity maps a Graph severity to the event.severity numbers Elastic's EDR integrations share
// (integration 3.5.0 and later). Unknown values (unknownFutureValue, future members) give false.
func Severity(v any) (int64, bool) {
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	switch strings.ToLower(s) {
	case "informational", "low":
		return 21, true
	case "medium":
		return 47, true
	case "high":
		return 73, true
	case "critical":
		return 99, true
	}
	return 0, false
}

// URLParts splits a URL into the fields of Elasticsearch's uri_parts processor (with
// keep_original). It gives false for anything that is not an absolute URL.
func URLParts(v any) (mapstr.M, bool) {
	s, ok := v.(string)
	if !ok || s == "" {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return nil, false
	}
	parts := mapstr.M{"original": s, "scheme": u.Scheme}
	if h := u.Hostname(); h != "" {
		parts["domain"] = h
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseInt(p, 10, 64); err == nil {
			parts["port"] = n
		}
	}
	if u.Path != "" {
		parts["path"] = u.Path
		last := u.Path[strings.LastIndex(u.Path, "/")+1:]
		if i := strings.LastIndex(last, "."); i >= 0 && i < len(last)-1 {
			parts["extension"] = last[i+1:]
		}
	}
	if u.RawQuery != "" {
		parts["query"] = u.RawQuery
	}
	if u.Fragment != "" {
		parts["fragment"] = u.Fragment
	}
	if u.User != nil {
		parts["user_info"] = u.User.String()
		if name := u.User.Username(); name != "" {
			parts["username"] = name
		}
		if pw, ok := u.User.Password(); ok && pw != "" {
			parts["password"] = pw
		}
	}
	return parts, true
}

// Fingerprint hashes values the way Elasticsearch's fingerprint processor does with its defaults
// (SHA-1 over each value preceded by a zero byte, base64), skipping missing values. The
// integration builds `_id` and process.entity_id this way, so using the same function keeps our
// identifiers comparable with documents it indexed.
func Fingerprint(values ...any) string {
	h := sha1.New()
	for _, v := range values {
		s, ok := text(v)
		if !ok {
			continue
		}
		h.Write([]byte{0})
		h.Write([]byte(s))
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// validIP reports whether s is an IPv4 or IPv6 address (Elasticsearch's "ip" conversion).
func validIP(v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		return "", false
	}
	if net.ParseIP(s) == nil {
		return "", false
	}
	return s, true
}

// toLong converts like Elasticsearch's "long" conversion: integral numbers and decimal strings.
func toLong(v any) (int64, bool) {
	switch val := v.(type) {
	case int64:
		return val, true
	case float64:
		if val == math.Trunc(val) && math.Abs(val) < 1<<63 {
			return int64(val), true
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil {
			return n, true
		}
	}
	return 0, false
}
