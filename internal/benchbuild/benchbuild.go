// Package benchbuild builds and runs what the measurement scripts under scripts/ need: the
// defenderbeat binary, built the way a release builds it (static, stripped) so that what they
// measure is what ships; Filebeat from the pinned beats module, to compare with; and a beat's
// monitoring endpoint.
package benchbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ModuleRoot is the directory holding go.mod, from the working directory up.
func ModuleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Defenderbeat builds the module's main package into work/defenderbeat and returns its path.
func Defenderbeat(work string) (string, error) {
	bin := filepath.Join(work, "defenderbeat")
	fmt.Fprintln(os.Stderr, "building", bin)
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Dir = ModuleRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("go build defenderbeat: %w", err)
	}
	return bin, nil
}

// Workdir makes a script's work directory. Unless keep, cleanup removes it; with keep, its path
// is printed so that its configs, logs and output can be read afterwards.
func Workdir(prefix string, keep bool) (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "work directory:", dir)
		return dir, func() {}, nil
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}
