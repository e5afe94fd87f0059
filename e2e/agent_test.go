package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/elastic/elastic-agent-client/v7/pkg/client/chunk"
	"github.com/elastic/elastic-agent-client/v7/pkg/client/mock"
	"github.com/elastic/elastic-agent-client/v7/pkg/proto"
	"google.golang.org/grpc"
	gproto "google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v2"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

// stubAgent plays Elastic Agent for the beat: elastic-agent-client's mock.StubServerV2 serves
// the control protocol, with a check-in of its own. The mock answers a check-in only when the
// beat sends one (on a state change, or every 25 s); this one sends the policy as soon as the
// test changes it, and records every state the beat reports.
type stubAgent struct {
	mock.StubServerV2
	socket string

	mu       sync.Mutex
	units    []*proto.UnitExpected
	changed  chan struct{} // closed when the policy changes
	observed map[string]*proto.UnitObserved
	history  []string // every unit state reported, "id STATE message"
}

const stubAgentID = "stub-agent-id"

func startStubAgent(t *testing.T) *stubAgent {
	t.Helper()
	a := &stubAgent{
		socket:   filepath.Join(t.TempDir(), "agent.sock"),
		changed:  make(chan struct{}),
		observed: map[string]*proto.UnitObserved{},
	}
	a.ActionImpl = func(*proto.ActionResponse) error { return nil }
	lis, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	proto.RegisterElasticAgentServer(srv, a)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return a
}

// CheckinV2 sends the policy at once and again whenever it changes, while a second goroutine
// reads what the beat reports.
func (a *stubAgent) CheckinV2(stream proto.ElasticAgent_CheckinV2Server) error {
	received := make(chan error, 1)
	go func() {
		for {
			obs, err := chunk.RecvObserved(stream)
			if err != nil {
				received <- err
				return
			}
			a.observe(obs)
		}
	}()
	for {
		a.mu.Lock()
		expected := &proto.CheckinExpected{
			AgentInfo: &proto.AgentInfo{Id: stubAgentID, Version: "9.3.0"},
			Units:     a.units,
		}
		changed := a.changed
		a.mu.Unlock()
		if err := stream.Send(expected); err != nil {
			return err
		}
		select {
		case <-changed:
		case err := <-received:
			return err
		}
	}
}

func (a *stubAgent) observe(obs *proto.CheckinObserved) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := map[string]*proto.UnitObserved{}
	for _, u := range obs.GetUnits() {
		now[u.GetId()] = u
		if old := a.observed[u.GetId()]; old == nil || old.GetState() != u.GetState() || old.GetMessage() != u.GetMessage() {
			a.history = append(a.history, fmt.Sprintf("%s %s %s", u.GetId(), u.GetState(), u.GetMessage()))
		}
	}
	a.observed = now
}

// set replaces the policy. A unit whose configuration changed gets a new config index, which
// is how the Agent tells a component to reload it.
func (a *stubAgent) set(units ...*proto.UnitExpected) {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := map[string]*proto.UnitExpected{}
	for _, u := range a.units {
		old[u.GetId()] = u
	}
	for _, u := range units {
		u.ConfigStateIdx = 1
		if prev := old[u.GetId()]; prev != nil {
			u.ConfigStateIdx = prev.GetConfigStateIdx()
			if !gproto.Equal(prev.GetConfig(), u.GetConfig()) {
				u.ConfigStateIdx++
			}
		}
	}
	a.units = units
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *stubAgent) unit(id string) *proto.UnitObserved {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.observed[id]
}

// waitState waits until the beat reports unit id in state, with a message containing msg.
func (a *stubAgent) waitState(t *testing.T, id string, state proto.State, msg string) *proto.UnitObserved {
	t.Helper()
	var u *proto.UnitObserved
	waitForOr(t, 60*time.Second, fmt.Sprintf("unit %s %s %q", id, state, msg), a.historyText, func() bool {
		u = a.unit(id)
		return u != nil && u.GetState() == state && strings.Contains(u.GetMessage(), msg)
	})
	return u
}

func (a *stubAgent) waitGone(t *testing.T, id string) {
	t.Helper()
	waitForOr(t, 60*time.Second, "unit "+id+" removed", a.historyText, func() bool { return a.unit(id) == nil })
}

func (a *stubAgent) historyText() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return "unit states reported:\n" + strings.Join(a.history, "\n")
}

