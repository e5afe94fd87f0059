package config

import (
	"strings"
	"testing"

	conf "github.com/elastic/elastic-agent-libs/config"
)

func TestRegistryProblemsNameTheirOption(t *testing.T) {
	raw := conf.MustNewConfigFrom(map[string]any{"registry": map[string]any{"cleanup_interval": "-1s", "path": ""}})
	_, err := Unpack(raw)
	if err == nil {
		t.Fatal("a negative cleanup_interval and an empty path were accepted")
	}
	for _, want := range []string{"registry.cleanup_interval", "registry.path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	c, err := Unpack(conf.MustNewConfigFrom(map[string]any{}))
	if err != nil || c.Registry.CleanInterval != Default().Registry.CleanInterval || c.Registry.Path != "registry" {
		t.Fatalf("defaults: %+v, %v", c.Registry, err)
	}
}

func TestUnknownBeatOptionIsNamed(t *testing.T) {
	_, err := Unpack(conf.MustNewConfigFrom(map[string]any{"input": []any{map[string]any{"type": "defender-alert"}}}))
	if err == nil || !strings.Contains(err.Error(), "input: unknown option (did you mean inputs?)") {
		t.Fatalf("err = %v", err)
	}
}
