package event

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/beats/v7/libbeat/management/status"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/cursortest"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// onlyRecords drops the error documents.
func onlyRecords(docs []beat.Event) []beat.Event {
	var out []beat.Event
	for _, d := range docs {
		if kind, _ := d.Fields.GetValue("event.kind"); kind != "pipeline_error" {
			out = append(out, d)
		}
	}
	return out
}

// hour10 is the hour most tests write to; their clock stands within it or after.
var hour10 = time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC)

// TestStorageReadsAppendsAsTheyCome: lines appended while the input reads become documents,
// a line written in two appends becomes one document once its second half is there, and the
// stored cursor ends at the blob's end.
func TestStorageReadsAppendsAsTheyCome(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	first, second := markers("a", 3), markers("b", 3)
	f.appendTo(table, hour10, storageLines(table, first...))
	split := storageLines(table, second[0])
	clock := newTestClock(hour10.Add(30 * time.Minute))

	h := cursortest.New(t)
	step := 0
	var halfWrittenAt time.Time
	h.Run(storagePlugin(testStorageTuning(clock)), f.settings("appends", []string{table}, nil), 30*time.Second, func() bool {
		switch step {
		case 0:
			if covered(h.Published(), first) {
				f.appendTo(table, hour10, split[:40]) // the record's first half, no line break
				halfWrittenAt, step = time.Now(), 1
			}
		case 1:
			// Several polls see the half line; none may publish it.
			if time.Since(halfWrittenAt) > 500*time.Millisecond {
				if n := h.Count(); n != len(first) {
					t.Fatalf("%d documents after a half-written line, want %d", n, len(first))
				}
				f.appendTo(table, hour10, split[40:]+storageLines(table, second[1:]...))
				step = 2
			}
		case 2:
			return covered(h.Published(), second)
		}
		return false
	})
	exactlyOnce(t, h.Published(), append(first, second...))
	for _, d := range h.Published() {
		if kind, _ := d.Fields.GetValue("event.kind"); kind == "pipeline_error" {
			t.Fatalf("error document: %v", d.Fields)
		}
		if ds, _ := d.Fields.GetValue("data_stream.dataset"); ds != "m365_defender.event" {
			t.Fatalf("data_stream.dataset %v", ds)
		}
	}
	c := f.storedCursor(h, "appends")
	name, _ := tableContainer(table)
	tc, ok := c.table(name)
	if !ok || len(tc.Blobs) != 1 || tc.Blobs[0].Offset != f.size(table, hour10) {
		t.Fatalf("stored cursor %+v, want the blob at its size %d", c, f.size(table, hour10))
	}
	if got := h.Metric("records_published_total"); got != 6 {
		t.Fatalf("records_published_total %d, want 6", got)
	}
}

// TestStorageSameDocumentsAsEventHub: a record read from a blob line is the document the Event
// Hub input makes of it in a message, _id included.
func TestStorageSameDocumentsAsEventHub(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	line := strings.TrimSuffix(storageLines(table, "same"), "\r\n")
	f.appendTo(table, hour10, line+"\r\n")

	h := cursortest.New(t)
	h.Run(storagePlugin(testStorageTuning(newTestClock(hour10.Add(10*time.Minute)))), f.settings("same", []string{table}, nil), 30*time.Second,
		func() bool { return h.Count() >= 1 })
	got := h.Published()[0]
	if h.Normalized() {
		t.Error("libbeat would copy every document to normalize it; the input's documents need no normalization")
	}
	checkNeedsNoNormalization(t, got)

	var fromHub []beat.Event
	_, err := Decoder{}.Decode([]byte(`{"records":[`+line+`]}`), transform.Options{Tags: []string{transform.TagPreserveOriginal}}, func(ev beat.Event) { fromHub = append(fromHub, ev) })
	if err != nil || len(fromHub) != 1 {
		t.Fatalf("decoding the message: %v, %d documents", err, len(fromHub))
	}
	if got.Meta["_id"] != fromHub[0].Meta["_id"] || got.Meta["_id"] == nil {
		t.Fatalf("_id %v from the blob, %v from the hub", got.Meta["_id"], fromHub[0].Meta["_id"])
	}
	for _, field := range []string{"event.original", "m365_defender.event.device.name", "event.category", "@timestamp"} {
		a, _ := got.Fields.GetValue(field)
		b, _ := fromHub[0].Fields.GetValue(field)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("%s: %v from the blob, %v from the hub", field, a, b)
		}
	}
}

