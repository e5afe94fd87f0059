package yamlconv

import (
	"encoding/json"
	"testing"

	"gopkg.in/yaml.v2"
)

func TestJSONShapedEncodesAsJSON(t *testing.T) {
	var doc any
	if err := yaml.Unmarshal([]byte("a:\n  1: x\n  b: [ {c: true}, 2 ]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := json.Marshal(doc); err == nil {
		t.Fatal("yaml.v2's maps should not encode as JSON; the test no longer tests anything")
	}
	out, err := json.Marshal(JSONShaped(doc))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"a":{"1":"x","b":[{"c":true},2]}}` {
		t.Fatalf("got %s", out)
	}
}
