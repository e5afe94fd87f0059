package golden

import (
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"
)

func TestNeedsNormalizationSeesWhatLibbeatWouldChange(t *testing.T) {
	ts := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	ready := beat.Event{Timestamp: ts, Fields: mapstr.M{"a": "x", "n": int64(3), "m": mapstr.M{"l": []string{"y"}}, "t": ts}}
	if err := NeedsNormalization(ready); err != nil {
		t.Fatalf("a document in the encoder's types: %v", err)
	}
	for name, fields := range map[string]mapstr.M{
		"a null value, which normalization drops": {"a": nil},
		"a uint64 above int64, which it masks":    {"n": uint64(1<<63 + 5)},
	} {
		if NeedsNormalization(beat.Event{Timestamp: ts, Fields: fields}) == nil {
			t.Errorf("%s: not noticed", name)
		}
	}
}
