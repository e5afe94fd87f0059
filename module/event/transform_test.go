package event

import (
	"flag"
	"testing"

	"github.com/defenderbeat/defenderbeat/internal/golden"
)

var update = flag.Bool("update", false, "rewrite our own golden files in testdata/cases/ (never testdata/reference/)")

// referenceDeviations lists, per reference pair, where the pair follows an older rule than the
// integration's current pipelines, whose rules the mapping implements. Entries are 1-based.
var referenceDeviations = map[string][]golden.Deviation{
	"test-alert.log": {
		{Path: "process.entity_id", Entries: []int{5, 6}, Reason: "the current default pipeline fingerprints pid|start|device id; the pair predates it and shows the pid"},
		{Path: "process.parent.entity_id", Entries: []int{5, 6}, Reason: "as process.entity_id"},
		{Path: "process.name", Entries: []int{6}, Reason: "the current pipeline derives process.name from the command line only when no name is set; the pair adds it to the file name"},
	},
	"test-app-and-identity.log": {
		{Path: "application.name", Entries: []int{1, 4, 5, 6}, Reason: "pair predates integration 3.7.0, which copies the application to application.name"},
	},
	"test-email.log": {
		{Path: "email.message_id", Reason: "pair predates integration 2.21.1: email.message_id is now InternetMessageId (RFC 5322 Message-ID), not NetworkMessageId"},
		{Path: "email.local_id", Reason: "pair predates integration 2.21.1: email.local_id is now NetworkMessageId"},
		{Path: "@timestamp", Entries: []int{4}, Reason: "a row without Timestamp gets the record's time; without any the document could not enter a data stream"},
	},
	// The device pair comes from an older pipeline than the one the current pairs of the other
	// families (and test-alert's DeviceProcessEvents rows) reflect.
	"test-device.log": {
		{Path: "cloud.instance.id", Reason: "pair predates integration 3.4.0, which copies the device id there for response actions"},
		{Path: "device.id", Reason: "pair predates integration 3.7.0, which sets device.id"},
		{Path: "process.entity_id", Reason: "pair predates integration 3.6.0 (entity ids)"},
		{Path: "process.parent.entity_id", Reason: "pair predates integration 3.6.0 (entity ids)"},
		{Path: "process.pe.sections.physical_size", Reason: "the current pipeline no longer puts file sizes there (test-alert's DeviceProcessEvents rows have none)"},
		{Path: "process.parent.pe.sections.physical_size", Reason: "as process.pe.sections.physical_size"},
		{Path: "process.args", Reason: "the current pipeline splits command lines by the Windows rules (quotes group words); the pair splits on spaces"},
		{Path: "process.args_count", Reason: "as process.args"},
		{Path: "process.parent.args", Reason: "as process.args"},
		{Path: "process", Entries: []int{1}, Reason: "DpapiAccessed is a DeviceEvents action whose initiating process is the actor (process.*), not a parent (integration issue 9993)"},
		{Path: "related.hash", Entries: []int{1, 4, 5, 6}, Reason: "follows the process.* changes of entries 1 and 4-6"},
		{Path: "process.hash", Entries: []int{4, 5, 6}, Reason: "the current pipeline keeps the loading process's hashes out of process.* for image loads"},
		{Path: "process.pe", Entries: []int{4, 5, 6}, Reason: "as process.hash for image loads"},
		{Path: "host.os.type", Reason: "the current pipeline derives windows from SIDs and Windows-only tables"},
		{Path: "host.ip", Entries: []int{7}, Reason: "pair predates integration 2.12.0: host.ip is a list"},
		{Path: "host.mac", Entries: []int{10}, Reason: "pair predates integration 2.12.0/2.14.4: host.mac is a list in ECS form (00-0D-…)"},
		{Path: "event.type", Entries: []int{10, 15, 16, 18, 19, 20, 21, 22, 25, 26, 27, 28, 30}, Reason: "the current pipeline types every network event (info, protocol for DNS, start for ConnectionSuccess and InboundConnectionAccepted)"},
		{Path: "event.action", Entries: []int{11, 29}, Reason: "the current pipeline names a ProcessCreated action start"},
		{Path: "destination.address", Reason: "the current pipeline copies destination.ip to destination.address for network events"},
		{Path: "dns", Entries: []int{15}, Reason: "pair predates integration 2.14.x, which moves DNS details out of AdditionalFields"},
		{Path: "m365_defender.event.dns", Entries: []int{15}, Reason: "as dns"},
		{Path: "m365_defender.event.additional_fields", Entries: []int{15}, Reason: "as dns"},
		{Path: "network.protocol", Entries: []int{15}, Reason: "as dns: DNS inspections have network.protocol dns"},
		{Path: "registry.hive", Entries: []int{12, 13}, Reason: "the current pipeline sets the abbreviated hive and keeps it in registry.path"},
		{Path: "registry.path", Entries: []int{12, 13}, Reason: "as registry.hive"},
		{Path: "registry.data.type", Entries: []int{12, 13}, Reason: "the current pipeline maps RegistryValueType"},
		{Path: "m365_defender.event.registry.key", Entries: []int{12, 13}, Reason: "the current pipeline strips the hive from registry.key only, and keeps the column as Defender wrote it"},
		{Path: "user", Entries: []int{14, 19, 21, 23}, Reason: "the current pipeline takes the user of network events from the initiating process account"},
	},
}

var suite = golden.Suite{Transform: Transform, Deviations: referenceDeviations}

func TestReferencePairs(t *testing.T) { suite.ReferencePairs(t) }

func TestFieldsDeclared(t *testing.T) { suite.FieldsDeclared(t) }

func TestGolden(t *testing.T) { suite.Cases(t, *update) }
