package event

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/inputkit"
)

func TestHourPrefixAndHourOfBlob(t *testing.T) {
	hour := time.Date(2024, 1, 9, 7, 0, 0, 0, time.UTC)
	if got := hourPrefix("tenantId=x/", hour); got != "tenantId=x/y=2024/m=01/d=09/h=07/" {
		t.Fatalf("hourPrefix %q", got)
	}
	for name, want := range map[string]string{
		"tenantId=x/y=2024/m=01/d=09/h=07/m=00/PT1H.json": "2024-01-09T07:00:00Z",
		"y=2024/m=12/d=31/h=23/m=00/PT1H.json":            "2024-12-31T23:00:00Z",
		"tenantId=x/y=2024/m=02/d=31/h=07/m=00/PT1H.json": "", // no 31 February
		"tenantId=x/y=2024/m=13/d=01/h=07/m=00/PT1H.json": "",
		"tenantId=x/y=2024/m=01/d=09/h=24/m=00/PT1H.json": "",
		"tenantId=x/y=2024/m=01/d=09/PT1H.json":           "",
		"other/file.json":                                 "",
	} {
		h, ok := hourOfBlob(name)
		got := ""
		if ok {
			got = h.Format(time.RFC3339)
		}
		if got != want {
			t.Errorf("hourOfBlob(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestPlannedHours(t *testing.T) {
	low := time.Date(2024, 5, 2, 22, 0, 0, 0, time.UTC)
	now := time.Date(2024, 5, 3, 1, 59, 0, 0, time.UTC)
	hours := plannedHours(low, now, 100)
	if len(hours) != 4 || !hours[0].Equal(low) || hours[3].Hour() != 1 || hours[3].Day() != 3 {
		t.Fatalf("hours %v, want 22:00 to 01:00 across midnight", hours)
	}
	if got := plannedHours(low, now, 2); len(got) != 2 {
		t.Fatalf("limit not kept: %v", got)
	}
	if got := plannedHours(now.Add(time.Hour), now, 10); len(got) != 0 {
		t.Fatalf("a low-water hour after now plans %v", got)
	}
	if !hourClosed(low, low.Add(2*time.Hour), time.Hour) || hourClosed(low, low.Add(2*time.Hour-time.Second), time.Hour) {
		t.Fatal("an hour closes exactly grace after its end")
	}
}

func TestFolderValue(t *testing.T) {
	for prefix, want := range map[string]int{"y=2024/": 2024, "t/y=2024/m=05/": 5, "t/y=2024/m=05/d=02/h=00/": 0} {
		if got, ok := folderValue(prefix); !ok || got != want {
			t.Errorf("folderValue(%q) = %d, %v", prefix, got, ok)
		}
	}
	if _, ok := folderValue("tenantId=x/"); ok {
		t.Error("a tenant folder read as a number")
	}
}

func TestTableContainer(t *testing.T) {
	for in, want := range map[string]string{
		"DeviceProcessEvents":                               "insights-logs-advancedhunting-deviceprocessevents",
		"AdvancedHunting-AlertEvidence":                     "insights-logs-advancedhunting-alertevidence",
		"insights-logs-advancedhunting-deviceprocessevents": "insights-logs-advancedhunting-deviceprocessevents",
	} {
		if got, err := tableContainer(in); err != nil || got != want {
			t.Errorf("tableContainer(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "Device Events", "../x", "insights-logs-advancedhunting-"} {
		if _, err := tableContainer(bad); err == nil {
			t.Errorf("tableContainer(%q) accepted", bad)
		}
	}
}

// readLines reads every line the reader gives, and the partial line at the end.
func readLines(t *testing.T, lr *lineReader) (lines []string, ends []int64, partial string, partialErr bool) {
	for {
		l, err := lr.next()
		if err == io.EOF {
			return lines, ends, "", false
		}
		if errors.Is(err, errPartialLine) {
			return lines, ends, string(l.data), true
		}
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(l.data))
		ends = append(ends, l.end)
	}
}

func TestLineReaderSplitsLines(t *testing.T) {
	data := "one\r\ntwo\n\r\nthree-partial"
	// One byte at a time: lines split across reads, as across appends.
	lr := newLineReader(iotest.OneByteReader(strings.NewReader(data)), 100, 1<<10)
	lines, ends, partial, isPartial := readLines(t, lr)
	if strings.Join(lines, "|") != "one|two|" || !isPartial || partial != "three-partial" {
		t.Fatalf("lines %q partial %q (%v)", lines, partial, isPartial)
	}
	if ends[0] != 105 || ends[1] != 109 || ends[2] != 111 {
		t.Fatalf("ends %v: offsets past each line break, from the start offset 100", ends)
	}
}

func TestLineReaderBoundsLongLines(t *testing.T) {
	long := strings.Repeat("x", 3*lineReaderBuffer)
	data := "a\n" + long + "\r\nb\n"
	lr := newLineReader(strings.NewReader(data), 0, 1000)
	var got []line
	for {
		l, err := lr.next()
		if err != nil {
			break
		}
		l.data = bytes.Clone(l.data)
		got = append(got, l)
	}
	if len(got) != 3 || string(got[0].data) != "a" || string(got[2].data) != "b" {
		t.Fatalf("lines %d", len(got))
	}
	if len(got[1].data) != 1000 || got[1].length <= 1000 || got[1].end != int64(2+len(long)+2) {
		t.Fatalf("long line kept %d bytes of %d, ends at %d", len(got[1].data), got[1].length, got[1].end)
	}
	if cap(lr.long) > 1002+lineReaderBuffer {
		t.Fatalf("the reader grew to %d bytes for a line it keeps 1000 of", cap(lr.long))
	}
}

// FuzzLineReader: however the bytes come, the lines read are the data's lines (without their
// breaks), each ending where the next begins, and a last line without a break is partial.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\r\nb\nc"), uint8(1), uint16(8))
	f.Add([]byte("\n\n\r\n"), uint8(3), uint16(1))
	f.Add([]byte(strings.Repeat("z", 300)+"\n"), uint8(7), uint16(16))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8, maxLine uint16) {
		max := int(maxLine%512) + 1
		var r io.Reader = bytes.NewReader(data)
		if chunk%2 == 1 {
			r = iotest.HalfReader(r)
		}
		lr := newLineReader(r, 0, max)
		var want []string
		rest := string(data)
		for {
			i := strings.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			want = append(want, strings.TrimSuffix(rest[:i], "\r"))
			rest = rest[i+1:]
		}
		prevEnd := int64(0)
		for i := 0; ; i++ {
			l, err := lr.next()
			if err == io.EOF {
				if rest != "" || i != len(want) {
					t.Fatalf("EOF after %d lines, want %d and partial %q", i, len(want), rest)
				}
				return
			}
			if errors.Is(err, errPartialLine) {
				if i != len(want) || rest == "" || l.length != int64(len(rest)) || !strings.HasPrefix(rest, string(l.data)) {
					t.Fatalf("partial %q (%d) after %d lines; want %q after %d", l.data, l.length, i, rest, len(want))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if i >= len(want) {
				t.Fatalf("line %d %q beyond the data's %d lines", i, l.data, len(want))
			}
			if len(l.data) > max || !strings.HasPrefix(want[i], string(l.data)) || (len(want[i]) <= max && string(l.data) != want[i]) {
				t.Fatalf("line %d: %q, want %q (max %d)", i, l.data, want[i], max)
			}
			if l.length != int64(len(want[i])) && len(want[i]) <= max {
				t.Fatalf("line %d: length %d, want %d", i, l.length, len(want[i]))
			}
			if l.end <= prevEnd || l.end > int64(len(data)) || data[l.end-1] != '\n' {
				t.Fatalf("line %d ends at %d after %d", i, l.end, prevEnd)
			}
			prevEnd = l.end
		}
	})
}

func TestStorageCursorToolsShowAndMoveThePosition(t *testing.T) {
	c := storageCursor{Tables: []tableCursor{
		{Container: "insights-logs-advancedhunting-deviceevents", Hour: "2024-05-02T10:00:00Z", Blobs: []blobCursor{{Name: "a", Offset: 10}, {Name: "b", Offset: 20}}},
		{Container: "insights-logs-advancedhunting-emailevents", Hour: "2024-05-02T08:00:00Z"},
	}}
	p := describeStorageCursor(c)
	if !p.At.Equal(time.Date(2024, 5, 2, 8, 0, 0, 0, time.UTC)) || !strings.Contains(p.Summary, "2 table container(s), 2 blob(s)") {
		t.Fatalf("position %+v: want the oldest unfinished hour and the counts", p)
	}
	now := time.Date(2024, 5, 3, 0, 0, 0, 0, time.UTC)
	if moved, err := moveStorageCursor(c, inputkit.Move{Now: now}); err != nil || moved != nil {
		t.Fatalf("a reset forgets the position: %+v, %v", moved, err)
	}
	to := time.Date(2024, 5, 1, 12, 30, 0, 0, time.FixedZone("x", 3600))
	moved, err := moveStorageCursor(c, inputkit.Move{To: to, Now: now})
	if err != nil || moved == nil || moved.Since != "2024-05-01T11:30:00Z" || len(moved.Tables) != 0 {
		t.Fatalf("--to reads every container again from that time: %+v, %v", moved, err)
	}
	// The input then reads every container from the hour holding that time.
	if got := newStorageState(*moved).since; got != moved.Since {
		t.Fatalf("state since %q", got)
	}
	if _, err := moveStorageCursor(c, inputkit.Move{To: now.Add(time.Hour), Now: now}); err == nil {
		t.Fatal("a time in the future is refused")
	}
	if _, err := moveStorageCursor(c, inputkit.Move{FullExport: true, Now: now}); err == nil {
		t.Fatal("--full-export is refused")
	}
}
