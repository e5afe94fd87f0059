package event

import (
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// TestStorageReadsTheSimulatedAccount: the simulated tenant's storage account answers the
// calls the input makes (container and blob listings, ranged reads): every record it streamed,
// before and after the input started, becomes one document.
func TestStorageReadsTheSimulatedAccount(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 5, Streaming: &simulator.StreamingConfig{Storage: true}})
	h := cursortest.New(t)
	settings := map[string]any{"id": "sim", "storage_account_connection_string": sim.StorageConnectionString(), "interval": "100ms"}
	ticked := false
	h.Run(storagePlugin(testStorageTuning(nil)), settings, 30*time.Second, func() bool {
		if !ticked && h.Count() == sim.StreamedRecords() {
			sim.Tick() // more records appended to the blobs already read
			ticked = true
		}
		return ticked && h.Count() >= sim.StreamedRecords()
	})
	docs := h.Published()
	if len(docs) != sim.StreamedRecords() {
		t.Fatalf("%d documents of %d records", len(docs), sim.StreamedRecords())
	}
	cursortest.AssertUniqueIDs(t, docs)
	tables := map[any]bool{}
	for _, d := range docs {
		if kind, _ := d.Fields.GetValue("event.kind"); kind == "pipeline_error" {
			t.Fatalf("error document %v", d.Fields)
		}
		c, _ := d.Fields.GetValue("m365_defender.event.category")
		tables[c] = true
	}
	if len(tables) != len(simulator.StreamingTables) || h.Metric("containers") != int64(len(simulator.StreamingTables)) {
		t.Fatalf("documents of %d tables, %d containers; the simulator streams %d", len(tables), h.Metric("containers"), len(simulator.StreamingTables))
	}
}
