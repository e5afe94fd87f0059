// Package azuritetest runs Azurite's blob service (npm azurite, pinned in the repository's
// package.json) for tests that need a real Azure Blob endpoint, such as the Event Hubs
// checkpoint store.
package azuritetest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/loopback"
)

// AccountName and AccountKey are Azurite's well-known development credentials (public, not a
// secret).
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite is a running azurite-blob process.
type Azurite struct {
	Port int
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// BlobEndpoint is the account URL, e.g. http://127.0.0.1:PORT/devstoreaccount1.
func (a *Azurite) BlobEndpoint() string {
	return fmt.Sprintf("http://127.0.0.1:%d/%s", a.Port, AccountName)
}

// ConnectionString is the explicit form azblob accepts (it rejects UseDevelopmentStorage=true).
func (a *Azurite) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		AccountName, AccountKey, a.BlobEndpoint())
}

// Binary finds node_modules/.bin/azurite-blob in the nearest enclosing directory that has one.
func Binary() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		bin := filepath.Join(dir, "node_modules", ".bin", "azurite-blob")
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("node_modules/.bin/azurite-blob not found")
		}
		dir = parent
	}
}

// Start runs azurite-blob in memory on a free 127.0.0.1 port and stops it when the test ends.
// Without Azurite the test fails when CI=true (CI must run the whole suite) and is skipped on a
// developer machine.
func Start(t testing.TB) *Azurite {
	t.Helper()
	a, err := start(available(t))
	if err != nil {
		t.Fatalf("starting Azurite: %v", err)
	}
	t.Cleanup(a.Stop)
	return a
}

// available returns the azurite-blob binary, or ends the test as Start documents.
func available(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err == nil {
		_, err = exec.LookPath("node")
	}
	if err != nil {
		msg := fmt.Sprintf("Azurite is not available (%v): run `npm ci` in the repository root", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

var shared struct {
	mu  sync.Mutex
	a   *Azurite
	err error
}

// Shared is one Azurite for all the tests of a package that call it (starting one takes
// seconds on a busy machine); tests keep apart by using containers of their own. The
// package's TestMain ends it with StopShared.
func Shared(t testing.TB) *Azurite {
	t.Helper()
	bin := available(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.a == nil && shared.err == nil {
		shared.a, shared.err = start(bin)
	}
	if shared.err != nil {
		t.Fatalf("starting Azurite: %v", shared.err)
	}
	return shared.a
}

// StopShared stops the instance Shared started, if any.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.a != nil {
		shared.a.Stop()
		shared.a = nil
	}
}

func start(bin string) (*Azurite, error) {
	var lastErr error
	// A free port can be taken between probing and binding: retry a few times.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := loopback.FreePort()
		if err != nil {
			return nil, err
		}
		a := &Azurite{Port: port, out: &syncBuffer{}, done: make(chan struct{})}
		a.cmd = exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
			"--inMemoryPersistence", "--skipApiVersionCheck", "--silent")
		a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
		if err := a.cmd.Start(); err != nil {
			return nil, err
		}
		go func() {
			_ = a.cmd.Wait()
			close(a.done)
		}()
		if lastErr = a.waitReady(30 * time.Second); lastErr == nil {
			return a, nil
		}
		a.Stop()
	}
	return nil, lastErr
}

var probeClient = &http.Client{Timeout: time.Second}

func (a *Azurite) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("azurite-blob exited: %s", a.out.String())
		default:
		}
		// Another process may own the port (it was free when probed): only Azurite's own
		// answer counts.
		resp, err := probeClient.Get(a.BlobEndpoint() + "?comp=list")
		if err == nil {
			_ = resp.Body.Close()
			if strings.Contains(resp.Header.Get("Server"), "Azurite") {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("azurite-blob did not listen within %s: %s", timeout, a.out.String())
}

// Stop terminates Azurite (SIGTERM, then SIGKILL after 5 s).
func (a *Azurite) Stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // keep diagnostics bounded
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
