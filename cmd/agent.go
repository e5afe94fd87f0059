package cmd

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/elastic/beats/v7/libbeat/common/reload"
	"github.com/elastic/beats/v7/x-pack/libbeat/management"
	"github.com/elastic/elastic-agent-client/v7/pkg/client"
	"github.com/elastic/elastic-agent-client/v7/pkg/proto"
	gproto "google.golang.org/protobuf/proto"

	"github.com/defenderbeat/defenderbeat/beater"
)

// Importing x-pack/libbeat/management registers libbeat's Elastic Agent (V2) manager: with
// `-E management.enabled=true` the inputs come from the Agent's policy instead of the file.
func init() {
	management.ConfigTransform.SetTransform(agentInputs)
}

// agentInputs turns one input unit of an Elastic Agent policy into one input configuration per
// stream, shaped as the m365_defender integration's policy would shape them: the documents go
// to the data stream logs-<dataset>-<namespace> (index), carry data_stream.* and event.dataset
// (added by libbeat's processors) and the Agent's ids; the input id is the stream's id, which
// Fleet keeps across policy revisions, so the cursor survives every reload.
//
// A stream without a data_stream.dataset gets the input type's own dataset
// (m365_defender.alert for defender-alert), so a hand-written standalone Agent policy lands
// where Fleet's would. The policy's namespace replaces the input's namespace option.
func agentInputs(unit *proto.UnitExpectedConfig, agent *client.AgentInfo) ([]*reload.ConfigWithMeta, error) {
	inputType := unit.GetType()
	dataset, ok := beater.DatasetOfInput(inputType)
	if !ok {
		return nil, fmt.Errorf("input type %q is not one of %s", inputType, strings.Join(beater.InputTypes(), ", "))
	}
	if len(unit.GetStreams()) == 0 {
		return nil, fmt.Errorf("input %q (type %s) has no streams: put the input's options in a stream, one stream per input", unit.GetId(), inputType)
	}

	unit = gproto.CloneOf(unit)
	for _, s := range unit.GetStreams() {
		if s.DataStream == nil {
			s.DataStream = &proto.DataStream{}
		}
		if s.DataStream.Dataset == "" && unit.GetDataStream().GetDataset() == "" {
			s.DataStream.Dataset = "m365_defender." + dataset
		}
	}
	inputs, err := management.CreateInputsFromStreams(unit, "logs", agent)
	if err != nil {
		return nil, err
	}

	var kept []map[string]any
	for i, in := range inputs {
		if enabled, ok := in["enabled"].(bool); ok && !enabled {
			continue
		}
		stream := unit.GetStreams()[i]
		if t, ok := in["type"]; ok && t != inputType {
			return nil, fmt.Errorf("stream %q of input %q has type %v; the streams of a %s input are of its type", stream.GetId(), unit.GetId(), t, inputType)
		}
		in["type"] = inputType
		if _, ok := in["id"]; !ok {
			id := cmp.Or(stream.GetId(), unit.GetId())
			if id == "" {
				return nil, fmt.Errorf("stream %d of a %s input has no id: give it one, it is part of the cursor key", i, inputType)
			}
			if stream.GetId() == "" && len(inputs) > 1 {
				id = fmt.Sprintf("%s-%d", id, i)
			}
			in["id"] = id
		}
		in["namespace"] = policyNamespace(unit, stream)
		// Already turned into the index and the data_stream fields; the input reads neither.
		delete(in, "data_stream")
		kept = append(kept, in)
	}
	return management.CreateReloadConfigFromInputs(kept)
}

// policyNamespace is the namespace of a stream's data stream, with the precedence libbeat's
// CreateInputsFromStreams gives it for the index: the unit's unless it is the default, else
// the stream's, else the default.
func policyNamespace(unit *proto.UnitExpectedConfig, stream *proto.Stream) string {
	if ns := unit.GetDataStream().GetNamespace(); ns != "" && ns != management.DefaultNamespaceName {
		return ns
	}
	return cmp.Or(stream.GetDataStream().GetNamespace(), management.DefaultNamespaceName)
}