// TestStorageSeveralTablesAndHours: every table's hours from the oldest to now are read, past
// hours are dropped from the cursor once finished, and only the hours still open stay in it.
func TestStorageSeveralTablesAndHours(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	tables := []string{testTable(t, "A"), testTable(t, "B")}
	var want []string
	for _, table := range tables {
		for i := range 4 {
			hour := hour10.Add(time.Duration(i) * time.Hour)
			ms := markers(fmt.Sprintf("%s-h%d", table, i), 5)
			want = append(want, ms...)
			f.appendTo(table, hour, storageLines(table, ms...))
		}
	}
	// 13:30: hours 10 and 11 are closed (an hour's grace after their end), 12 and 13 are not.
	clock := newTestClock(hour10.Add(3*time.Hour + 30*time.Minute))
	h := cursortest.New(t)
	h.Run(storagePlugin(testStorageTuning(clock)), f.settings("hours", tables, map[string]any{"max_concurrency": 2}), 30*time.Second, func() bool {
		if !covered(h.Published(), want) {
			return false
		}
		// Finished hours leave the cursor with the next document stored: one more line.
		c := storageCursor{}
		if h.StoredCursor(f.cursorKey("hours"), &c) && len(c.Tables) == 2 && c.Tables[0].Hour == hour10.Add(2*time.Hour).Format(time.RFC3339) && c.Tables[1].Hour == c.Tables[0].Hour {
			return true
		}
		f.appendTo(tables[0], hour10.Add(3*time.Hour), storageLines(tables[0], fmt.Sprintf("late-%d", time.Now().UnixNano())))
		return false
	})
	counts := markerCounts(h.Published())
	for _, m := range want {
		if counts[m] != 1 {
			t.Errorf("record %s: %d documents", m, counts[m])
		}
	}
	c := f.storedCursor(h, "hours")
	for _, tc := range c.Tables {
		for _, b := range tc.Blobs {
			if hour, _ := hourOfBlob(b.Name); hour.Before(hour10.Add(2 * time.Hour)) {
				t.Errorf("finished blob %s still in the cursor", b.Name)
			}
		}
		if len(tc.Blobs) != 2 {
			t.Errorf("%s: cursor keeps %d blobs, want the 2 of the open hours", tc.Container, len(tc.Blobs))
		}
	}
}

// TestStorageRestartMidBlob: a restart resumes after the last acknowledged line; lines
// published but not acknowledged are read again with the same _id, and nothing is lost.
func TestStorageRestartMidBlob(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	want := markers("r", 10)
	f.appendTo(table, hour10, storageLines(table, want...))
	tune := testStorageTuning(newTestClock(hour10.Add(10 * time.Minute)))
	tune.cursorEvery = 1

	h := cursortest.New(t)
	h.AutoAck = false
	h.Run(storagePlugin(tune), f.settings("restart", []string{table}, nil), 30*time.Second, func() bool {
		if h.Count() < len(want) {
			return false
		}
		h.Ack(4) // the output delivered 4 documents when the beat stopped
		return true
	})
	firstRun := h.Published()

	c := f.storedCursor(h, "restart")
	lineLen := int64(len(storageLines(table, want[0])))
	if got := c.Tables[0].Blobs[0].Offset; got != 4*lineLen {
		t.Fatalf("stored offset %d after 4 acknowledged lines of %d bytes, want %d", got, lineLen, 4*lineLen)
	}

	h2 := h.Restart()
	h2.Run(storagePlugin(tune), f.settings("restart", []string{table}, nil), 30*time.Second, hasMarkers(h2, want[4:]))
	second := h2.Published()
	if markerCounts(second)[want[3]] != 0 {
		t.Fatalf("an acknowledged line was read again: %v", markerCounts(second))
	}
	all := append(firstRun[:4:4], second...)
	exactlyOnce(t, all, want)
	duplicatesShareIDs(t, append(firstRun, second...))
}

