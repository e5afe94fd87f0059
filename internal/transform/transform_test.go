package transform

import (
	"errors"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"
)

func TestErrorEventKeepsTheRecordAndIsIdempotent(t *testing.T) {
	raw := []byte(`{"id": broken`)
	opts := Options{Tags: []string{"forwarded"}}
	ev := ErrorEvent(raw, errors.New("bad"), opts, time.Unix(0, 0))
	if v, _ := ev.Fields.GetValue("event.original"); v != string(raw) {
		t.Fatalf("event.original = %v", v)
	}
	if v, _ := ev.Fields.GetValue("event.kind"); v != "pipeline_error" {
		t.Fatalf("event.kind = %v", v)
	}
	if v, _ := ev.Fields.GetValue("error.message"); len(v.([]string)) != 1 || v.([]string)[0] != "bad" {
		t.Fatalf("error.message = %v", v)
	}
	again := ErrorEvent(raw, errors.New("bad"), opts, time.Now())
	other := ErrorEvent([]byte(`{"id": other`), errors.New("bad"), opts, time.Now())
	if ev.Meta["_id"] != again.Meta["_id"] || ev.Meta["_id"] == other.Meta["_id"] {
		t.Fatalf("_id must depend on the record only: %v %v %v", ev.Meta["_id"], again.Meta["_id"], other.Meta["_id"])
	}
	opts.Tags[0] = "changed"
	if ev.Fields["tags"].([]string)[0] != "forwarded" {
		t.Fatal("the document shares the caller's tag slice")
	}
}

func TestDocumentRendersTimestampInMilliseconds(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	doc := Document(beat.Event{Timestamp: ts, Fields: mapstr.M{"a": 1}, Meta: mapstr.M{"_id": "x"}})
	if doc["@timestamp"] != "2024-01-02T02:04:05.123Z" || doc["a"] != 1 || doc["@metadata"] != nil {
		t.Fatalf("document = %v", doc)
	}
	if _, has := Document(beat.Event{Fields: mapstr.M{}})["@timestamp"]; has {
		t.Fatal("a zero timestamp must not be rendered")
	}
}

func TestOptionsTagsSwitchBehaviour(t *testing.T) {
	o := Options{Tags: []string{TagPreserveOriginal}}
	if !o.PreserveOriginal() || o.PreserveDuplicateCustom() {
		t.Fatal("preserve_original_event alone")
	}
	o.Tags = append(o.Tags, TagPreserveDuplicateCustom)
	if !o.PreserveDuplicateCustom() {
		t.Fatal("preserve_duplicate_custom_fields")
	}
}
