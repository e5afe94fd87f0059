package cmd

import (
	"strings"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"
	conf "github.com/elastic/elastic-agent-libs/config"
	"github.com/elastic/elastic-agent-libs/logp"
	"github.com/elastic/elastic-agent-libs/mapstr"
)

func TestIndexSupportRoutesButInstallsNothing(t *testing.T) {
	info := beat.Info{Beat: Name, IndexPrefix: Name, Version: "9.3.0", Logger: logp.NewNopLogger()}
	root := conf.MustNewConfigFrom(map[string]any{"output.elasticsearch.hosts": []string{"http://127.0.0.1:9"}, "setup.template.name": "xdr"})
	s, err := indexSupport(logp.NewNopLogger(), info, root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Enabled() {
		t.Fatal("libbeat's index management is enabled: it would install its defenderbeat-<version> template on connect")
	}
	sel, err := s.BuildSelector(conf.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := sel.Select(&beat.Event{Meta: mapstr.M{"raw_index": "logs-m365_defender.alert-default"}, Fields: mapstr.M{}})
	if err != nil || idx != "logs-m365_defender.alert-default" {
		t.Fatalf("index %q, %v: events must go where their input says", idx, err)
	}
	opts, output, _ := fromConfig.get()
	if output != "elasticsearch" || opts.Template.Name != "xdr" {
		t.Fatalf("the setup settings did not reach the beater: output %q, template %q", output, opts.Template.Name)
	}
}

func TestDashboardsAtStartNeedASource(t *testing.T) {
	for _, tc := range []struct {
		settings map[string]any
		refused  bool
	}{
		{nil, false},
		{map[string]any{"setup.dashboards.enabled": false}, false},
		{map[string]any{"setup.dashboards.enabled": true}, true},
		{map[string]any{"setup.dashboards.index": "x-*"}, true}, // libbeat counts a section without enabled as enabled
		{map[string]any{"setup.dashboards.enabled": true, "setup.dashboards.directory": "/opt/kibana"}, false},
	} {
		err := checkDashboardsAtStart(conf.MustNewConfigFrom(tc.settings))
		if (err != nil) != tc.refused || (err != nil && !strings.Contains(err.Error(), "setup --dashboards")) {
			t.Errorf("%v: %v", tc.settings, err)
		}
	}
}
