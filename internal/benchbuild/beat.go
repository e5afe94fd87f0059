package benchbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/defenderbeat/defenderbeat/internal/loopback"
)

// Beat is a beat process a script started: its configuration, data and log under one directory,
// its monitoring endpoint on a free 127.0.0.1 port.
type Beat struct {
	Cmd    *exec.Cmd
	Port   int    // the monitoring endpoint's (http.port)
	Stats  string // its /stats URL, for Acked
	Log    string // the beat's stdout and stderr
	Exited chan struct{}
}

// StartBeat writes cfg (plus the monitoring endpoint) to dir/<name>.yml and runs binary with it,
// path.home dir and path.data dir/data; env is added to this process's environment.
func StartBeat(binary, name, dir string, cfg map[string]any, env []string) (*Beat, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	full := map[string]any{"http.enabled": true, "http.host": "127.0.0.1", "http.port": port, "logging.level": "info"}
	for k, v := range cfg {
		full[k] = v
	}
	raw, err := yaml.Marshal(full)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, name+".yml")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return nil, err
	}
	b := &Beat{Port: port, Stats: fmt.Sprintf("http://127.0.0.1:%d/stats", port), Log: filepath.Join(dir, name+".log"), Exited: make(chan struct{})}
	logFile, err := os.Create(b.Log)
	if err != nil {
		return nil, err
	}
	b.Cmd = exec.Command(binary, "-c", cfgPath, "--strict.perms=false", "--path.home", dir, "--path.data", filepath.Join(dir, "data"), "-e")
	b.Cmd.Stdout, b.Cmd.Stderr = logFile, logFile
	b.Cmd.Env = append(os.Environ(), env...)
	if err := b.Cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	go func() { _ = b.Cmd.Wait(); _ = logFile.Close(); close(b.Exited) }()
	return b, nil
}

// Stop sends sig and waits for the process to end, killing it after wait.
func (b *Beat) Stop(sig syscall.Signal, wait time.Duration) {
	_ = b.Cmd.Process.Signal(sig)
	select {
	case <-b.Exited:
	case <-time.After(wait):
		_ = b.Cmd.Process.Kill()
		<-b.Exited
	}
}