// TestStorageHourRollover: when the clock passes into a new hour the input reads the new hour's
// blob, still follows the previous one while it may grow, and drops it from the cursor once
// its hour is closed and read.
func TestStorageHourRollover(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	hour11 := hour10.Add(time.Hour)
	early, late, next := markers("early", 3), markers("late", 2), markers("next", 3)
	f.appendTo(table, hour10, storageLines(table, early...))
	clock := newTestClock(hour10.Add(59 * time.Minute))

	h := cursortest.New(t)
	step := 0
	h.Run(storagePlugin(testStorageTuning(clock)), f.settings("rollover", []string{table}, nil), 30*time.Second, func() bool {
		switch step {
		case 0:
			if covered(h.Published(), early) {
				clock.set(hour11.Add(5 * time.Minute))
				f.appendTo(table, hour11, storageLines(table, next...))
				f.appendTo(table, hour10, storageLines(table, late...)) // a late record of hour 10
				step = 1
			}
		case 1:
			if covered(h.Published(), append(late, next...)) {
				clock.set(hour11.Add(70 * time.Minute)) // hour 10 is closed
				step = 2
			}
		case 2:
			c := storageCursor{}
			if h.StoredCursor(f.cursorKey("rollover"), &c) && len(c.Tables) == 1 && c.Tables[0].Hour == hour11.Format(time.RFC3339) {
				return true
			}
			// The cursor that forgets hour 10 goes with the next document.
			f.appendTo(table, hour11, storageLines(table, fmt.Sprintf("tick-%d", time.Now().UnixNano())))
		}
		return false
	})
	counts := markerCounts(h.Published())
	for _, m := range append(append(early, late...), next...) {
		if counts[m] != 1 {
			t.Errorf("record %s: %d documents", m, counts[m])
		}
	}
	c := f.storedCursor(h, "rollover")
	if len(c.Tables[0].Blobs) != 1 || !strings.Contains(c.Tables[0].Blobs[0].Name, "/h=11/") {
		t.Fatalf("cursor after the rollover %+v, want only hour 11's blob", c)
	}
}

// TestStorageContainerCreatedLater: without tables, a table container that appears while the
// input runs is found on a later poll and read from its start.
func TestStorageContainerCreatedLater(t *testing.T) {
	az := azuritetest.Start(t) // its own: the test sees every container of the account
	f := newStorageFixture(t, az)
	first, later := markers("first", 3), markers("later", 3)
	f.appendTo("DeviceEvents", hour10, storageLines("DeviceEvents", first...))
	f.appendBlob("unrelated", blobPath(hour10), []byte(storageLines("DeviceEvents", "unrelated")))

	h := cursortest.New(t)
	step := 0
	h.Run(storagePlugin(testStorageTuning(newTestClock(hour10.Add(20*time.Minute)))), f.settings("later", nil, nil), 60*time.Second, func() bool {
		switch step {
		case 0:
			if covered(h.Published(), first) {
				f.appendTo("EmailEvents", hour10, storageLines("EmailEvents", later...))
				step = 1
			}
		case 1:
			return covered(h.Published(), later)
		}
		return false
	})
	exactlyOnce(t, h.Published(), append(first, later...))
	if got := h.Metric("containers"); got != 2 {
		t.Fatalf("containers %d, want 2", got)
	}
}

