package procstat

import (
	"os"
	"runtime"
	"testing"
)

func TestPeakRSSOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	kib, err := PeakRSSKiB(os.Getpid())
	if err != nil || kib <= 0 {
		t.Fatalf("PeakRSSKiB = %d, %v; want a positive size", kib, err)
	}
	if _, err := PeakRSSKiB(-1); err == nil {
		t.Fatal("a process that does not exist has no peak RSS")
	}
}
