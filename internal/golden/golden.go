// Package golden compares the documents a transform produces with expected documents, by the
// contract of the `transform` command (docs/transform.md): whole documents by JSON value (7 equals 7.0),
// arrays in order except `tags` and `related.*`, which compare as sets. Every dataset's golden
// tests share it so that "equal" means the same thing everywhere.
package golden

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/transform"
	"github.com/elastic/elastic-agent-libs/config"
)

// TimestampLayout is how expected documents write @timestamp and every other date: UTC with
// milliseconds, the way Elasticsearch's date processor prints them.
const TimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// Document turns an event into the JSON document the output would carry (transform.Document),
// decoded from real JSON so that types compare as they would on the wire.
func Document(ev beat.Event) (map[string]any, error) {
	raw, err := json.Marshal(transform.Document(ev))
	if err != nil {
		return nil, fmt.Errorf("event is not JSON-encodable: %w", err)
	}
	var doc map[string]any
	if err := decode(raw, &doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func decode(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// Deviation excludes one field path from a comparison, with the reason it may differ.
type Deviation struct {
	// Path is a dotted field path without array indexes ("process.name",
	// "m365_defender.alert.evidence.os_platform"); it excludes the field and everything below it.
	Path   string
	Reason string
	// Entries limits the deviation to these entries of the expected file (1-based, in file
	// order); empty means every entry.
	Entries []int
}

// appliesTo reports whether the deviation covers entry n (1-based).
func (d Deviation) appliesTo(n int) bool {
	if len(d.Entries) == 0 {
		return true
	}
	for _, e := range d.Entries {
		if e == n {
			return true
		}
	}
	return false
}

// Options tune a comparison.
type Options struct {
	// Deviations are paths left out of the comparison on both sides. Compare applies every one;
	// Check applies to each entry only those whose Entries include it.
	Deviations []Deviation
	// Defaults fill the processing options a case's config leaves unset.
	Defaults transform.Options
	// PinIDs compares each document's @metadata._id too.
	PinIDs bool
}

// forEntry keeps the deviations that cover entry n (1-based).
func (o Options) forEntry(n int) Options {
	var ds []Deviation
	for _, d := range o.Deviations {
		if d.appliesTo(n) {
			ds = append(ds, d)
		}
	}
	return Options{Deviations: ds}
}

// ElasticsearchOwned reports whether a path holds a value Elasticsearch adds at ingest time
// (ingest timestamp, geo/ASN enrichment, user agent parsing) and no client can reproduce.
func ElasticsearchOwned(path string) bool {
	if path == "event.ingested" || path == "user_agent" || strings.HasPrefix(path, "user_agent.") {
		return true
	}
	for _, seg := range strings.Split(path, ".") {
		if seg == "geo" || seg == "as" {
			return true
		}
	}
	return false
}

// setPath reports whether the array at path compares as a set.
func setPath(path string) bool {
	return path == "tags" || strings.HasPrefix(path, "related.")
}

// Compare returns one line per difference between want and got (nil when equal).
func Compare(want, got any, opts Options) []string {
	c := comparer{opts: opts}
	c.value("", want, got)
	return c.diffs
}

type comparer struct {
	opts  Options
	diffs []string
}

func (c *comparer) skipped(path string) bool {
	if ElasticsearchOwned(path) {
		return true
	}
	for _, d := range c.opts.Deviations {
		if path == d.Path || strings.HasPrefix(path, d.Path+".") {
			return true
		}
	}
	return false
}

func (c *comparer) addf(format string, args ...any) {
	c.diffs = append(c.diffs, fmt.Sprintf(format, args...))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (c *comparer) value(path string, want, got any) {
	if path != "" && c.skipped(path) {
		return
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			c.addf("%s: want object %s, got %s", label(path), show(want), show(got))
			return
		}
		for _, k := range unionKeys(w, g) {
			p := join(path, k)
			if c.skipped(p) {
				continue
			}
			wv, inW := w[k]
			gv, inG := g[k]
			// A missing object compares as an empty one, so deviations below it still apply.
			if _, isObj := gv.(map[string]any); !inW && isObj {
				wv, inW = map[string]any{}, true
			}
			if _, isObj := wv.(map[string]any); !inG && isObj {
				gv, inG = map[string]any{}, true
			}
			switch {
			case !inG:
				c.addf("%s: missing, want %s", p, show(wv))
			case !inW:
				c.addf("%s: unexpected %s", p, show(gv))
			default:
				c.value(p, wv, gv)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			c.addf("%s: want array %s, got %s", label(path), show(want), show(got))
			return
		}
		if setPath(path) {
			c.set(path, w, g)
			return
		}
		if len(w) != len(g) {
			c.addf("%s: want %d elements %s, got %d %s", label(path), len(w), show(want), len(g), show(got))
			return
		}
		for i := range w {
			c.value(path, w[i], g[i])
		}
	default:
		if !scalarEqual(want, got) {
			c.addf("%s: want %s, got %s", label(path), show(want), show(got))
		}
	}
}

func (c *comparer) set(path string, want, got []any) {
	wantKeys := make(map[string]bool, len(want))
	for _, v := range want {
		wantKeys[canonical(v)] = true
	}
	gotKeys := make(map[string]bool, len(got))
	for _, v := range got {
		gotKeys[canonical(v)] = true
	}
	for k := range wantKeys {
		if !gotKeys[k] {
			c.addf("%s: missing element %s", path, k)
		}
	}
	for k := range gotKeys {
		if !wantKeys[k] {
			c.addf("%s: unexpected element %s", path, k)
		}
	}
}

func canonical(v any) string {
	if n, ok := number(v); ok {
		return n.RatString()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func unionKeys(a, b map[string]any) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func scalarEqual(want, got any) bool {
	wn, wIsNum := number(want)
	gn, gIsNum := number(got)
	if wIsNum || gIsNum {
		return wIsNum && gIsNum && wn.Cmp(gn) == 0
	}
	return want == got
}

// number reads JSON numbers exactly, so that 7 equals 7.0 and large integers keep every digit.
func number(v any) (*big.Rat, bool) {
	var s string
	switch n := v.(type) {
	case json.Number:
		s = n.String()
	case float64:
		return new(big.Rat).SetFloat64(n), true
	case int:
		return new(big.Rat).SetInt64(int64(n)), true
	case int64:
		return new(big.Rat).SetInt64(n), true
	default:
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

func label(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// ReadExpected reads an expected file: {"expected": [document or null, …]}.
func ReadExpected(path string) ([]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file struct {
		Expected []any `json:"expected"`
	}
	if err := decode(raw, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return file.Expected, nil
}

// WriteExpected writes docs in the layout of ReadExpected (keys sorted, 4-space indent like the
// reference files), so regenerated files diff cleanly.
func WriteExpected(path string, docs []any) error {
	if docs == nil {
		docs = []any{}
	}
	raw, err := json.MarshalIndent(map[string]any{"expected": docs}, "", "    ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(raw, '\n'), 0o644)
}

// ReadLines returns the non-empty lines of an input file (one raw record per line).
func ReadLines(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		lines = append(lines, bytes.Clone(line))
	}
	return lines, sc.Err()
}

// ReadCaseConfig reads a case's config file (`<case>.log-config.yml`): the tags it runs with, as in
// the reference integration's pipeline tests, and, for our own vulnerability cases, the export's
// `generated_time` (RFC 3339).
func ReadCaseConfig(path string) (transform.Options, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return transform.Options{}, err
	}
	cfg, err := config.NewConfigWithYAML(raw, path)
	if err != nil {
		return transform.Options{}, err
	}
	var settings struct {
		Tags          []string `config:"tags"`
		GeneratedTime string   `config:"generated_time"`
	}
	if err := cfg.Unpack(&settings); err != nil {
		return transform.Options{}, fmt.Errorf("%s: %w", path, err)
	}
	opts := transform.Options{Tags: settings.Tags}
	if settings.GeneratedTime != "" {
		if opts.GeneratedTime, err = time.Parse(time.RFC3339, settings.GeneratedTime); err != nil {
			return opts, fmt.Errorf("%s: generated_time: %w", path, err)
		}
	}
	return opts, nil
}

// ErrorTime is the @timestamp given to error documents in golden outputs, which otherwise would
// carry the wall clock and never compare equal.
var ErrorTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
