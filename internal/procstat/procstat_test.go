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

func TestAnonRSSGrowsWithWhatTheProcessHolds(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	before, err := AnonRSSKiB(os.Getpid())
	if err != nil || before <= 0 {
		t.Fatalf("AnonRSSKiB = %d, %v; want a positive size", before, err)
	}
	held := make([]byte, 64<<20)
	for i := range held {
		held[i] = 1 // touched, so resident
	}
	after, _ := AnonRSSKiB(os.Getpid())
	if after-before < 60<<10 {
		t.Fatalf("RssAnon went from %d to %d KiB holding 64 MiB", before, after)
	}
	runtime.KeepAlive(held)
}
