package e2e

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
	"github.com/defenderbeat/defenderbeat/internal/stacktest"
)

// Every dataset reaches its data stream through output.elasticsearch: the templates, policies and
// pipeline are installed when the output connects, before the first _bulk, and every document is
// a create with an _id.
func TestElasticsearchOutputWritesToTheIntegrationsDataStreams(t *testing.T) {
	es := stacktest.NewElasticsearch()
	defer es.Close()
	r := run(t, "", "simulate", "--duration", "15s",
		"-E", "output.console.enabled=false", "-E", "output.elasticsearch.hosts=["+es.URL()+"]")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}

	firstBulk := -1
	var installed []string
	for i, req := range es.Requests() {
		if strings.HasSuffix(req.Path, "/_bulk") && firstBulk < 0 {
			firstBulk = i
		}
		if req.Method == "PUT" && firstBulk < 0 {
			installed = append(installed, req.String())
		}
	}
	wantInstalled := []string{
		"PUT /_ilm/policy/defenderbeat", "PUT /_ilm/policy/defenderbeat-vulnerability",
		"PUT /_ingest/pipeline/defenderbeat-final",
		"PUT /_index_template/defenderbeat", "PUT /_index_template/defenderbeat-vulnerability",
	}
	if firstBulk < 0 || strings.Join(installed, ",") != strings.Join(wantInstalled, ",") {
		t.Fatalf("before the first _bulk (request %d) the output installed %v, want %v", firstBulk, installed, wantInstalled)
	}
	for _, w := range requestList(es.Writes()) {
		if strings.Contains(w, "_transform") {
			t.Errorf("a running beat touched a transform: %s (setup's job)", w)
		}
	}

	ids := map[string]bool{}
	for _, a := range es.BulkActions() {
		if a.Op != "create" || a.ID == "" || !strings.HasPrefix(a.Index, "logs-m365_defender.") || !strings.HasSuffix(a.Index, "-default") {
			t.Fatalf("bulk action %+v, want create with an _id into logs-m365_defender.<dataset>-default", a)
		}
		ids[a.Index+"/"+a.ID] = true
	}
	wantTemplates := map[string]string{
		"logs-m365_defender.alert-default":         "defenderbeat",
		"logs-m365_defender.incident-default":      "defenderbeat",
		"logs-m365_defender.vulnerability-default": "defenderbeat-vulnerability",
	}
	for name, tmpl := range wantTemplates {
		ds := es.DataStream(name)
		if ds == nil || len(ds.Docs) == 0 {
			t.Fatalf("no documents in %s (data streams: %v)", name, es.DataStreams())
		}
		if ds.Template != tmpl {
			t.Errorf("%s was created from template %s, want %s", name, ds.Template, tmpl)
		}
		doc := ds.Docs[0].Source
		if get(doc, "event.ingested") == nil || get(doc, "event.dataset") != strings.TrimSuffix(strings.TrimPrefix(name, "logs-"), "-default") {
			t.Errorf("%s: document without event.ingested or with the wrong event.dataset: %v", name, doc["event"])
		}
		if get(doc, "@metadata") != nil {
			t.Errorf("%s: @metadata was indexed", name)
		}
	}
	for _, name := range es.DataStreams() {
		if ds := es.DataStream(name); !strings.HasPrefix(name, "logs-m365_defender.") || !strings.HasPrefix(ds.Template, "defenderbeat") {
			t.Errorf("data stream %s from template %s", name, ds.Template)
		}
	}
	if len(ids) == 0 {
		t.Fatal("no documents")
	}
}

