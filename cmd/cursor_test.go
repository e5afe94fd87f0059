package cmd

import (
	"testing"
	"time"
)

func TestParseCursorTime(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-11-19T08:30:00Z":      time.Date(2026, 11, 19, 8, 30, 0, 0, time.UTC),
		"2026-11-19T09:30:00+01:00": time.Date(2026, 11, 19, 8, 30, 0, 0, time.UTC),
		"2026-11-19":                time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC),
		"72h":                       now.Add(-72 * time.Hour),
		"-90m":                      now.Add(-90 * time.Minute),
		"30d":                       now.Add(-30 * 24 * time.Hour),
	} {
		got, err := parseCursorTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: got %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "0h", "-3d5"} {
		if _, err := parseCursorTime(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
