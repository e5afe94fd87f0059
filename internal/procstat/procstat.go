// Package procstat reads what the benchmarks measure of a process from Linux's /proc.
package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakRSSKiB is a process's peak resident set size (VmHWM) in KiB.
func PeakRSSKiB(pid int) (int64, error) { return statusKiB(pid, "VmHWM") }

// AnonRSSKiB is the process's resident private memory now (RssAnon) in KiB: what it allocated,
// without the pages of its binary and of files it maps, which the kernel shares and can drop.
func AnonRSSKiB(pid int) (int64, error) { return statusKiB(pid, "RssAnon") }

func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no " + field + " in /proc status")
}
