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
func PeakRSSKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}
