package beater

import (
	"slices"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"
)

// The integration's boolean switches become the tags of their name, before the input's own
// tags, as the integration's policy renders them; the default tags stay.
func TestInputDefaultsTurnSwitchesIntoTags(t *testing.T) {
	cfg, err := applyInputDefaults(conf.MustNewConfigFrom(map[string]any{
		"type": "defender-event", "id": "x", "preserve_original_event": true, "preserve_duplicate_custom_fields": true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tags  []string `config:"tags"`
		Index string   `config:"index"`
	}
	if err := cfg.Unpack(&got); err != nil {
		t.Fatal(err)
	}
	want := []string{"preserve_original_event", "preserve_duplicate_custom_fields", "forwarded", "m365_defender-event"}
	if !slices.Equal(got.Tags, want) || got.Index != "logs-m365_defender.event-default" {
		t.Fatalf("tags %v index %q, want %v and logs-m365_defender.event-default", got.Tags, got.Index, want)
	}

	cfg, _ = applyInputDefaults(conf.MustNewConfigFrom(map[string]any{
		"type": "defender-alert", "id": "y", "tags": []string{"preserve_original_event", "mine"}, "preserve_original_event": true,
	}))
	var again struct {
		Tags []string `config:"tags"`
	}
	_ = cfg.Unpack(&again)
	if !slices.Equal(again.Tags, []string{"preserve_original_event", "mine"}) {
		t.Fatalf("a tag already present was added again: %v", again.Tags)
	}
}
