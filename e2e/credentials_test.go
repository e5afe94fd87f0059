package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// simInput is an input of type typ pointed at the simulated tenant (export files too).
func simInput(sim *simulator.Server, typ, id, secret string, extra map[string]any) map[string]any {
	in := map[string]any{
		"type": typ, "id": id,
		"tenant_id": sim.TenantID(), "client_id": sim.ClientID(), "client_secret": secret,
		"login_url": sim.URL(), "request_url": sim.URL(),
		"ssl.certificate_authorities": []string{sim.CAFile()},
	}
	if typ == "defender-vulnerability" {
		in["download_hosts"] = []string{sim.Hostname()}
	}
	for k, v := range extra {
		in[k] = v
	}
	return in
}

func TestTestCredentials(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 31, Alerts: 5, Incidents: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	t.Run("every input OK", func(t *testing.T) {
		cfg := writeConfig(t, map[string]any{
			"defenderbeat.inputs": []any{
				simInput(sim, "defender-alert", "a", sim.ClientSecret(), nil),
				simInput(sim, "defender-incident", "i", sim.ClientSecret(), nil),
			},
			"output.console.enabled": true,
		})
		r := run(t, "", "test", "credentials", "-c", cfg)
		if r.code != 0 || strings.Count(r.stdout, "... OK") != 2 {
			t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("wrong secret and missing permission are named", func(t *testing.T) {
		sim.AddFault(simulator.Fault{Path: "/v1.0/security/incidents", Status: 403, Times: -1})
		defer sim.ClearFaults()
		wrong := "not-the-secret-" + sim.ClientSecret()[:4]
		cfg := writeConfig(t, map[string]any{
			"defenderbeat.inputs": []any{
				simInput(sim, "defender-alert", "a", wrong, nil),
				simInput(sim, "defender-incident", "i", sim.ClientSecret(), nil),
			},
			"output.console.enabled": true,
		})
		r := run(t, "", "test", "credentials", "-c", cfg)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", r.code, r.stdout)
		}
		if !strings.Contains(r.stdout, "(defender-alert)... FAILED") || !strings.Contains(r.stdout, "7000215") {
			t.Errorf("wrong secret not explained:\n%s", r.stdout)
		}
		if !strings.Contains(r.stdout, "(defender-incident)... FAILED") || !strings.Contains(r.stdout, "SecurityIncident.Read.All") {
			t.Errorf("missing permission not named:\n%s", r.stdout)
		}
		if strings.Contains(r.stdout+r.stderr, wrong) || strings.Contains(r.stdout+r.stderr, sim.ClientSecret()) {
			t.Error("a secret appears in the output")
		}
	})
}

// TestSecretNeverLogged runs the beat with every debug selector and the request tracer on, and
// checks that the client secret appears nowhere in what it logs.
func TestSecretNeverLogged(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 32, Alerts: 20, Incidents: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	out := t.TempDir()
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{
			simInput(sim, "defender-alert", "a", sim.ClientSecret(), map[string]any{"enable_request_tracer": true, "interval": "1s", "initial_interval": "72h"}),
		},
		"output.file": map[string]any{"path": out, "filename": "docs"},
	})
	cmd, logs := startDebugBeat(t, cfg)
	waitFor(t, 30*time.Second, "documents", func() bool {
		if len(readDocs(t, out)) >= 20 {
			return true
		}
		if cmd.ProcessState != nil {
			t.Fatalf("beat exited:\n%s", logs())
		}
		return false
	})
	time.Sleep(1500 * time.Millisecond) // one more poll with the tracer on
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	if !strings.Contains(logs(), "alerts_v2") {
		t.Fatal("the debug log does not show the requests; the check below would prove nothing")
	}
	if strings.Contains(logs(), sim.ClientSecret()) {
		t.Fatal("the client secret appears in the logs")
	}
}

// TestSASSignatureNeverLogged runs a vulnerability export whose first downloads lose their
// connection, with every debug selector and the request tracer on, and checks that no export
// file's SAS signature (nor the client secret) appears in what the beat logs.
func TestSASSignatureNeverLogged(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 34, MDE: simulator.MDEConfig{
		Devices: 10, SoftwarePerDevice: 2, CVEsPerSoftware: 2, Files: 2, DisableThrottling: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	// Both files' first downloads: the connection is closed before any answer.
	sim.AddFault(simulator.Fault{Path: "/tvm-export/", Kind: simulator.FaultDropConnection, Times: 2})
	rows := 0
	for range sim.ExportRowIDs() {
		rows++
	}
	out := t.TempDir()
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{
			simInput(sim, "defender-vulnerability", "v", sim.ClientSecret(), map[string]any{
				"enable_request_tracer": true, "mode": "export", "interval": "1h",
				"download_hosts": []string{sim.Hostname()},
			}),
		},
		"output.file": map[string]any{"path": out, "filename": "docs"},
	})
	cmd, logs := startDebugBeat(t, cfg)
	waitFor(t, 60*time.Second, "every export row", func() bool {
		if cmd.ProcessState != nil {
			t.Fatalf("beat exited:\n%s", logs())
		}
		return len(readDocs(t, out)) >= rows
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	text := logs()
	// The check below proves something only if the logs show the failed downloads and the
	// traced export answer, URLs included.
	for _, want := range []string{"HTTP attempt failed", "/tvm-export/", "exportFiles", "sig=REDACTED"} {
		if !strings.Contains(text, want) {
			t.Fatalf("the debug log lacks %q; the check below would prove nothing", want)
		}
	}
	for _, m := range regexp.MustCompile(`(?i)sig=([^&"\s\\]*)`).FindAllStringSubmatch(text, -1) {
		if m[1] != "REDACTED" {
			t.Fatalf("a SAS signature appears in the logs: %s", m[0])
		}
	}
	if strings.Contains(text, sim.ClientSecret()) {
		t.Fatal("the client secret appears in the logs")
	}
}

// TestInputsMonitoringEndpoint checks that each input's counters are served on /inputs/ when
// the HTTP endpoint is enabled.
func TestInputsMonitoringEndpoint(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 33, Alerts: 15, Incidents: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	port := freePort(t)
	out := t.TempDir()
	cfg := writeConfig(t, map[string]any{
		"defenderbeat.inputs": []any{simInput(sim, "defender-alert", "monitored", sim.ClientSecret(), map[string]any{"initial_interval": "72h"})},
		"output.file":         map[string]any{"path": out, "filename": "docs"},
		"http":                map[string]any{"enabled": true, "host": "127.0.0.1", "port": port},
	})
	cmd := exec.Command(binary, "-c", cfg, "--path.home", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var inputs []map[string]any
	waitFor(t, 30*time.Second, "the alert input's metrics", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/inputs/", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		inputs = nil
		if json.NewDecoder(resp.Body).Decode(&inputs) != nil {
			return false
		}
		for _, in := range inputs {
			if events, _ := in["events_total"].(float64); events >= 15 {
				return true
			}
		}
		return false
	})
	for _, in := range inputs {
		if events, _ := in["events_total"].(float64); events >= 15 {
			if req, _ := in["requests_total"].(float64); req < 1 || in["cursor_timestamp"] == "" {
				t.Fatalf("input metrics incomplete: %v", in)
			}
		}
	}
}