// The _id of each bulk action is the document's @metadata._id (the same records published to a
// file carry the same ids), and a beat that sends everything again adds no document: the data
// stream answers 409 for each _id it has, and the beat moves on.
func TestBulkIDsAreMetadataIDsAndResendsAddNothing(t *testing.T) {
	sim, err := simulator.Start(simulator.Config{Seed: 5, Alerts: 60, Incidents: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	alerts := len(sim.Alerts())
	input := simInput(sim, "defender-alert", "bulk-ids", sim.ClientSecret(), map[string]any{"interval": "1h", "initial_interval": "72h"})
	queue := map[string]any{"flush.timeout": "100ms", "flush.min_events": 10}

	out := t.TempDir()
	fileCfg := writeConfig(t, map[string]any{"defenderbeat.inputs": []any{input}, "output.file": map[string]any{"path": out, "filename": "docs"}, "queue.mem": queue})
	fileIDs := map[string]bool{}
	runUntil(t, fileCfg, func() bool {
		for _, d := range readDocs(t, out) {
			fileIDs[fmt.Sprint(get(d, "@metadata._id"))] = true
		}
		return len(fileIDs) >= alerts
	})

	es := stacktest.NewElasticsearch()
	defer es.Close()
	esCfg := writeConfig(t, map[string]any{"defenderbeat.inputs": []any{input}, "output.elasticsearch.hosts": []string{es.URL()}, "queue.mem": queue})
	stored := func() int {
		if ds := es.DataStream("logs-m365_defender.alert-default"); ds != nil {
			return len(ds.Docs)
		}
		return 0
	}
	runUntil(t, esCfg, func() bool { return stored() >= alerts })
	seen := map[string]bool{}
	var bulkIDs []string
	for _, a := range es.BulkActions() {
		if !seen[a.ID] {
			seen[a.ID] = true
			bulkIDs = append(bulkIDs, a.ID)
		}
	}
	sort.Strings(bulkIDs)
	var want []string
	for id := range fileIDs {
		want = append(want, id)
	}
	sort.Strings(want)
	if strings.Join(bulkIDs, ",") != strings.Join(want, ",") {
		t.Fatalf("bulk _ids (%d) differ from @metadata._id (%d):\n%v\n%v", len(bulkIDs), len(want), bulkIDs, want)
	}

	// A fresh registry sends every alert again, with the same ids.
	sent := len(es.BulkActions())
	runUntil(t, esCfg, func() bool { return len(es.BulkActions()) >= sent+alerts })
	if stored() != alerts {
		t.Fatalf("the data stream holds %d documents after a re-send, want %d", stored(), alerts)
	}
}

// runUntil runs the beat on a fresh data directory until done holds, then stops it.
func runUntil(t *testing.T, cfg string, done func() bool) {
	t.Helper()
	cmd := startBeat(t, cfg, t.TempDir())
	defer stop(cmd)
	waitFor(t, 90*time.Second, "the beat to publish", done)
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGINT)
	finished := make(chan struct{})
	go func() { _ = cmd.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-finished
	}
}

// On a cluster that has the m365_defender integration, its templates (priority 200) keep
// governing the data streams they match, and defenderbeat's finished documents skip the
// integration's ingest pipeline, which expects raw records: they arrive intact, with the
// integration's final pipeline run.
func TestDocumentsBesideTheIntegrationSkipItsIngestPipeline(t *testing.T) {
	fleet := func(dataset string) map[string]any {
		return map[string]any{
			"index_patterns": []any{"logs-m365_defender." + dataset + "-*"},
			"priority":       float64(200),
			"data_stream":    map[string]any{},
			"template": map[string]any{"settings": map[string]any{"index": map[string]any{
				// Absent from the fake: a document sent through it would be refused.
				"default_pipeline": "logs-m365_defender." + dataset + "-5.15.0",
				"final_pipeline":   ".fleet_final_pipeline-1",
			}}},
			"_meta": map[string]any{"managed_by": "fleet", "managed": true},
		}
	}
	es := stacktest.NewElasticsearch(
		stacktest.WithIndexTemplate("logs-m365_defender.alert", fleet("alert")),
		stacktest.WithIndexTemplate("logs-m365_defender.vulnerability", fleet("vulnerability")),
		stacktest.WithPipeline(".fleet_final_pipeline-1", map[string]any{"processors": []any{
			map[string]any{"set": map[string]any{"field": "event.ingested", "value": "{{{_ingest.timestamp}}}"}},
		}}),
	)
	defer es.Close()
	r := run(t, "", "simulate", "--duration", "12s",
		"-E", "output.console.enabled=false", "-E", "output.elasticsearch.hosts=["+es.URL()+"]")
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	for _, a := range es.BulkActions() {
		if a.Pipeline != "_none" {
			t.Fatalf("bulk action %+v does not skip the default ingest pipeline", a)
		}
	}
	for name, tmpl := range map[string]string{
		"logs-m365_defender.alert-default":         "logs-m365_defender.alert",
		"logs-m365_defender.vulnerability-default": "logs-m365_defender.vulnerability",
		"logs-m365_defender.incident-default":      "defenderbeat",
	} {
		ds := es.DataStream(name)
		if ds == nil || len(ds.Docs) == 0 {
			t.Fatalf("%s holds no documents", name)
		}
		if ds.Template != tmpl {
			t.Errorf("%s was created from %s, want %s", name, ds.Template, tmpl)
		}
		if get(ds.Docs[0].Source, "event.ingested") == nil {
			t.Errorf("%s: no final pipeline ran", name)
		}
	}
	if es.Template("logs-m365_defender.alert")["priority"] != float64(200) {
		t.Error("the integration's template was changed")
	}
}
