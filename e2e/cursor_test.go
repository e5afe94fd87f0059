package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

type cursorEntry struct {
	InputType string     `json:"input_type"`
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	StoredIn  string     `json:"stored_in"`
	At        *time.Time `json:"position_time"`
	Moved     *time.Time `json:"last_moved"`
	Lag       *float64   `json:"lag_seconds"`
	Position  struct {
		LastUpdate string `json:"last_update"`
	} `json:"position"`
}

// alertDocIDs maps each alert written under dir to its document _id, failing on an alert
// written twice with different _ids.
func alertDocIDs(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range readDocs(t, dir) {
		id, docID := fmt.Sprint(get(d, "event.id")), fmt.Sprint(get(d, "@metadata._id"))
		if prev, ok := out[id]; ok && prev != docID {
			t.Fatalf("alert %s written with _id %s and %s", id, prev, docID)
		}
		out[id] = docID
	}
	return out
}

// TestCursorCommandsOnAKilledBeat: while the beat runs, the cursor commands refuse and change
// nothing; once it is killed with SIGKILL, `cursor list` reads the registry it left and
// `cursor set` moves the alert cursor back a day. The restarted beat reads exactly the alerts
// updated since then again, each with the _id it had.
func TestCursorCommandsOnAKilledBeat(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 71, Alerts: 150, Incidents: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	data, out := t.TempDir(), t.TempDir()
	config := func(out string) string {
		return writeConfig(t, map[string]any{
			"defenderbeat.inputs": []any{simInput(sim, "defender-alert", "kill-alerts", sim.ClientSecret(),
				map[string]any{"interval": "1s", "initial_interval": "72h"})},
			"output.file": map[string]any{"path": out, "filename": "docs"},
			"queue.mem":   map[string]any{"flush.timeout": "100ms"},
		})
	}
	cfg := config(out)

	newest := time.Time{}
	lastUpdate := map[string]time.Time{}
	for _, a := range sim.Alerts() {
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(a["lastUpdateDateTime"]))
		if err != nil {
			t.Fatal(err)
		}
		lastUpdate[fmt.Sprint(a["id"])] = ts
		if ts.After(newest) {
			newest = ts
		}
	}

	beat := startBeat(t, cfg, data)
	waitFor(t, 60*time.Second, "every alert written", func() bool { return len(alertDocIDs(t, out)) == len(lastUpdate) })
	// The cursor is written when the output acknowledges; give the last batch's write a moment.
	time.Sleep(time.Second)
	to := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	for _, args := range [][]string{{"cursor", "list"}, {"cursor", "set", "--id", "kill-alerts", "--to", to.Format(time.RFC3339)}} {
		r := run(t, "", append(args, "-c", cfg, "--path.data", data)...)
		if r.code == 0 || !strings.Contains(r.stderr+r.stdout, "a defenderbeat is running on this path.data") {
			t.Fatalf("%v while the beat runs: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	_ = beat.Process.Signal(syscall.SIGKILL)
	_ = beat.Wait()
	first := alertDocIDs(t, out)

	r := run(t, "", "cursor", "list", "--json", "-c", cfg, "--path.data", data)
	if r.code != 0 {
		t.Fatalf("cursor list after SIGKILL: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var entries []cursorEntry
	if err := json.Unmarshal([]byte(r.stdout), &entries); err != nil {
		t.Fatalf("cursor list --json: %v\n%s", err, r.stdout)
	}
	if len(entries) != 1 {
		t.Fatalf("entries %+v, want the alert cursor", entries)
	}
	e := entries[0]
	if e.InputType != "defender-alert" || e.ID != "kill-alerts" || e.Tenant != sim.TenantID() || e.StoredIn != "registry" ||
		e.At == nil || !e.At.Equal(newest) || e.Moved == nil || e.Lag == nil || *e.Lag < time.Since(newest).Seconds()-5 {
		t.Fatalf("entry %+v; want the newest alert's lastUpdateDateTime %s, when it moved, and the lag", e, newest)
	}
	r = run(t, "", "cursor", "list", "-c", cfg, "--path.data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "kill-alerts") || !strings.Contains(r.stdout, e.Position.LastUpdate) {
		t.Fatalf("cursor list (table): exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = run(t, "", "cursor", "set", "--id", "kill-alerts", "--to", "200d", "-c", cfg, "--path.data", data)
	if r.code == 0 || !strings.Contains(r.stderr, "180-day") {
		t.Fatalf("a time beyond Graph's retention: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "", "cursor", "set", "--id", "kill-alerts", "--to", to.Format(time.RFC3339), "-c", cfg, "--path.data", data)
	if r.code != 0 {
		t.Fatalf("cursor set: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	var want []string
	for id, ts := range lastUpdate {
		if !ts.Before(to) {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	if len(want) == 0 || len(want) == len(lastUpdate) {
		t.Fatalf("%d of %d alerts updated since %s: the test proves nothing", len(want), len(lastUpdate), to)
	}
	out2 := t.TempDir()
	second := startBeat(t, config(out2), data)
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	waitFor(t, 60*time.Second, "the alerts updated since the cursor's new time", func() bool { return len(alertDocIDs(t, out2)) >= len(want) })
	time.Sleep(2 * time.Second) // a few more polls: nothing older may follow
	again := alertDocIDs(t, out2)
	var got []string
	for id, docID := range again {
		got = append(got, id)
		if first[id] != docID {
			t.Errorf("alert %s read again with _id %s, first written with %s", id, docID, first[id])
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the restarted beat read %d alerts, want the %d updated since %s", len(got), len(want), to)
	}
}