// waitForOr is waitFor that tells more when it times out.
func waitForOr(t *testing.T, timeout time.Duration, what string, more func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s\n%s", timeout, what, more())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func structOf(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	// structpb takes []any, not []string.
	norm := map[string]any{}
	for k, v := range m {
		if list, ok := v.([]string); ok {
			items := make([]any, len(list))
			for i, s := range list {
				items[i] = s
			}
			v = items
		}
		norm[k] = v
	}
	s, err := structpb.NewStruct(norm)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fileOutput is the output unit: documents go to files under dir.
func fileOutput(t *testing.T, dir string) *proto.UnitExpected {
	return &proto.UnitExpected{
		Id: "output-file", Type: proto.UnitType_OUTPUT, State: proto.State_HEALTHY, LogLevel: proto.UnitLogLevel_INFO,
		Config: &proto.UnitExpectedConfig{Id: "default", Type: "file", Name: "default",
			Source: structOf(t, map[string]any{"type": "file", "path": dir, "filename": "docs"})},
	}
}

// policyInput is an input unit with one stream, as Fleet sends it: the stream's source holds
// its id, its data_stream and the input's options.
func policyInput(t *testing.T, id, typ, dataset string, options map[string]any) *proto.UnitExpected {
	streamID := typ + "-" + dataset + "-" + id
	src := map[string]any{"id": streamID, "data_stream": map[string]any{"dataset": dataset, "type": "logs"}}
	for k, v := range options {
		src[k] = v
	}
	return &proto.UnitExpected{
		Id: id, Type: proto.UnitType_INPUT, State: proto.State_HEALTHY, LogLevel: proto.UnitLogLevel_INFO,
		Config: &proto.UnitExpectedConfig{
			Id: id, Type: typ, Name: "m365-defender", Revision: 1,
			DataStream: &proto.DataStream{Namespace: "agent"},
			Source:     structOf(t, map[string]any{"id": id, "type": typ, "use_output": "default"}),
			Streams: []*proto.Stream{{
				Id: streamID, DataStream: &proto.DataStream{Dataset: dataset, Type: "logs"},
				Source: structOf(t, src),
			}},
		},
	}
}

func stopped(u *proto.UnitExpected) *proto.UnitExpected {
	u = gproto.CloneOf(u)
	u.State = proto.State_STOPPED
	return u
}

// specArgs are the arguments defenderbeat.spec.yml tells the Agent to run the beat with.
func specArgs(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../defenderbeat.spec.yml")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Inputs []struct {
			Command struct {
				Args []string `yaml:"args"`
			} `yaml:"command"`
		} `yaml:"inputs"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil || len(spec.Inputs) == 0 {
		t.Fatalf("defenderbeat.spec.yml: %v", err)
	}
	return spec.Inputs[0].Command.Args
}

// managedBeat is the beat as the Agent runs it: the spec's arguments, the control protocol
// pointed at the stub instead of connection details on stdin.
type managedBeat struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	mu     *sync.Mutex
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func startManagedBeat(t *testing.T, agent *stubAgent, data string) *managedBeat {
	t.Helper()
	home := t.TempDir()
	args := append(specArgs(t),
		"-E", "management.insecure_grpc_url_for_testing=unix://"+agent.socket,
		"--path.home", home, "--path.config", home, "--path.data", data, "--path.logs", filepath.Join(home, "logs"))
	b := &managedBeat{cmd: exec.Command(binary, args...), stderr: &bytes.Buffer{}, mu: &sync.Mutex{}}
	b.cmd.Stderr = lockedWriter{b.mu, b.stderr}
	b.cmd.Stdout = lockedWriter{b.mu, b.stderr}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b.cmd.ProcessState == nil {
			_ = b.cmd.Process.Kill()
			_ = b.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("beat output (last 8 KiB):\n%s", tail(b.log(), 8<<10))
		}
	})
	return b
}

func (b *managedBeat) log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.String()
}

// count counts the log lines that contain s.
func (b *managedBeat) count(s string) int { return strings.Count(b.log(), s) }

func (b *managedBeat) stop(t *testing.T) {
	t.Helper()
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the beat did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the beat did not exit within 30 s of SIGTERM")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// alertDocs reads the alert documents under dir and fails on a document sent twice: every
// restart in the test must resume from the cursor, not read again.
func alertDocs(t *testing.T, dir string) map[string]map[string]any {
	t.Helper()
	byID := map[string]map[string]any{}
	for _, d := range readDocs(t, dir) {
		if get(d, "event.dataset") != "m365_defender.alert" {
			continue
		}
		id := fmt.Sprint(get(d, "@metadata._id"))
		if _, dup := byID[id]; dup {
			t.Fatalf("alert document %s written twice: an input did not resume from its cursor", id)
		}
		byID[id] = d
	}
	return byID
}

// missingAlerts lists the current alerts of the tenant, in their current version, that have no
// document (read from event.original: the inputs run with preserve_original_event).
func missingAlerts(sim *simulator.Server, docs map[string]map[string]any) []string {
	have := map[string]bool{}
	for _, d := range docs {
		var raw struct{ ID, LastUpdateDateTime string }
		_ = json.Unmarshal([]byte(fmt.Sprint(get(d, "event.original"))), &raw)
		have[raw.ID+" "+raw.LastUpdateDateTime] = true
	}
	var missing []string
	for _, a := range sim.Alerts() {
		if !have[fmt.Sprint(a["id"], " ", a["lastUpdateDateTime"])] {
			missing = append(missing, fmt.Sprint(a["id"], " ", a["lastUpdateDateTime"]))
		}
	}
	return missing
}

// waitEveryAlert waits until every current alert of the tenant has its document.
func waitEveryAlert(t *testing.T, sim *simulator.Server, out string, what string) {
	t.Helper()
	var missing []string
	waitForOr(t, 60*time.Second, what, func() string {
		docs := alertDocs(t, out)
		var sample any
		for _, d := range docs {
			sample = d
			break
		}
		return fmt.Sprintf("%d alert documents; missing %d, first %v; a document: %v", len(docs), len(missing), missing[:min(3, len(missing))], sample)
	}, func() bool {
		missing = missingAlerts(sim, alertDocs(t, out))
		return len(missing) == 0
	})
}

// TestUnderElasticAgent runs the real binary as Elastic Agent would, through the control
// protocol: units added, healthy, documents written as the integration's policy places them, a
// policy change restarting only the changed input, a unit stopped and removed, a restart on the
// same path.data resuming the cursor, and the statuses a wrong secret and an unknown option
// report.
func TestUnderElasticAgent(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 41, Alerts: 30, Incidents: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	out, data := t.TempDir(), t.TempDir()
	options := func(secret string, extra map[string]any) map[string]any {
		o := simInput(sim, "", "", secret, map[string]any{"interval": "1s", "initial_interval": "72h"})
		delete(o, "type")
		delete(o, "id")
		for k, v := range extra {
			o[k] = v
		}
		return o
	}
	output := fileOutput(t, out)
	// missingAlerts reads the alert versions from event.original.
	keepOriginal := map[string]any{"tags": []string{"forwarded", "m365_defender-alert", "preserve_original_event"}}
	alerts := policyInput(t, "alerts", "defender-alert", "m365_defender.alert", options(sim.ClientSecret(), keepOriginal))
	incidents := policyInput(t, "incidents", "defender-incident", "m365_defender.incident", options(sim.ClientSecret(), nil))

	agent := startStubAgent(t)
	agent.set(output, alerts)
	beat := startManagedBeat(t, agent, data)

	// Input and output units become healthy, and every alert arrives where the integration's
	// policy would put it.
	agent.waitState(t, "output-file", proto.State_HEALTHY, "")
	agent.waitState(t, "alerts", proto.State_HEALTHY, "")
	waitEveryAlert(t, sim, out, "every alert written")
	for _, d := range alertDocs(t, out) {
		for path, want := range map[string]any{
			"@metadata.raw_index":   "logs-m365_defender.alert-agent",
			"@metadata.stream_id":   "defender-alert-m365_defender.alert-alerts",
			"data_stream.dataset":   "m365_defender.alert",
			"data_stream.namespace": "agent",
			"data_stream.type":      "logs",
			"event.dataset":         "m365_defender.alert",
			"agent.id":              stubAgentID,
			"elastic_agent.id":      stubAgentID,
			"input.type":            "defender-alert",
		} {
			if got := get(d, path); got != want {
				t.Fatalf("%s = %v, want %v; document: %v", path, got, want, d)
			}
		}
		if collector, _ := os.Hostname(); collector != "" && strings.Contains(fmt.Sprint(get(d, "host.name")), collector) {
			t.Fatalf("forwarded document carries the collector's host %q: %v", collector, d["host"])
		}
	}

	// A policy change to one unit restarts that input only, and it resumes from its cursor.
	agent.set(output, alerts, incidents)
	agent.waitState(t, "incidents", proto.State_HEALTHY, "")
	waitForOr(t, 60*time.Second, "incident documents", beat.log, func() bool {
		for _, d := range readDocs(t, out) {
			if get(d, "event.dataset") == "m365_defender.incident" {
				return true
			}
		}
		return false
	})
	alertStarts, incidentStarts := beat.count("Input 'defender-alert' starting"), beat.count("Input 'defender-incident' starting")
	if alertStarts != 1 || incidentStarts != 1 {
		t.Fatalf("inputs started %d (alert) and %d (incident) times, want once each", alertStarts, incidentStarts)
	}
	keepOriginal["interval"] = "2s"
	alerts = policyInput(t, "alerts", "defender-alert", "m365_defender.alert", options(sim.ClientSecret(), keepOriginal))
	agent.set(output, alerts, incidents)
	waitForOr(t, 60*time.Second, "the changed alert input restarted", beat.log, func() bool {
		return beat.count("Input 'defender-alert' starting") == 2
	})
	sim.Tick()
	waitEveryAlert(t, sim, out, "the alerts changed after the reload")
	if n := beat.count("Input 'defender-incident' starting"); n != 1 {
		t.Fatalf("the unchanged incident input was restarted (%d starts)", n)
	}
	agent.waitState(t, "alerts", proto.State_HEALTHY, "")

	// Stopped, then removed: the beat reports each, and keeps running its other units.
	agent.set(output, stopped(alerts), incidents)
	agent.waitState(t, "alerts", proto.State_STOPPED, "")
	agent.set(output, incidents)
	agent.waitGone(t, "alerts")
	agent.waitState(t, "incidents", proto.State_HEALTHY, "")
	beat.stop(t)

	// A new process on the same path.data resumes the alert cursor: only what changed since is
	// written (alertDocs fails on a document written twice).
	before := len(alertDocs(t, out))
	sim.Tick()
	agent.set(output, alerts)
	beat = startManagedBeat(t, agent, data)
	agent.waitState(t, "alerts", proto.State_HEALTHY, "")
	waitEveryAlert(t, sim, out, "the alerts changed while the beat was down")
	if after := len(alertDocs(t, out)); after <= before {
		t.Fatalf("no new alert documents after the restart (%d before, %d after)", before, after)
	}
	if !strings.Contains(beat.log(), "Resuming from the stored cursor.") {
		t.Fatal("the restarted input did not resume from its stored cursor")
	}

	// A wrong secret fails its unit with what `test credentials` says; the secret stays out.
	wrong := "not-the-secret-" + sim.ClientSecret()[:4]
	badSecret := policyInput(t, "bad-secret", "defender-alert", "m365_defender.alert", options(wrong, nil))
	agent.set(output, alerts, badSecret)
	u := agent.waitState(t, "bad-secret", proto.State_FAILED, "AADSTS7000215")
	t.Logf("a wrong secret: %s", u.GetMessage())
	if !strings.Contains(u.GetMessage(), "invalid client secret") || !strings.Contains(u.GetMessage(), "SecurityAlert.Read.All") {
		t.Errorf("the FAILED message does not explain: %s", u.GetMessage())
	}
	if strings.Contains(u.GetMessage()+beat.log(), wrong) {
		t.Error("the wrong secret appears in the status or the log")
	}
	if got := agent.unit("alerts").GetState(); got != proto.State_HEALTHY {
		t.Errorf("the other input is %s beside the failed one", got)
	}

	// An unknown option fails its unit, naming the option.
	typo := policyInput(t, "typo", "defender-alert", "m365_defender.alert", options(sim.ClientSecret(), map[string]any{"intervall": "1m"}))
	agent.set(output, alerts, typo)
	u = agent.waitState(t, "typo", proto.State_FAILED, "intervall: unknown option (did you mean interval?)")
	t.Logf("an unknown option: %s", u.GetMessage())
	beat.stop(t)
}