// TestStorageRewrittenBlob: a blob found shorter than its offset was deleted and written anew:
// it is reported once and read again from its start; records read before keep their _id.
func TestStorageRewrittenBlob(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	old := markers("old", 6)
	f.appendTo(table, hour10, storageLines(table, old...))
	renewed := append([]string{old[0]}, markers("new", 2)...)

	h := cursortest.New(t)
	step := 0
	h.Run(storagePlugin(testStorageTuning(newTestClock(hour10.Add(20*time.Minute)))), f.settings("rewritten", []string{table}, nil), 30*time.Second, func() bool {
		switch step {
		case 0:
			if covered(h.Published(), old) {
				f.deleteBlob(table, hour10)
				f.appendTo(table, hour10, storageLines(table, renewed...))
				step = 1
			}
		case 1:
			return covered(h.Published(), renewed[1:]) && h.LastStatus().Status == status.Running
		}
		return false
	})
	counts := markerCounts(h.Published())
	if counts[old[0]] != 2 || counts["new-0"] != 1 || counts["new-1"] != 1 || counts[old[1]] != 1 {
		t.Fatalf("documents per record %v: the rewritten blob is read again once", counts)
	}
	duplicatesShareIDs(t, h.Published())
	if got := h.Metric("blobs_rewritten_total"); got != 1 {
		t.Fatalf("blobs_rewritten_total %d, want 1", got)
	}
	degraded := 0
	for _, s := range h.Statuses() {
		if s.Status == status.Degraded {
			degraded++
			if !strings.Contains(s.Msg, "deleted or rewritten") {
				t.Errorf("status message %q", s.Msg)
			}
		}
	}
	if degraded != 1 {
		t.Fatalf("%d DEGRADED reports, want 1: %+v", degraded, h.Statuses())
	}
}

// TestStorageStartLatest: start_position latest skips what the blobs hold at the start and
// reads what is appended after, up to a line cut at the start.
func TestStorageStartLatest(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	before, after := markers("before", 3), markers("after", 3)
	f.appendTo(table, hour10, storageLines(table, before...))
	h := cursortest.New(t)
	step := 0
	var started time.Time
	h.Run(storagePlugin(testStorageTuning(newTestClock(hour10.Add(20*time.Minute)))), f.settings("latest", []string{table}, map[string]any{"start_position": "latest"}), 30*time.Second, func() bool {
		switch step {
		case 0:
			started, step = time.Now(), 1
		case 1:
			if time.Since(started) > 500*time.Millisecond {
				f.appendTo(table, hour10, storageLines(table, after...))
				step = 2
			}
		case 2:
			return covered(h.Published(), after)
		}
		return false
	})
	exactlyOnce(t, h.Published(), after)
}

// TestStorageStartTime: start_position as a time starts at the hour holding it.
func TestStorageStartTime(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	old, recent := markers("old", 2), markers("recent", 2)
	f.appendTo(table, hour10, storageLines(table, old...))
	f.appendTo(table, hour10.Add(2*time.Hour), storageLines(table, recent...))
	h := cursortest.New(t)
	h.Run(storagePlugin(testStorageTuning(newTestClock(hour10.Add(150*time.Minute)))),
		f.settings("since", []string{table}, map[string]any{"start_position": hour10.Add(90 * time.Minute).Format(time.RFC3339)}), 30*time.Second, hasMarkers(h, recent))
	time.Sleep(300 * time.Millisecond) // a few more polls would have read hour 10 by now
	exactlyOnce(t, h.Published(), recent)
}

// TestStorageBadLinesBecomeErrorDocuments: a line that is no record, and one longer than a
// record can be, become error documents; the lines around them flow.
func TestStorageBadLinesBecomeErrorDocuments(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	good := markers("good", 2)
	long := `{"category":"AdvancedHunting-DeviceEvents","properties":{"x":"` + strings.Repeat("x", maxLineBytes) + `"}}`
	f.appendTo(table, hour10, storageLines(table, good[0])+"{not json\r\n\r\n"+long+"\r\n"+storageLines(table, good[1]))
	h := cursortest.New(t)
	h.Run(storagePlugin(testStorageTuning(newTestClock(hour10.Add(20*time.Minute)))), f.settings("bad", []string{table}, nil), 60*time.Second,
		func() bool { return h.Count() >= 4 })
	var errorsSeen []string
	for _, d := range h.Published() {
		if kind, _ := d.Fields.GetValue("event.kind"); kind == "pipeline_error" {
			msg, _ := d.Fields.GetValue("error.message")
			orig, _ := d.Fields.GetValue("event.original")
			if len(orig.(string)) > maxLineBytes {
				t.Fatalf("error document keeps %d bytes", len(orig.(string)))
			}
			errorsSeen = append(errorsSeen, fmt.Sprint(msg))
		}
	}
	if len(errorsSeen) != 2 || !strings.Contains(errorsSeen[1], "longer than") {
		t.Fatalf("error documents %v, want the bad line's and the long line's", errorsSeen)
	}
	exactlyOnce(t, onlyRecords(h.Published()), good)
	if h.Metric("error_documents_total") != 2 || h.Metric("lines_too_long_total") != 1 {
		t.Fatalf("metrics %v", h.Metrics())
	}
}

