package event

// TEMPORARY: a minimal stand-in for the event dataset's processing, so that the input can be
// built and tested before it. The real processing (transform.go and its per-table-family
// files, with the sanitizers for Azure's malformed JSON) replaces this whole file.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// Transform turns one Event Hubs message body ({"records":[…]} or a single record) into one
// document per record: the record's properties under m365_defender.event, @timestamp from
// properties.Timestamp, @metadata._id a hash of the record. A record that is not an object
// becomes an error document; an error return means the whole message is unusable.
func Transform(raw []byte, opts transform.Options, emit transform.Emit) error {
	raw = bytes.TrimSpace(raw)
	var envelope struct {
		Records *[]json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return fmt.Errorf("message is not a JSON object: %w", err)
	}
	records := []json.RawMessage{raw}
	if envelope.Records != nil {
		records = *envelope.Records
	}
	for i, rec := range records {
		ev, err := pendingRecord(rec, opts)
		if err != nil {
			emit(transform.ErrorEvent(rec, fmt.Errorf("record %d: %w", i, err), opts, time.Now()))
			continue
		}
		emit(ev)
	}
	return nil
}

func pendingRecord(raw json.RawMessage, opts transform.Options) (beat.Event, error) {
	var rec struct {
		Category   string         `json:"category"`
		Time       string         `json:"time"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		return beat.Event{}, err
	}
	if rec.Properties == nil {
		return beat.Event{}, errors.New("record without properties")
	}
	ts, _ := rec.Properties["Timestamp"].(string)
	if ts == "" {
		ts = rec.Time
	}
	when, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return beat.Event{}, fmt.Errorf("properties.Timestamp %q is not a time", ts)
	}
	props := mapstr.M(rec.Properties)
	props["category"] = rec.Category
	fields := mapstr.M{
		"m365_defender": mapstr.M{"event": props},
		"event":         mapstr.M{"kind": "event"},
	}
	if opts.PreserveOriginal() {
		_, _ = fields.Put("event.original", string(raw))
	}
	if len(opts.Tags) > 0 {
		fields["tags"] = append([]string(nil), opts.Tags...)
	}
	sum := sha256.Sum256(raw)
	meta := mapstr.M{"_id": hex.EncodeToString(sum[:16])}
	if !strings.HasPrefix(rec.Category, "AdvancedHunting-") {
		meta[MetaUnknownCategory] = true
	}
	return beat.Event{Timestamp: when.UTC(), Fields: fields, Meta: meta}, nil
}

// newSanitizer repairs the malformed JSON Azure is known to send, for the sanitize_options
// given (new_lines, single_quotes); nil without options. The input applies it only to a body
// that is not valid JSON.
func newSanitizer(options []string) func([]byte) []byte {
	if len(options) == 0 {
		return nil
	}
	var newLines, singleQuotes bool
	for _, o := range options {
		newLines = newLines || o == sanitizeNewLines
		singleQuotes = singleQuotes || o == sanitizeQuotes
	}
	return func(in []byte) []byte { return sanitizeJSON(in, newLines, singleQuotes) }
}

// sanitizeJSON escapes raw line breaks inside strings and turns single-quoted strings into
// double-quoted ones, tracking string state so that text outside strings is left alone.
func sanitizeJSON(in []byte, newLines, singleQuotes bool) []byte {
	out := make([]byte, 0, len(in)+16)
	var quote byte // the open string's quote, 0 outside strings
	escaped := false
	for _, b := range in {
		switch {
		case quote == 0:
			if b == '"' || (b == '\'' && singleQuotes) {
				quote = b
				b = '"'
			}
			out = append(out, b)
		case escaped:
			escaped = false
			if quote == '\'' && b == '\'' {
				out = append(out[:len(out)-1], '\'') // \' means ' in a single-quoted string
				continue
			}
			out = append(out, b)
		case b == '\\':
			escaped = true
			out = append(out, b)
		case b == quote:
			quote = 0
			out = append(out, '"')
		case b == '"': // inside a single-quoted string
			out = append(out, '\\', '"')
		case newLines && b == '\n':
			out = append(out, '\\', 'n')
		case newLines && b == '\r':
			out = append(out, '\\', 'r')
		default:
			out = append(out, b)
		}
	}
	return out
}
