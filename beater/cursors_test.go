package beater

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/cmd/instance/locks"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/paths"

	"github.com/defenderbeat/defenderbeat/config"
	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/inputkit"
	"github.com/defenderbeat/defenderbeat/internal/simulator"
	"github.com/defenderbeat/defenderbeat/module/alert"
)

// cursorsOn opens, like the cursor commands, the registry a harness wrote.
func cursorsOn(t *testing.T, h *cursortest.Harness, inputs ...*conf.C) (*Cursors, error) {
	t.Helper()
	info := beat.Info{Beat: "defenderbeat", Logger: logp.NewNopLogger()}
	cfg := config.Default()
	cfg.Registry.Path, cfg.Inputs = h.Dir, inputs
	return OpenCursors(info, dataPaths(h), cfg, true)
}

func dataPaths(h *cursortest.Harness) *paths.Path {
	p := paths.New()
	p.Home, p.Data = filepath.Dir(h.Dir), filepath.Dir(h.Dir)
	return p
}

func publishedAlerts(events []beat.Event) map[string]string {
	out := map[string]string{}
	for _, ev := range events {
		id, _ := ev.Fields.GetValue("event.id")
		out[fmt.Sprint(id)] = fmt.Sprint(ev.Meta["_id"])
	}
	return out
}

// TestCursorSetReadsAgainFromThere collects every alert, lists the stored cursor, moves it
// back with `cursor set` and restarts the input on the same registry: exactly the alerts
// updated since then are read again, with the _id they had.
func TestCursorSetReadsAgainFromThere(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 61, Alerts: 80, Incidents: 10})
	settings := cursortest.SimSettings(sim, "contoso-alerts", map[string]any{"interval": "100ms", "initial_interval": "72h"})
	h := cursortest.New(t)
	h.Run(alert.Dataset.Plugin, settings, 30*time.Second, func() bool { return h.Count() >= 80 })
	first := publishedAlerts(h.Published())

	var newest time.Time
	for _, a := range sim.Alerts() {
		ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(a["lastUpdateDateTime"]))
		if err != nil {
			t.Fatal(err)
		}
		if ts.After(newest) {
			newest = ts
		}
	}

	c, err := cursorsOn(t, h)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := c.List(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("entries = %+v, want the one alert cursor", entries)
	}
	e := entries[0]
	if e.InputType != "defender-alert" || e.ID != "contoso-alerts" || e.Tenant != sim.TenantID() || e.At == nil || !e.At.Equal(newest) ||
		e.Moved == nil || time.Since(*e.Moved) > time.Minute || e.Lag == nil || *e.Lag <= 0 {
		t.Fatalf("entry = %+v; want type, id, tenant, the newest alert's time %s, a recent move and a lag", e, newest)
	}

	if _, err := c.Move("contoso-alerts", inputkit.Move{To: time.Now().Add(-181 * 24 * time.Hour), Now: time.Now()}); err == nil || !strings.Contains(err.Error(), "180-day") {
		t.Fatalf("a time beyond Graph's retention was accepted: %v", err)
	}
	if _, err := c.Move("contoso-alerts", inputkit.Move{FullExport: true, Now: time.Now()}); !errors.Is(err, inputkit.ErrNoFullExport) {
		t.Fatalf("--full-export on an alert input: %v", err)
	}
	if _, err := c.Move("nope", inputkit.Move{Now: time.Now()}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("an unknown id: %v", err)
	}
	to := time.Now().Add(-24 * time.Hour).UTC()
	moved, err := c.Move("contoso-alerts", inputkit.Move{To: to, Now: time.Now()})
	c.Close()
	if err != nil || len(moved) != 1 || moved[0].Removed {
		t.Fatalf("moved %+v, %v", moved, err)
	}

	var want []string
	for _, a := range sim.Alerts() {
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(a["lastUpdateDateTime"]))
		if !ts.Before(to) {
			want = append(want, fmt.Sprint(a["id"]))
		}
	}
	if len(want) == 0 || len(want) == len(first) {
		t.Fatalf("%d of %d alerts after %s: the test proves nothing", len(want), len(first), to)
	}
	again := h.Restart()
	again.Run(alert.Dataset.Plugin, settings, 30*time.Second, func() bool { return again.Count() >= len(want) })
	got := publishedAlerts(again.Published())
	var gotIDs []string
	for id, docID := range got {
		gotIDs = append(gotIDs, id)
		if first[id] != docID {
			t.Errorf("alert %s read again with _id %s, first %s", id, docID, first[id])
		}
	}
	slices.Sort(gotIDs)
	slices.Sort(want)
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("read again %d alerts, want the %d updated since %s", len(gotIDs), len(want), to)
	}
}

