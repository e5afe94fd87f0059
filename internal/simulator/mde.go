package simulator

// Defender for Endpoint (MDE) part of the simulated tenant: the vulnerability
// export (files behind expiring SAS URLs on a blob-like endpoint) and the
// delta API. Export rows are never stored: every row is a pure function of
// (seed, generation, row index), so a 1,000,000-row export costs no memory.
//
// Files: mde.go (config, public API, routing), mde_rows.go (row generation),
// mde_export.go (export endpoint, SAS, file downloads), mde_delta.go (delta
// endpoint), mde_vulns.go (vulnerability by id), mde_limits.go (per-tenant
// call limits).

import (
	"crypto/rand"
	"iter"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MDEConfig sizes the simulated vulnerability data of Defender for Endpoint.
type MDEConfig struct {
	// Devices × SoftwarePerDevice × CVEsPerSoftware is the number of rows of
	// every export generation (defaults 20, 5, 2: 200 rows).
	Devices, SoftwarePerDevice, CVEsPerSoftware int
	// Files is how many export files a generation is split into (default 3).
	Files int
	// ExportEvery is the export cadence (default 6h, as Microsoft's): a new
	// generation appears at every multiple of it since the Unix epoch; the
	// first generation exists at Start.
	ExportEvery time.Duration
	// DeltaChangesPerTick is how many delta rows each Tick produces (default 10).
	DeltaChangesPerTick int
	// DisableThrottling switches off the export (5/min, 20/h), delta
	// (30/min, 1000/h) and vulnerability-by-id (100/min) call limits, for
	// tests of other things.
	DisableThrottling bool
	// APILimits, when set, also limits every call of the API as a whole, per
	// application, and answers 429 with Retry-After beyond them (MDEAPILimits
	// are Microsoft's; tests scale them down).
	APILimits []CallLimit
}

const (
	mdeScope           = "https://securitycenter.onmicrosoft.com/windowsatpservice/.default"
	mdeDefaultDevices  = 20
	mdeDefaultSoftware = 5
	mdeDefaultCVEs     = 2
	mdeDefaultFiles    = 3
	mdeDefaultEvery    = 6 * time.Hour
	mdeDefaultDelta    = 10
	mdeExportPath      = "/api/machines/SoftwareVulnerabilitiesExport"
	mdeDeltaPath       = "/api/machines/SoftwareVulnerabilityChangesByMachine"
	blobPathPrefix     = "/tvm-export/"
)

// mdeAudiences are the resources whose tokens the MDE API accepts besides the
// simulator's own URL: WindowsDefenderATP's identifier URIs and app id.
var mdeAudiences = set(
	"https://securitycenter.onmicrosoft.com/windowsatpservice",
	"https://api.securitycenter.microsoft.com",
	"https://api.security.microsoft.com",
	"https://api-gcc.securitycenter.microsoft.us",
	"https://api-gov.securitycenter.microsoft.us",
	"fc780465-2017-40d4-a0c5-307022471b92",
)

func (s *Server) isMDEAudience(aud string) bool {
	return mdeAudiences[aud] || (s.isGraphAudience(aud) && !graphAudiences[aud]) // the simulator's own URL
}

// mdeState is the mutable part of the MDE simulation, guarded by mu.
type mdeState struct {
	cfg    MDEConfig
	seed   uint64
	tenant string
	sasKey []byte
	// deltaStart and deltaStride (coprime with the row count) order the rows
	// that delta changes visit.
	deltaStart, deltaStride uint64

	mu         sync.Mutex
	gen        mdeGeneration
	recent     []mdeGeneration // the last few generations, so their files stay downloadable
	sasSerial  uint64
	revoked    map[string]uint64 // file path → highest SAS serial no longer valid
	deltaTicks []deltaTick
	tickCount  int
	deltaTotal int
	limits     *callLimits

	vulnLookups atomic.Int64 // answered GET /api/vulnerabilities/{id}
}

func newMDEState(cfg MDEConfig, seed int64, tenant string, now time.Time) *mdeState {
	if cfg.Devices <= 0 {
		cfg.Devices = mdeDefaultDevices
	}
	if cfg.SoftwarePerDevice <= 0 {
		cfg.SoftwarePerDevice = mdeDefaultSoftware
	}
	if cfg.CVEsPerSoftware <= 0 {
		cfg.CVEsPerSoftware = mdeDefaultCVEs
	}
	if cfg.Files <= 0 {
		cfg.Files = mdeDefaultFiles
	}
	if cfg.ExportEvery <= 0 {
		cfg.ExportEvery = mdeDefaultEvery
	}
	if cfg.DeltaChangesPerTick <= 0 {
		cfg.DeltaChangesPerTick = mdeDefaultDelta
	}
	m := &mdeState{
		cfg:     cfg,
		seed:    uint64(seed),
		tenant:  tenant,
		sasKey:  make([]byte, 32),
		revoked: map[string]uint64{},
		limits:  newCallLimits(),
	}
	_, _ = rand.Read(m.sasKey)
	n := uint64(m.rows())
	m.deltaStart = hash(m.seed, deltaSalt) % n
	m.deltaStride = coprimeStride(n)
	m.gen = mdeGeneration{index: 0, generated: alignedGeneratedTime(now, cfg.ExportEvery)}
	m.recent = []mdeGeneration{m.gen}
	return m
}

// MDEScope is the client-credentials scope of the Defender for Endpoint API.
// Tokens for URL()+"/.default" are accepted on the MDE paths as well.
func (s *Server) MDEScope() string { return mdeScope }

// ExportRows is the number of rows of the current export generation.
func (s *Server) ExportRows() int { return s.mde.rows() }

// GeneratedTime is the generatedTime of the current export generation.
func (s *Server) GeneratedTime() time.Time { return s.mde.current(s.cfg.Now()).generated }

// NewExportGeneration starts a new export generation now: a new generatedTime
// (at least a minute after the previous one, so file paths stay distinct) and
// rows that differ deterministically (some CVEs fixed, others new).
func (s *Server) NewExportGeneration() { s.mde.newGeneration(s.cfg.Now()) }

// ExportRowIDs streams the Id of every row of the current generation, in file
// order, without holding them.
func (s *Server) ExportRowIDs() iter.Seq[string] {
	gen := s.mde.current(s.cfg.Now())
	m := s.mde
	return func(yield func(string) bool) {
		row := newMDERow()
		var buf []byte
		for i := 0; i < m.rows(); i++ {
			m.exportRow(row, gen, i)
			buf = row.appendID(buf[:0])
			if !yield(string(buf)) {
				return
			}
		}
	}
}

// DeltaRows is the number of delta rows produced so far (by Tick).
func (s *Server) DeltaRows() int {
	s.mde.mu.Lock()
	defer s.mde.mu.Unlock()
	return s.mde.deltaTotal
}

func isMDEPath(p string) bool { return strings.HasPrefix(p, "/api/") }

func isBlobPath(p string) bool { return strings.HasPrefix(p, blobPathPrefix) }

func (s *Server) serveMDE(w http.ResponseWriter, r *http.Request) {
	if !s.authorizeMDE(w, r) {
		return
	}
	if ok, wait := s.appLimits.allow("mde", s.mde.cfg.APILimits, time.Now()); !ok {
		setRetryAfter(w, wait)
		writeMDEError(w, http.StatusTooManyRequests, "TooManyRequests", "Reached quota limit either by number of requests or by CPU. Please wait and try again.")
		return
	}
	if r.Method != http.MethodGet {
		writeMDEError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
		return
	}
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case mdeExportPath:
		s.serveExport(w, r)
	case mdeDeltaPath:
		s.serveDelta(w, r)
	default:
		if isVulnerabilityPath(r.URL.Path) {
			s.serveVulnerability(w, r)
			return
		}
		writeMDEError(w, http.StatusNotFound, "ResourceNotFound", "Resource not found")
	}
}

// coprimeStride is a step near the golden ratio of n that visits all of 0..n-1.
func coprimeStride(n uint64) uint64 {
	gcd := func(a, b uint64) uint64 {
		for b != 0 {
			a, b = b, a%b
		}
		return a
	}
	for s := max(1, n*618/1000); ; s++ {
		if gcd(s, n) == 1 {
			return s
		}
	}
}
