package benchbuild

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/azuritetest"
	"github.com/defenderbeat/defenderbeat/internal/loopback"
)

// Azurite is an azurite-blob process on 127.0.0.1, in memory, for the beats' checkpoints.
type Azurite struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// StartAzurite starts bin, or without it the azurite-blob that npm ci installed at the module
// root (or on PATH), and waits until it answers.
func StartAzurite(bin string) (*Azurite, error) {
	if bin == "" {
		bin = filepath.Join(ModuleRoot(), "node_modules", ".bin", "azurite-blob")
		if _, err := os.Stat(bin); err != nil {
			if bin, err = azuritetest.Binary(); err != nil {
				return nil, fmt.Errorf("azurite-blob not found (npm ci at the module root, or -azurite): %w", err)
			}
		}
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	a := &Azurite{port: port, done: make(chan struct{})}
	a.cmd = exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--inMemoryPersistence", "--skipApiVersionCheck", "--silent")
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/%s?comp=list", port, azuritetest.AccountName))
		if err == nil {
			_ = resp.Body.Close()
			if strings.Contains(resp.Header.Get("Server"), "Azurite") {
				return a, nil
			}
		}
	}
	a.Stop()
	return nil, errors.New("azurite-blob did not start within 30 s")
}

// ConnectionString is the connection string of Azurite's development account.
func (a *Azurite) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=http://127.0.0.1:%d/%s;",
		azuritetest.AccountName, azuritetest.AccountKey, a.port, azuritetest.AccountName)
}

// Stop ends the process; what it held is gone with it.
func (a *Azurite) Stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}
