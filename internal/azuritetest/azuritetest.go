// Package azuritetest runs Azurite's blob service (npm azurite, pinned in the repository's
// package.json) for tests that need a real Azure Blob endpoint, such as the Event Hubs
// checkpoint store. StartOAuth and SharedOAuth run it over https with bearer-token sign-in
// (Azurite's --oauth basic), for tests of Entra ID authentication to storage.
package azuritetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
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

// AccountHost is the account's host name in Azure's public cloud. An Azurite started with
// OAuth holds a certificate for it, and AccountHostClient reaches Azurite under it: code that
// builds the account's URL from its name talks to Azurite unchanged, as if DNS pointed there.
const AccountHost = AccountName + ".blob.core.windows.net"

// Azurite is a running azurite-blob process.
type Azurite struct {
	Port int
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	// With OAuth: the certificate Azurite serves (its own root) and the files it was read from.
	roots   *x509.CertPool
	certDir string
}

// BlobEndpoint is the account URL, e.g. http://127.0.0.1:PORT/devstoreaccount1 (https with
// OAuth).
func (a *Azurite) BlobEndpoint() string {
	return fmt.Sprintf("%s://127.0.0.1:%d/%s", a.scheme(), a.Port, AccountName)
}

func (a *Azurite) scheme() string {
	if a.roots != nil {
		return "https"
	}
	return "http"
}

// ConnectionString is the explicit form azblob accepts (it rejects UseDevelopmentStorage=true).
// With OAuth its endpoint is https: clients need HTTPClient's trust.
func (a *Azurite) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=%s;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		a.scheme(), AccountName, AccountKey, a.BlobEndpoint())
}

// HTTPClient reaches BlobEndpoint, trusting the certificate of an Azurite started with OAuth.
// It is an azcore policy.Transporter (ClientOptions.Transport).
func (a *Azurite) HTTPClient() *http.Client {
	if a.roots == nil {
		return &http.Client{}
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: a.roots, MinVersion: tls.VersionTLS12},
	}}
}

// AccountHostClient reaches this Azurite (started with OAuth) when asked for
// https://AccountHost, trusting its certificate; a request to any other host fails without
// leaving the machine. It is an azcore policy.Transporter (ClientOptions.Transport): a client
// given it sends its requests, bearer token included, to Azurite and nowhere else.
func (a *Azurite) AccountHostClient() *http.Client {
	if a.roots == nil {
		panic("azuritetest: AccountHostClient needs an Azurite started with OAuth")
	}
	azurite := fmt.Sprintf("127.0.0.1:%d", a.Port)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !strings.EqualFold(addr, AccountHost+":443") {
				return nil, fmt.Errorf("azuritetest: %s is not the account's host %s", addr, AccountHost)
			}
			return dialer.DialContext(ctx, network, azurite)
		},
		TLSClientConfig: &tls.Config{RootCAs: a.roots, MinVersion: tls.VersionTLS12},
	}}
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

// Run starts azurite-blob (bin, or Binary's when empty) in memory on a free 127.0.0.1 port, for
// programs rather than tests (the measurement scripts under scripts/); the caller stops it.
func Run(bin string) (*Azurite, error) {
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, fmt.Errorf("%w (npm ci at the module root)", err)
		}
	}
	return start(bin, false)
}

// Start runs azurite-blob in memory on a free 127.0.0.1 port and stops it when the test ends.
// Without Azurite the test fails when CI=true (CI must run the whole suite) and is skipped on a
// developer machine.
func Start(t testing.TB) *Azurite {
	t.Helper()
	return startFor(t, false)
}

// StartOAuth is Start with Azurite serving https (a self-signed certificate made for this run,
// valid for 127.0.0.1 and AccountHost) and accepting bearer tokens besides the account key:
// Azurite's --oauth basic reads the token's claims (aud a storage audience, iss an Entra ID
// issuer, nbf/exp) without checking its signature.
func StartOAuth(t testing.TB) *Azurite {
	t.Helper()
	return startFor(t, true)
}

func startFor(t testing.TB, oauth bool) *Azurite {
	t.Helper()
	a, err := start(available(t), oauth)
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

type sharedInstance struct {
	a   *Azurite
	err error
}

// shared holds the instances Shared and SharedOAuth started, by OAuth mode.
var shared struct {
	mu  sync.Mutex
	all map[bool]*sharedInstance
}

// Shared is one Azurite for all the tests of a package that call it (starting one takes
// seconds on a busy machine); tests keep apart by using containers of their own. The
// package's TestMain ends it with StopShared.
func Shared(t testing.TB) *Azurite {
	t.Helper()
	return sharedFor(t, false)
}

// SharedOAuth is Shared for an Azurite started as StartOAuth does.
func SharedOAuth(t testing.TB) *Azurite {
	t.Helper()
	return sharedFor(t, true)
}

func sharedFor(t testing.TB, oauth bool) *Azurite {
	t.Helper()
	bin := available(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.all == nil {
		shared.all = map[bool]*sharedInstance{}
	}
	in := shared.all[oauth]
	if in == nil {
		in = &sharedInstance{}
		in.a, in.err = start(bin, oauth)
		shared.all[oauth] = in
	}
	if in.err != nil {
		t.Fatalf("starting Azurite: %v", in.err)
	}
	return in.a
}

// StopShared stops the instances Shared and SharedOAuth started, if any.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for _, in := range shared.all {
		if in.a != nil {
			in.a.Stop()
		}
	}
	shared.all = nil
}

func start(bin string, oauth bool) (*Azurite, error) {
	var lastErr error
	// A free port can be taken between probing and binding: retry a few times.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := loopback.FreePort()
		if err != nil {
			return nil, err
		}
		a := &Azurite{Port: port, out: &syncBuffer{}, done: make(chan struct{})}
		args := []string{"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
			"--inMemoryPersistence", "--skipApiVersionCheck", "--silent"}
		if oauth {
			certFile, keyFile, err := a.makeCertificate()
			if err != nil {
				return nil, err
			}
			args = append(args, "--oauth", "basic", "--cert", certFile, "--key", keyFile)
		}
		a.cmd = exec.Command(bin, args...)
		a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
		if err := a.cmd.Start(); err != nil {
			a.removeCertificate()
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

// makeCertificate writes a throwaway self-signed certificate for 127.0.0.1 and AccountHost,
// and its key, for Azurite to serve; Stop removes them.
func (a *Azurite) makeCertificate() (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "Azurite (test)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own root: clients trust exactly this certificate
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{AccountHost},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if a.certDir, err = os.MkdirTemp("", "azurite-cert-"); err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(a.certDir, "cert.pem"), filepath.Join(a.certDir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		a.removeCertificate()
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		a.removeCertificate()
		return "", "", err
	}
	a.roots = x509.NewCertPool()
	a.roots.AddCert(cert)
	return certFile, keyFile, nil
}

func (a *Azurite) removeCertificate() {
	if a.certDir != "" {
		_ = os.RemoveAll(a.certDir)
		a.certDir = ""
	}
}

func (a *Azurite) waitReady(timeout time.Duration) error {
	probeClient := a.HTTPClient()
	probeClient.Timeout = time.Second
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
		a.removeCertificate()
		return
	default:
	}
	defer a.removeCertificate()
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
