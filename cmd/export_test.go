package cmd

import (
	"strings"
	"testing"
)

// Kibana may end an export with a newline, on which libbeat's saver fails; and its bookkeeping
// would make every export differ from the file it came from.
func TestExportedObjectsLoseBookkeepingAndTrailingNewline(t *testing.T) {
	in := `{"id":"d","type":"dashboard","attributes":{"title":"T","version":1},"updated_at":"2025-01-01T00:00:00Z","created_at":"x","version":"WzEsMV0=","updated_by":"u"}` + "\n" +
		`{"id":"v","type":"visualization","attributes":{"title":"V"}}` + "\n"
	out, err := withoutBookkeeping([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(out), "\n")
	if len(lines) != 2 || strings.HasSuffix(string(out), "\n") {
		t.Fatalf("lines %q", lines)
	}
	for _, gone := range []string{"updated_at", "created_at", "WzEsMV0=", "updated_by"} {
		if strings.Contains(string(out), gone) {
			t.Errorf("%s kept: %s", gone, out)
		}
	}
	if !strings.Contains(lines[0], `"version":1`) {
		t.Errorf("the dashboard's own attributes.version was removed: %s", lines[0])
	}
	if _, err := withoutBookkeeping([]byte("\n")); err == nil {
		t.Error("an empty export was accepted")
	}
}