// TestStorageWrongKeyIsReported: a key the account refuses is reported (FAILED: only a fix of
// the configuration helps) with what to fix, the input keeps trying, and `test credentials`
// (the probe) says the same.
func TestStorageWrongKeyIsReported(t *testing.T) {
	az := azuritetest.Shared(t)
	f := newStorageFixture(t, az)
	table := testTable(t, "T")
	f.appendTo(table, hour10, storageLines(table, "x"))
	wrong := strings.Replace(az.ConnectionString(), azuritetest.AccountKey, "d3Jvbmcga2V5", 1)
	h := cursortest.New(t)
	h.Run(storagePlugin(testStorageTuning(newTestClock(hour10))), f.settings("wrongkey", nil, map[string]any{"storage_account_connection_string": wrong}), 30*time.Second,
		func() bool {
			n := 0
			for _, s := range h.Statuses() {
				if s.Status == status.Failed && strings.Contains(s.Msg, "refused the key") {
					n++
				}
			}
			return n >= 2 // reported, retried, reported again
		})
	if h.Count() != 0 {
		t.Fatalf("%d documents with a wrong key", h.Count())
	}
	if strings.Contains(h.LastStatus().Msg, "d3Jvbmcga2V5") {
		t.Fatal("the key appears in the status")
	}

	cfg, err := configureStorage(confFrom(f.settings("probe", []string{table}, map[string]any{"storage_account_connection_string": wrong})))
	if err != nil {
		t.Fatal(err)
	}
	if err := probeStorage(t.Context(), cfg, testStorageTuning(nil), testLogger(t)); err == nil || !strings.Contains(err.Error(), "refused the key") {
		t.Fatalf("probe with a wrong key: %v", err)
	}
	good, err := configureStorage(confFrom(f.settings("probe", nil, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := probeStorage(t.Context(), good, testStorageTuning(nil), testLogger(t)); err != nil {
		t.Fatalf("probe with the right key: %v", err)
	}
}

// TestStorageClosedHourEndsItsLastLine: once an hour is closed, a last line without a line
// break is all that line will ever be: it is read (here, an error document: the line is cut),
// the hour is finished and leaves the cursor.
func TestStorageClosedHourEndsItsLastLine(t *testing.T) {
	f := newStorageFixture(t, azuritetest.Shared(t))
	table := testTable(t, "T")
	f.appendTo(table, hour10, storageLines(table, "whole")+`{"category":"AdvancedHunting-DeviceEvents","properties":{"Marker":"cut"`)
	clock := newTestClock(hour10.Add(30 * time.Minute))
	h := cursortest.New(t)
	step := 0
	h.Run(storagePlugin(testStorageTuning(clock)), f.settings("closed", []string{table}, nil), 30*time.Second, func() bool {
		switch step {
		case 0:
			if h.Count() == 1 {
				clock.set(hour10.Add(2*time.Hour + time.Minute))
				step = 1
			}
		case 1:
			if h.Count() < 2 {
				return false
			}
			c := storageCursor{}
			return h.StoredCursor(f.cursorKey("closed"), &c) && len(c.Tables) == 1 && c.Tables[0].Hour == hour10.Add(time.Hour).Format(time.RFC3339)
		}
		return false
	})
	docs := h.Published()
	if len(docs) != 2 {
		t.Fatalf("%d documents, want the whole line's and the cut line's", len(docs))
	}
	if kind, _ := docs[1].Fields.GetValue("event.kind"); kind != "pipeline_error" {
		t.Fatalf("the cut line gave %v", docs[1].Fields)
	}
	c := f.storedCursor(h, "closed")
	if len(c.Tables[0].Blobs) != 0 {
		t.Fatalf("the finished hour's blob is still in the cursor: %+v", c)
	}
}
