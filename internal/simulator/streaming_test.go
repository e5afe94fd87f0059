package simulator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The simulated Streaming API hub holds, from the start, messages of every table, each a
// {"records":[…]} batch of one table whose records carry the envelope Defender sends.
func TestStreamingHubHoldsEveryTable(t *testing.T) {
	s, err := Start(Config{Seed: 5, Streaming: &StreamingConfig{Partitions: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(s.EventHubConnectionString(), "UseDevelopmentEmulator=true") || s.EventHubName() != "defender-streaming" {
		t.Fatalf("connection string %q hub %q", s.EventHubConnectionString(), s.EventHubName())
	}
	tables := map[string]int{}
	records := 0
	for _, pid := range []string{"0", "1"} {
		msgs, err := s.streaming.hub.Records(s.EventHubName(), pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var body struct {
				Records []struct {
					Category, Time, TenantID, OperationName string
					Properties                              map[string]any
				}
			}
			if err := json.Unmarshal(m.Body, &body); err != nil || len(body.Records) == 0 {
				t.Fatalf("message %q: %v", m.Body, err)
			}
			for _, r := range body.Records {
				records++
				table, ok := strings.CutPrefix(r.Category, "AdvancedHunting-")
				if !ok || r.TenantID != s.TenantID() || r.OperationName != "Publish" {
					t.Fatalf("record envelope %+v", r)
				}
				if body.Records[0].Category != r.Category {
					t.Fatalf("a message mixes %s and %s", body.Records[0].Category, r.Category)
				}
				if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r.Properties["Timestamp"])); err != nil {
					t.Fatalf("%s: Timestamp %v", table, r.Properties["Timestamp"])
				}
				tables[table]++
			}
		}
	}
	for _, table := range StreamingTables {
		if tables[table] == 0 {
			t.Errorf("no %s record in %v", table, tables)
		}
	}
	if records != s.StreamedRecords() || len(StreamingTables) < 10 {
		t.Fatalf("%d records on the hub, %d counted", records, s.StreamedRecords())
	}
	s.Tick()
	if s.StreamedRecords() <= records {
		t.Fatal("Tick streamed nothing")
	}
}
