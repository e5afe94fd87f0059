package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

func TestSimulatePublishesEveryDataset(t *testing.T) {
	out, data := t.TempDir(), t.TempDir()
	r := run(t, "", "simulate", "--duration", "15s", "-E", "path.data="+data,
		"-E", "output.console.enabled=false", "-E", "output.file.path="+out, "-E", "output.file.filename=docs")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	// -E path.data keeps the cursors (not a temporary directory), for `defenderbeat cursor list`.
	if !registryHolds(t, data, "simulated-alerts") {
		t.Error("the cursors of the run are not in the path.data given with -E")
	}
	collector, _ := os.Hostname()
	docs := readDocs(t, out)
	perDataset := map[string]int{}
	perInput := map[string]int{}
	tables := map[string]bool{}
	for _, d := range docs {
		ds, _ := get(d, "event.dataset").(string)
		perDataset[ds]++
		perInput[fmt.Sprint(get(d, "input.type"))]++
		if category, ok := get(d, "m365_defender.event.category").(string); ok {
			tables[category] = true
		}
		if get(d, "data_stream.dataset") != ds || get(d, "data_stream.type") != "logs" || get(d, "data_stream.namespace") != "default" {
			t.Fatalf("data_stream does not match event.dataset: %v", d["data_stream"])
		}
		if get(d, "@metadata._id") == nil {
			t.Fatalf("document without @metadata._id: %v", d["@metadata"])
		}
		// Evidence fills host.* with the devices of the alert; the collector's own name must
		// not appear there (libbeat adds it unless the input is tagged forwarded).
		if names := fmt.Sprint(get(d, "host.name")); collector != "" && strings.Contains(names, collector) {
			t.Fatalf("forwarded document carries the collector's host %q: %v", collector, d["host"])
		}
	}
	for _, ds := range []string{"m365_defender.alert", "m365_defender.incident", "m365_defender.event", "m365_defender.vulnerability"} {
		if perDataset[ds] == 0 {
			t.Errorf("no %s document in %d documents (%v)", ds, len(docs), perDataset)
		}
	}
	// The Streaming API's two destinations, the hub and the storage account.
	for _, in := range []string{"defender-event", "defender-event-storage"} {
		if perInput[in] == 0 {
			t.Errorf("no document of input %s (%v)", in, perInput)
		}
	}
	// The Streaming API's hub: a new user sees events of many Advanced Hunting tables.
	if len(tables) < 10 {
		t.Errorf("event documents of %d tables, want at least 10: %v", len(tables), tables)
	}
}

// TestKilledProcessLosesNothing kills the beat with SIGKILL while it is publishing, restarts it
// on the same path.data, and checks that every alert arrives (duplicates carry the same _id).
func TestKilledProcessLosesNothing(t *testing.T) {
	// Pages of 10 keep the beat publishing when it is killed; 1,200 alerts are 120 pages, within
	// the 150 Graph requests a minute each process's budget allows, so no run waits for it.
	const alerts = 1200
	sim, err := simulator.Start(simulator.Config{Seed: 21, Alerts: alerts, Incidents: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	out, data := t.TempDir(), t.TempDir()
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{simInput(sim, "defender-alert", "kill-test", sim.ClientSecret(),
			map[string]any{"interval": "1s", "initial_interval": "72h", "batch_size": 10})},
		"output.file": map[string]any{"path": out, "filename": "docs"},
		"queue.mem":   map[string]any{"flush.timeout": "100ms", "flush.min_events": 10},
	})
	start := func() *exec.Cmd { return startBeat(t, cfg, data) }
	uniqueIDs := func() map[string]int {
		ids := map[string]int{}
		for _, d := range readDocs(t, out) {
			ids[fmt.Sprint(get(d, "@metadata._id"))]++
		}
		return ids
	}

	first := start()
	waitFor(t, 60*time.Second, "some documents", func() bool { return len(uniqueIDs()) >= 50 })
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	killedAt := len(uniqueIDs())
	if killedAt >= alerts {
		t.Fatalf("the beat finished all alerts before it was killed; the test proves nothing")
	}

	second := start()
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	waitFor(t, 60*time.Second, "every alert after the restart", func() bool { return len(uniqueIDs()) >= alerts })
	if n := len(uniqueIDs()); n != alerts {
		t.Fatalf("%d distinct documents, want %d", n, alerts)
	}
	files, _ := filepath.Glob(filepath.Join(data, "registry", "defenderbeat", "*"))
	if len(files) == 0 || !strings.Contains(strings.Join(files, " "), "log.json") {
		t.Fatalf("no cursor registry under path.data: %v", files)
	}
}

// registryHolds reports whether a file of the registry under dataDir names key.
func registryHolds(t *testing.T, dataDir, key string) bool {
	t.Helper()
	found := false
	_ = filepath.WalkDir(filepath.Join(dataDir, "registry"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), key) {
			found = true
		}
		return nil
	})
	return found
}
