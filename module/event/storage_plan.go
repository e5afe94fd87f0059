package event

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defender writes each table's records to hourly append blobs:
//
//	<container>/tenantId=<tenant>/y=2024/m=05/d=02/h=10/m=00/PT1H.json
//
// The hour folders are what the input lists: only those from the oldest hour it has not
// finished up to the current one, never the whole container.

// hourPrefix is the folder of one hour below a root (the tenantId=… folder, or "").
func hourPrefix(root string, hour time.Time) string {
	h := hour.UTC()
	return fmt.Sprintf("%sy=%04d/m=%02d/d=%02d/h=%02d/", root, h.Year(), int(h.Month()), h.Day(), h.Hour())
}

// hourOfBlob reads the hour from a blob's name: the y=/m=/d=/h= folders, wherever they are.
func hourOfBlob(name string) (time.Time, bool) {
	parts := strings.Split(name, "/")
	for i := 0; i+3 < len(parts); i++ {
		if !strings.HasPrefix(parts[i], "y=") {
			continue
		}
		y, ok1 := folderNumber(parts[i], "y=")
		mo, ok2 := folderNumber(parts[i+1], "m=")
		d, ok3 := folderNumber(parts[i+2], "d=")
		h, ok4 := folderNumber(parts[i+3], "h=")
		if !ok1 || !ok2 || !ok3 || !ok4 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 {
			return time.Time{}, false
		}
		t := time.Date(y, time.Month(mo), d, h, 0, 0, 0, time.UTC)
		if t.Day() != d {
			return time.Time{}, false // 31 February
		}
		return t, true
	}
	return time.Time{}, false
}

func folderNumber(part, key string) (int, bool) {
	s, ok := strings.CutPrefix(part, key)
	if !ok || s == "" || len(s) > 4 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// plannedHours lists the hours to look at in one poll: from the low-water hour (the oldest not
// yet finished) to the hour of now, at most limit of them, oldest first.
func plannedHours(low, now time.Time, limit int) []time.Time {
	low, now = low.UTC().Truncate(time.Hour), now.UTC().Truncate(time.Hour)
	var out []time.Time
	for h := low; !h.After(now) && len(out) < limit; h = h.Add(time.Hour) {
		out = append(out, h)
	}
	return out
}

// hourClosed reports whether Defender no longer appends to an hour's blobs: the hour ended
// more than grace ago (records arrive minutes late, and a late one still goes to the blob of
// the hour it was written in).
func hourClosed(hour, now time.Time, grace time.Duration) bool {
	return !now.Before(hour.Add(time.Hour + grace))
}

// folderValue reads the number of a y=/m=/d=/h= folder prefix such as "root/y=2024/m=05/".
func folderValue(prefix string) (int, bool) {
	p := strings.TrimSuffix(prefix, "/")
	last := p[strings.LastIndexByte(p, '/')+1:]
	key, _, ok := strings.Cut(last, "=")
	if !ok {
		return 0, false
	}
	return folderNumber(last, key+"=")
}

// hourFolders is the order the input descends the folders in, to find a container's oldest hour.
var hourFolders = []string{"y=", "m=", "d=", "h="}
