package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/loopback"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

type healthReport struct {
	Status string `json:"status"`
	Inputs []struct {
		ID          string   `json:"id"`
		Type        string   `json:"type"`
		Status      string   `json:"status"`
		Reason      string   `json:"reason"`
		Since       string   `json:"since"`
		LastSuccess string   `json:"last_success"`
		Cursor      string   `json:"cursor"`
		LagSeconds  *float64 `json:"lag_seconds"`
	} `json:"inputs"`
}

func (r healthReport) input(id string) (status, reason string) {
	for _, in := range r.Inputs {
		if in.ID == id {
			return in.Status, in.Reason
		}
	}
	return "", ""
}

// freePort is a loopback port nothing listens on (for the beat's HTTP endpoint).
func freePort(t *testing.T) int {
	t.Helper()
	port, err := loopback.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// readHealth asks the beat's health endpoint; code 0 while it does not answer.
func readHealth(url string) (int, healthReport) {
	var rep healthReport
	resp, err := http.Get(url)
	if err != nil {
		return 0, rep
	}
	defer resp.Body.Close()
	if json.NewDecoder(resp.Body).Decode(&rep) != nil {
		return 0, rep
	}
	return resp.StatusCode, rep
}

// TestHealthEndpointFollowsInputStatus runs the beat with its HTTP endpoint against the
// simulated tenant and spoils the APIs for real: a persistent 500 makes the alert input
// DEGRADED (200), a 403 makes the incident input FAILED (503), and both are HEALTHY again
// once the faults are gone. Each change of state is logged once, however often the input fails.
func TestHealthEndpointFollowsInputStatus(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 43, Alerts: 30, Incidents: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
	fast := map[string]any{"interval": "1s", "max_retries": 0}
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{
			simInput(sim, "defender-alert", "health-alerts", sim.ClientSecret(), fast),
			simInput(sim, "defender-incident", "health-incidents", sim.ClientSecret(), fast),
		},
		"http":        map[string]any{"enabled": true, "host": "127.0.0.1", "port": port},
		"output.file": map[string]any{"path": t.TempDir(), "filename": "docs"},
		"queue.mem":   map[string]any{"flush.timeout": "100ms"},
	})
	logFile := filepath.Join(t.TempDir(), "beat.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	beat := exec.Command(binary, "-c", cfg, "--path.home", t.TempDir(), "--path.data", t.TempDir(), "-e")
	beat.Stdout, beat.Stderr = out, out
	if err := beat.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = beat.Process.Signal(syscall.SIGTERM)
		_ = beat.Wait()
		if t.Failed() {
			raw, _ := os.ReadFile(logFile)
			t.Log(string(raw))
		}
	}()

	var rep healthReport
	var code int
	until := func(what string, cond func() bool) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() bool { code, rep = readHealth(url); return cond() })
	}
	both := func(status string) func() bool {
		return func() bool {
			a, _ := rep.input("health-alerts")
			i, _ := rep.input("health-incidents")
			return a == status && i == status
		}
	}

	until("both inputs HEALTHY", both("HEALTHY"))
	if code != 200 || rep.Status != "HEALTHY" {
		t.Fatalf("all healthy answered %d %+v", code, rep)
	}
	waitFor(t, 30*time.Second, "a successful poll and a cursor in the report", func() bool {
		code, rep = readHealth(url)
		for _, in := range rep.Inputs {
			if in.ID == "health-alerts" {
				return in.LastSuccess != "" && in.Cursor != "" && in.LagSeconds != nil && in.Type == "defender-alert"
			}
		}
		return false
	})

	sim.AddFault(simulator.Fault{Path: "/v1.0/security/alerts_v2", Status: 500, Times: -1})
	until("the alert input DEGRADED", func() bool { s, _ := rep.input("health-alerts"); return s == "DEGRADED" })
	if _, reason := rep.input("health-alerts"); code != 200 || rep.Status != "DEGRADED" || !strings.Contains(reason, "500") {
		t.Fatalf("a degraded input answered %d, overall %s, reason %q; want 200, DEGRADED and the HTTP status", code, rep.Status, reason)
	}

	sim.AddFault(simulator.Fault{Path: "/v1.0/security/incidents", Status: 403, Times: -1})
	until("the incident input FAILED", func() bool { s, _ := rep.input("health-incidents"); return s == "FAILED" })
	if _, reason := rep.input("health-incidents"); code != 503 || rep.Status != "FAILED" || !strings.Contains(reason, "SecurityIncident.Read.All") {
		t.Fatalf("a failed input answered %d, overall %s, reason %q; want 503, FAILED and the missing permission", code, rep.Status, reason)
	}
	// Let the inputs fail a few more times: the log must not repeat the change.
	time.Sleep(3 * time.Second)

	sim.ClearFaults()
	until("both inputs HEALTHY again", both("HEALTHY"))
	if code != 200 {
		t.Fatalf("recovered inputs answered %d", code)
	}

	raw, _ := os.ReadFile(logFile)
	counts := map[string]int{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, "Input status changed.") {
			continue
		}
		var entry struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		counts[entry.ID+" "+entry.Status]++
	}
	for key, want := range map[string]int{"health-alerts DEGRADED": 1, "health-incidents FAILED": 1, "health-alerts HEALTHY": 2, "health-incidents HEALTHY": 2} {
		if counts[key] != want {
			t.Errorf("logged %q %d times, want %d (each change once): %v", key, counts[key], want, counts)
		}
	}
}