// TestCursorsRefusedWhileABeatHoldsTheDataPath holds path.data's lock as a running beat does.
func TestCursorsRefusedWhileABeatHoldsTheDataPath(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 62, Alerts: 5, Incidents: 1})
	h := cursortest.New(t)
	h.Run(alert.Dataset.Plugin, cursortest.SimSettings(sim, "held", map[string]any{"interval": "100ms", "initial_interval": "72h"}),
		30*time.Second, func() bool { return h.Count() >= 5 })

	beatLock := locks.New(beat.Info{Beat: "defenderbeat", Logger: logp.NewNopLogger()}, dataPaths(h))
	if err := beatLock.Lock(); err != nil {
		t.Fatal(err)
	}
	_, err := cursorsOn(t, h)
	if !errors.Is(err, ErrBeatRunning) {
		t.Fatalf("opened while a beat holds path.data: %v", err)
	}
	if err := beatLock.Unlock(); err != nil {
		t.Fatal(err)
	}
	c, err := cursorsOn(t, h)
	if err != nil {
		t.Fatalf("refused once the beat stopped: %v", err)
	}
	c.Close()
}

func TestForgottenCursorStartsAsOnAFirstRun(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 63, Alerts: 30, Incidents: 3})
	settings := cursortest.SimSettings(sim, "forget", map[string]any{"interval": "100ms", "initial_interval": "72h"})
	h := cursortest.New(t)
	h.Run(alert.Dataset.Plugin, settings, 30*time.Second, func() bool { return h.Count() >= 30 })
	c, err := cursorsOn(t, h)
	if err != nil {
		t.Fatal(err)
	}
	moved, err := c.Move("forget", inputkit.Move{Now: time.Now()})
	c.Close()
	if err != nil || len(moved) != 1 || !moved[0].Removed {
		t.Fatalf("moved %+v, %v", moved, err)
	}
	if h.StoredCursor("defender-alert::forget::tenant-"+sim.TenantID(), new(map[string]any)) {
		t.Fatal("the cursor is still stored")
	}
	again := h.Restart()
	again.Run(alert.Dataset.Plugin, settings, 30*time.Second, func() bool { return again.Count() >= 30 })
}

// TestCursorSetBeforeTheFirstRun places the first cursor of an input that never ran (moving
// from the integration): its first run reads from there, not from initial_interval.
func TestCursorSetBeforeTheFirstRun(t *testing.T) {
	sim := cursortest.StartSim(t, simulator.Config{Seed: 64, Alerts: 60, Incidents: 6})
	settings := cursortest.SimSettings(sim, "migrated", map[string]any{"interval": "100ms", "initial_interval": "72h"})
	h := cursortest.New(t)
	h.Dir = filepath.Join(h.Dir, "registry") // not there yet
	input := conf.MustNewConfigFrom(settings)
	if err := input.SetString("type", -1, alert.Dataset.InputType); err != nil {
		t.Fatal(err)
	}

	c, err := cursorsOn(t, h, input)
	if err != nil {
		t.Fatal(err)
	}
	if entries, err := c.List(time.Now()); err != nil || len(entries) != 1 || entries[0].ID != "migrated" || !strings.HasPrefix(entries[0].Summary, "nothing stored yet") {
		t.Fatalf("list before the first run: %+v, %v", entries, err)
	}
	if moved, err := c.Move("migrated", inputkit.Move{Now: time.Now()}); err != nil || len(moved) != 1 || moved[0].Before != "" || !moved[0].Removed {
		t.Fatalf("a reset of an input that stored nothing: %+v, %v", moved, err)
	}
	to := time.Now().Add(-12 * time.Hour).UTC()
	moved, err := c.Move("migrated", inputkit.Move{To: to, Now: time.Now()})
	c.Close()
	if err != nil || len(moved) != 1 || moved[0].Key != "defender-alert::migrated::tenant-"+sim.TenantID() {
		t.Fatalf("moved %+v, %v", moved, err)
	}

	want := 0
	for _, a := range sim.Alerts() {
		if ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(a["lastUpdateDateTime"])); !ts.Before(to) {
			want++
		}
	}
	if want == 0 || want == 60 {
		t.Fatalf("%d of 60 alerts after %s: the test proves nothing", want, to)
	}
	h.Run(alert.Dataset.Plugin, settings, 30*time.Second, func() bool { return h.Count() >= want })
	time.Sleep(300 * time.Millisecond) // a few more polls: nothing older may follow
	if got := len(publishedAlerts(h.Published())); got != want {
		t.Fatalf("the first run read %d alerts, want the %d updated since %s", got, want, to)
	}
}
