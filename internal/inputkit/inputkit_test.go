package inputkit

import (
	"strings"
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"
)

func TestCommonProblems(t *testing.T) {
	if errs := (Common{ID: "a", Namespace: "prod"}).Problems(); len(errs) != 0 {
		t.Fatalf("valid options reported: %v", errs)
	}
	errs := (Common{Namespace: "Bad-NS"}).Problems()
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "id:") || !strings.HasPrefix(errs[1].Error(), "namespace:") {
		t.Fatalf("problems = %v", errs)
	}
	err := Report("defender-alert", "", errs)
	if err == nil || !strings.Contains(err.Error(), `input "(no id)" (type defender-alert): 2 problem(s)`) {
		t.Fatalf("report = %v", err)
	}
	if Report("defender-alert", "a", nil) != nil {
		t.Fatal("no problems must report nil")
	}
}

func TestDecorate(t *testing.T) {
	ev := beat.Event{Fields: mapstr.M{"tags": []string{"x"}, "event": mapstr.M{"kind": "alert"}}}
	Decorate(&ev, "alert", "prod")
	if _, err := ev.Fields.GetValue("tags"); err == nil {
		t.Fatal("tags kept: libbeat adds the configured ones")
	}
	if v, _ := ev.Fields.GetValue("event.dataset"); v != "m365_defender.alert" {
		t.Fatalf("event.dataset = %v", v)
	}
	if v, _ := ev.Fields.GetValue("event.kind"); v != "alert" {
		t.Fatal("event.kind lost")
	}
	want := mapstr.M{"type": "logs", "dataset": "m365_defender.alert", "namespace": "prod"}
	if got := ev.Fields["data_stream"]; got.(mapstr.M).String() != want.String() {
		t.Fatalf("data_stream = %v", got)
	}
}
