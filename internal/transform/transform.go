// Package transform holds the contract every dataset's processing follows: one raw record in,
// zero or more ECS documents out, with no I/O. The inputs and the `defenderbeat transform`
// command call the same functions, so what the command prints is what the inputs publish.
package transform

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"
)

// Tags that switch behaviour, named as in the reference integration: the integration decides on
// them by looking at the document's tags, so we do the same and a user's config carries over.
const (
	TagPreserveOriginal        = "preserve_original_event"
	TagPreserveDuplicateCustom = "preserve_duplicate_custom_fields"
	TagForwarded               = "forwarded"
)

// ECSVersion is the ecs.version the documents carry, as the reference integration's pipelines
// stamp it. Its vulnerability pipeline is newer and stamps 8.17.0; that dataset says so itself.
const ECSVersion = "8.11.0"

// Options are the per-input settings a transform may depend on.
type Options struct {
	// Tags end up in the document's `tags` exactly as given (order kept).
	Tags []string
	// GeneratedTime is the snapshot time of a vulnerability export (zero when unknown).
	GeneratedTime time.Time
}

// PreserveOriginal reports whether event.original must be kept in the document.
func (o Options) PreserveOriginal() bool { return slices.Contains(o.Tags, TagPreserveOriginal) }

// PreserveDuplicateCustom reports whether fields copied to ECS are also kept under m365_defender.*.
func (o Options) PreserveDuplicateCustom() bool {
	return slices.Contains(o.Tags, TagPreserveDuplicateCustom)
}

// Emit receives each document a transform produces. Documents are handed over one at a time so a
// record that expands into many (an incident with hundreds of alerts) never needs them all at once.
type Emit func(beat.Event)

// Func is the signature of every dataset's transform: raw is one record as the source gave it.
// A returned error means the record is malformed; the caller then emits ErrorEvent(raw, err, opts)
// and goes on with the next record.
type Func func(raw []byte, opts Options, emit Emit) error

// ErrorIDPrefix starts the _id of every ErrorEvent.
const ErrorIDPrefix = "error-"

// ErrorEvent is the document published for a record that could not be processed: it keeps the
// raw record so nothing is lost, and is marked the way the reference integration marks its
// pipeline failures so existing error dashboards and queries find it.
func ErrorEvent(raw []byte, err error, opts Options, now time.Time) beat.Event {
	fields := mapstr.M{
		"event": mapstr.M{
			"kind":     "pipeline_error",
			"original": string(raw),
		},
		"error": mapstr.M{"message": []string{err.Error()}},
	}
	if len(opts.Tags) > 0 {
		fields["tags"] = slices.Clone(opts.Tags)
	}
	// The same bad record read twice (a retry, a restart) must be indexed once.
	sum := sha256.Sum256(raw)
	return beat.Event{Timestamp: now, Fields: fields, Meta: mapstr.M{"_id": ErrorIDPrefix + hex.EncodeToString(sum[:16])}}
}

// Document renders an event as the JSON object the processing contract defines: the fields
// plus `@timestamp` (UTC, milliseconds, as Elasticsearch shows it), without @metadata.
func Document(ev beat.Event) mapstr.M {
	doc := ev.Fields.Clone()
	if doc == nil {
		doc = mapstr.M{}
	}
	if !ev.Timestamp.IsZero() {
		doc["@timestamp"] = ev.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	return doc
}
