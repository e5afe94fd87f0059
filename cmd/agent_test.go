package cmd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/elastic/beats/v7/libbeat/common/reload"
	"github.com/elastic/elastic-agent-client/v7/pkg/client"
	"github.com/elastic/elastic-agent-client/v7/pkg/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func structOf(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var agentInfo = &client.AgentInfo{ID: "agent-1", Version: "9.3.0"}

// fleetUnit is an input unit as Fleet sends one for a policy with the given streams: each
// stream's source holds its id, its data_stream and the options.
func fleetUnit(t *testing.T, typ, namespace string, streams ...map[string]any) *proto.UnitExpectedConfig {
	t.Helper()
	u := &proto.UnitExpectedConfig{
		Id:         typ + "-policy-1",
		Type:       typ,
		Name:       "m365-defender-1",
		DataStream: &proto.DataStream{Namespace: namespace},
		Source:     structOf(t, map[string]any{"id": typ + "-policy-1", "type": typ, "use_output": "default"}),
	}
	for _, src := range streams {
		s := &proto.Stream{Source: structOf(t, src)}
		if id, ok := src["id"].(string); ok {
			s.Id = id
		}
		if ds, ok := src["data_stream"].(map[string]any); ok {
			s.DataStream = &proto.DataStream{}
			s.DataStream.Dataset, _ = ds["dataset"].(string)
			s.DataStream.Namespace, _ = ds["namespace"].(string)
		}
		u.Streams = append(u.Streams, s)
	}
	return u
}

func unpackAll(t *testing.T, configs []*reload.ConfigWithMeta) []map[string]any {
	t.Helper()
	out := make([]map[string]any, len(configs))
	for i, c := range configs {
		if err := c.Config.Unpack(&out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestAgentInputsAsTheIntegrationsPolicy(t *testing.T) {
	unit := fleetUnit(t, "defender-alert", "prod",
		map[string]any{
			"id":          "defender-alert-m365_defender.alert-abc",
			"data_stream": map[string]any{"dataset": "m365_defender.alert", "type": "logs"},
			"tenant_id":   "t", "client_id": "c", "client_secret": "s", "interval": "1m",
		},
		// A hand-written policy: no dataset, an input namespace the policy's replaces.
		map[string]any{"id": "second", "tenant_id": "t2", "namespace": "ignored"},
		map[string]any{"id": "off", "enabled": false},
	)
	inputs := unpackAll(t, mustAgentInputs(t, unit))
	if len(inputs) != 2 {
		t.Fatalf("%d inputs, want 2 (the disabled stream dropped): %v", len(inputs), inputs)
	}
	for i, want := range []struct{ id, index string }{
		{"defender-alert-m365_defender.alert-abc", "logs-m365_defender.alert-prod"},
		{"second", "logs-m365_defender.alert-prod"},
	} {
		in := inputs[i]
		if in["type"] != "defender-alert" || in["id"] != want.id || in["index"] != want.index || in["namespace"] != "prod" {
			t.Errorf("input %d: type %v, id %v, index %v, namespace %v; want defender-alert, %s, %s, prod",
				i, in["type"], in["id"], in["index"], in["namespace"], want.id, want.index)
		}
		if _, ok := in["data_stream"]; ok {
			t.Errorf("input %d keeps data_stream, which no input reads", i)
		}
		procs := fmt.Sprint(in["processors"])
		for _, wantProc := range []string{"dataset:m365_defender.alert", "namespace:prod", "target:data_stream", "target:elastic_agent", "id:agent-1"} {
			if !strings.Contains(procs, wantProc) {
				t.Errorf("input %d: processors lack %s: %s", i, wantProc, procs)
			}
		}
	}
	if inputs[0]["interval"] != "1m" || inputs[1]["tenant_id"] != "t2" {
		t.Errorf("options lost: %v", inputs)
	}
}

func mustAgentInputs(t *testing.T, unit *proto.UnitExpectedConfig) []*reload.ConfigWithMeta {
	t.Helper()
	configs, err := agentInputs(unit, agentInfo)
	if err != nil {
		t.Fatal(err)
	}
	return configs
}

func TestAgentInputsDefaultNamespaceAndUnitID(t *testing.T) {
	unit := fleetUnit(t, "defender-incident", "", map[string]any{"tenant_id": "t"})
	in := unpackAll(t, mustAgentInputs(t, unit))[0]
	if in["id"] != "defender-incident-policy-1" || in["index"] != "logs-m365_defender.incident-default" || in["namespace"] != "default" {
		t.Fatalf("id %v, index %v, namespace %v", in["id"], in["index"], in["namespace"])
	}
}

// The storage destination's input collects the event dataset: its documents go where the Event
// Hub input's go.
func TestAgentInputsStorageEventsLandInTheEventDataStream(t *testing.T) {
	unit := fleetUnit(t, "defender-event-storage", "", map[string]any{"storage_account": "contoso"})
	in := unpackAll(t, mustAgentInputs(t, unit))[0]
	if in["type"] != "defender-event-storage" || in["index"] != "logs-m365_defender.event-default" {
		t.Fatalf("type %v, index %v", in["type"], in["index"])
	}
}

func TestAgentInputsRefusals(t *testing.T) {
	for _, c := range []struct {
		name string
		unit *proto.UnitExpectedConfig
		want string
	}{
		{"unknown type", fleetUnit(t, "httpjson", "", map[string]any{"id": "x"}), `input type "httpjson" is not one of defender-alert`},
		{"no streams", fleetUnit(t, "defender-alert", ""), "has no streams"},
		{"stream of another type", fleetUnit(t, "defender-alert", "", map[string]any{"id": "x", "type": "defender-incident"}), "the streams of a defender-alert input are of its type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := agentInputs(c.unit, agentInfo)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	noID := fleetUnit(t, "defender-alert", "", map[string]any{"tenant_id": "t"})
	noID.Id = ""
	if _, err := agentInputs(noID, agentInfo); err == nil || !strings.Contains(err.Error(), "has no id") {
		t.Fatalf("a stream without any id: %v", err)
	}
}
