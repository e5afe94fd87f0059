//go:build !unix

package event

import "time"

func cpuTime() time.Duration { return 0 }
