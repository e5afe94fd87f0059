package incident

import (
	"testing"

	"github.com/elastic/beats/v7/libbeat/beat"

	"github.com/defenderbeat/defenderbeat/internal/golden"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// FuzzTransform feeds arbitrary records to Transform: it must never panic, and whatever it emits
// must be publishable (JSON-encodable, a timestamp, an _id, no @timestamp among the fields).
func FuzzTransform(f *testing.F) {
	golden.FuzzSeeds(f)
	f.Add([]byte(`{"lastUpdateDateTime":"2024-01-01T00:00:00Z","severity":5,"assignedTo":["x"],"tags":"t","alerts":{"mitreTechniques":"T1","evidence":[{"process":"x","processId":1,"processCommandLine":7,"imageFile":"str","fileDetails":{"fileName":{},"fileSize":"1e9"},"userAccount":[1],"loggedOnUsers":[1,{"accountName":[]}],"vmMetadata":{"cloudProvider":5},"p1Sender":"s","@odata.type":"#microsoft.graph.security.processEvidence","ipInterfaces":"1.2.3.4"}]}}`))
	f.Add([]byte(`{"lastUpdateDateTime":"2024-01-01T00:00:00Z","comments":{},"alerts":[{"evidence":[null,{"@odata.type":[]}]},{"comments":[1]}]}`))
	opts := transform.Options{Tags: []string{transform.TagPreserveOriginal, transform.TagPreserveDuplicateCustom}}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = Transform(raw, opts, func(ev beat.Event) { golden.CheckPublishable(t, ev) })
	})
}
