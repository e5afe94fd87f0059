// Package e2e drives the real defenderbeat binary the way a user does: simulate, transform,
// test config, export template, and runs that are killed and restarted.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "defenderbeat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "defenderbeat")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	build := exec.Command("go", "build", "-trimpath", "-o", binary, "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building defenderbeat:", err)
		os.Exit(1)
	}
	code := m.Run()
	azuritetest.StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run executes the binary in a fresh home directory.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(binary, append([]string{"--path.home", home}, args...)...)
	cmd.Dir = home
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errOut.String(), code}
}

// readDocs reads every JSON document the file output wrote under dir. A last line without its
// newline is a write torn by a killed process and is not counted.
func readDocs(t testing.TB, dir string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	var docs []map[string]any
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(raw, []byte("\n"))
		for _, line := range lines[:len(lines)-1] {
			var d map[string]any
			if err := json.Unmarshal(line, &d); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			docs = append(docs, d)
		}
	}
	return docs
}

func get(doc map[string]any, path string) any {
	var cur any = doc
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startBeat runs the beat on a config file and a data directory until the test stops it.
func startBeat(t testing.TB, cfg, data string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, "-c", cfg, "--path.home", t.TempDir(), "--path.data", data, "-e")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// startDebugBeat runs the beat with every debug selector, its output in a log file that logs()
// reads, and shows that log when the test fails.
func startDebugBeat(t *testing.T, cfg string) (*exec.Cmd, func() string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "beat.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	logs := func() string { raw, _ := os.ReadFile(logFile.Name()); return string(raw) }
	cmd := exec.Command(binary, "-c", cfg, "--path.home", t.TempDir(), "-e", "-d", "*")
	cmd.Stderr, cmd.Stdout = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs())
		}
	})
	return cmd, logs
}
