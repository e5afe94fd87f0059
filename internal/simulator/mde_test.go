package simulator_test

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/defenderbeat/defenderbeat/internal/simulator"
)

func mdeToken(t *testing.T, s *simulator.Server, c *http.Client, scope string) string {
	t.Helper()
	status, body := tokenRequest(t, c, s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {s.ClientSecret()},
		"scope": {scope},
	})
	if status != 200 {
		t.Fatalf("token for %s: %d %v", scope, status, body)
	}
	return body["access_token"].(string)
}

type exportAnswer struct {
	files     []string
	generated string
}

func requestExport(t *testing.T, s *simulator.Server, c *http.Client, tok, query string) exportAnswer {
	t.Helper()
	g := graphGet(t, c, tok, s.URL()+"/api/machines/SoftwareVulnerabilitiesExport"+query)
	if g.status != 200 {
		t.Fatalf("export call: %d %s", g.status, truncate(g.raw))
	}
	var a exportAnswer
	for _, f := range g.body["exportFiles"].([]any) {
		a.files = append(a.files, f.(string))
	}
	a.generated, _ = g.body["generatedTime"].(string)
	if ctx, _ := g.body["@odata.context"].(string); !strings.HasSuffix(ctx, "#microsoft.windowsDefenderATP.api.ExportFilesResponse") {
		t.Fatalf("@odata.context %q", ctx)
	}
	return a
}

type download struct {
	status int
	header http.Header
	lines  []string // decoded JSON lines
	err    error    // from reading or decoding the body
	raw    []byte   // the body of a non-200 answer
}

// fetch downloads an export file the way a client must: without a bearer token.
func fetch(t *testing.T, c *http.Client, rawURL string, header ...string) download {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	d := download{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != 200 {
		d.raw, _ = io.ReadAll(resp.Body)
		return d
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		d.err = err
		return d
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		d.lines = append(d.lines, sc.Text())
	}
	d.err = sc.Err()
	return d
}

func rowsOf(t *testing.T, lines []string) []map[string]any {
	t.Helper()
	out := make([]map[string]any, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &out[i]); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i, err, l)
		}
	}
	return out
}

func collectIDs(s *simulator.Server) []string {
	var ids []string
	for id := range s.ExportRowIDs() {
		ids = append(ids, id)
	}
	return ids
}

var filePathRE = regexp.MustCompile(`^/tvm-export/\d{4}-\d\d-\d\d/\d{4}/VaExport/json/OrgId=[0-9a-f-]+/part-\d{5}\.json\.gz$`)

func TestMDEExportDownloadsEveryRowOnce(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 21, MDE: simulator.MDEConfig{
		Devices: 60, SoftwarePerDevice: 14, CVEsPerSoftware: 3, Files: 4, DisableThrottling: true,
	}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	a := requestExport(t, s, c, tok, "?sasValidHours=2")
	if len(a.files) != 4 {
		t.Fatalf("%d export files, want 4", len(a.files))
	}
	gt, err := time.Parse(time.RFC3339, a.generated)
	if err != nil || !gt.Equal(s.GeneratedTime()) || gt.Truncate(6*time.Hour) != gt {
		t.Fatalf("generatedTime %q (%v), server %v: want the server's, on a 6-hour boundary", a.generated, err, s.GeneratedTime())
	}
	if s.ExportRows() != 60*14*3 {
		t.Fatalf("ExportRows = %d", s.ExportRows())
	}

	seen := map[string]bool{}
	platforms, severities, groups := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var noDiskPaths, emptyDiskPaths, noCVSS int
	for _, f := range a.files {
		u, _ := url.Parse(f)
		if !filePathRE.MatchString(u.Path) || !strings.Contains(u.Path, "OrgId="+s.TenantID()) {
			t.Fatalf("export file path %q", u.Path)
		}
		q := u.Query()
		st, _ := time.Parse(time.RFC3339, q.Get("st"))
		se, _ := time.Parse(time.RFC3339, q.Get("se"))
		if q.Get("sig") == "" || q.Get("sp") != "r" || se.Sub(st) != 2*time.Hour {
			t.Fatalf("SAS query %q", u.RawQuery)
		}
		d := fetch(t, c, f)
		if d.status != 200 || d.err != nil {
			t.Fatalf("download %s: %d %v %s", u.Path, d.status, d.err, d.raw)
		}
		if len(d.lines) == 0 {
			t.Fatalf("file %s has no rows", u.Path)
		}
		for _, row := range rowsOf(t, d.lines) {
			id := row["Id"].(string)
			if seen[id] {
				t.Fatalf("row %s served twice", id)
			}
			seen[id] = true
			want := strings.Join([]string{row["DeviceId"].(string), row["SoftwareVendor"].(string), row["SoftwareName"].(string), row["SoftwareVersion"].(string), row["CveId"].(string)}, "_")
			if id != want {
				t.Fatalf("Id %q, want deviceId_vendor_name_version_cve %q", id, want)
			}
			for _, k := range []string{"DeviceName", "OSPlatform", "OSVersion", "OSArchitecture", "VulnerabilitySeverityLevel", "ExploitabilityLevel", "RecommendationReference", "RbacGroupName", "FirstSeenTimestamp", "LastSeenTimestamp"} {
				if v, _ := row[k].(string); v == "" {
					t.Fatalf("row %s lacks %s: %v", id, k, row)
				}
			}
			for _, k := range []string{"FirstSeenTimestamp", "LastSeenTimestamp"} {
				if _, err := time.Parse("2006-01-02 15:04:05", row[k].(string)); err != nil {
					t.Fatalf("%s %q is not in the export's layout", k, row[k])
				}
			}
			if _, ok := row["RbacGroupId"].(float64); !ok {
				t.Fatalf("RbacGroupId is not a number: %v", row["RbacGroupId"])
			}
			platforms[row["OSPlatform"].(string)] = true
			severities[row["VulnerabilitySeverityLevel"].(string)] = true
			groups[row["RbacGroupName"].(string)] = true
			switch paths, has := row["DiskPaths"].([]any); {
			case !has:
				noDiskPaths++
			case len(paths) == 0:
				emptyDiskPaths++
			}
			if _, has := row["CvssScore"]; !has {
				noCVSS++
			}
		}
	}
	ids := collectIDs(s)
	if len(seen) != s.ExportRows() || len(ids) != len(seen) {
		t.Fatalf("downloaded %d rows, ExportRows %d, ExportRowIDs %d", len(seen), s.ExportRows(), len(ids))
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("ExportRowIDs holds %s, which no file served", id)
		}
	}
	for _, p := range []string{"Windows10", "Windows11", "Linux", "macOS"} {
		if !platforms[p] {
			t.Errorf("no %s device in %v", p, platforms)
		}
	}
	if len(severities) < 4 || len(groups) < 3 || noDiskPaths == 0 || emptyDiskPaths == 0 || noCVSS == 0 {
		t.Errorf("data not varied: severities %v, groups %v, rows without DiskPaths %d, with empty DiskPaths %d, without CvssScore %d",
			severities, groups, noDiskPaths, emptyDiskPaths, noCVSS)
	}
}

func TestMDEExportRowIDsAreUniqueWithManyInstalls(t *testing.T) {
	// More software per device than any platform's catalog: extra installs of
	// a product must get other versions, or Ids would collide.
	s, _ := start(t, simulator.Config{Seed: 5, MDE: simulator.MDEConfig{Devices: 200, SoftwarePerDevice: 40, CVEsPerSoftware: 4}})
	seen := map[string]bool{}
	for id := range s.ExportRowIDs() {
		if seen[id] {
			t.Fatalf("duplicate Id %s", id)
		}
		seen[id] = true
	}
	if len(seen) != 200*40*4 || s.ExportRows() != len(seen) {
		t.Fatalf("%d ids, ExportRows %d", len(seen), s.ExportRows())
	}
}

func TestMDETokenAudience(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 22, MDE: simulator.MDEConfig{DisableThrottling: true}})
	c := httpClient(t, s)
	export := s.URL() + "/api/machines/SoftwareVulnerabilitiesExport"
	for name, tok := range map[string]string{
		"no token": "", "graph token": mdeToken(t, s, c, "https://graph.microsoft.com/.default"), "unknown token": "bm90LWEtdG9rZW4",
	} {
		g := graphGet(t, c, tok, export)
		if g.status != 401 || g.errorCode() != "Unauthorized" {
			t.Errorf("%s: %d %s", name, g.status, truncate(g.raw))
		}
	}
	for _, scope := range []string{s.MDEScope(), s.URL() + "/.default", "https://api.securitycenter.microsoft.com/.default"} {
		if g := graphGet(t, c, mdeToken(t, s, c, scope), export); g.status != 200 {
			t.Errorf("token for %s: %d %s", scope, g.status, truncate(g.raw))
		}
	}
	if g := graphGet(t, c, mdeToken(t, s, c, s.MDEScope()), s.URL()+"/v1.0/security/alerts_v2"); g.status != 401 {
		t.Errorf("an MDE token must not open Graph: %d", g.status)
	}
	if g := graphGet(t, c, mdeToken(t, s, c, s.MDEScope()), s.URL()+"/api/machines/Nope"); g.status != 404 {
		t.Errorf("unknown MDE path: %d", g.status)
	}
}

func TestAzidentityMDEScope(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 23, MDE: simulator.MDEConfig{DisableThrottling: true}})
	c := httpClient(t, s)
	cred, err := azidentity.NewClientSecretCredential(s.TenantID(), s.ClientID(), s.ClientSecret(), &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: s.URL() + "/"},
			Transport: c,
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{s.MDEScope()}})
	if err != nil {
		t.Fatal(err)
	}
	a := requestExport(t, s, c, tok.Token, "")
	if d := fetch(t, c, a.files[0]); d.status != 200 || d.err != nil || len(d.lines) == 0 {
		t.Fatalf("download after an azidentity token: %d %v", d.status, d.err)
	}
}

func TestMDESASExpiryAndValidation(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 24, MDE: simulator.MDEConfig{DisableThrottling: true}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())

	for _, bad := range []string{"0", "7", "-1", "two"} {
		g := graphGet(t, c, tok, s.URL()+"/api/machines/SoftwareVulnerabilitiesExport?sasValidHours="+bad)
		if g.status != 400 {
			t.Errorf("sasValidHours=%s: %d", bad, g.status)
		}
	}
	a := requestExport(t, s, c, tok, "") // default: valid one hour
	u, _ := url.Parse(a.files[0])
	st, _ := time.Parse(time.RFC3339, u.Query().Get("st"))
	se, _ := time.Parse(time.RFC3339, u.Query().Get("se"))
	if se.Sub(st) != time.Hour {
		t.Fatalf("default SAS validity %v, want 1h", se.Sub(st))
	}
	if d := fetch(t, c, a.files[0]); d.status != 200 || d.err != nil {
		t.Fatalf("fresh SAS: %d %v", d.status, d.err)
	}

	tampered := strings.Replace(a.files[0], "part-00000", "part-00001", 1)
	if d := fetch(t, c, tampered); d.status != 403 || !strings.Contains(string(d.raw), "Signature did not match") {
		t.Errorf("SAS of another file: %d %s", d.status, d.raw)
	}
	noSAS := strings.SplitN(a.files[0], "?", 2)[0]
	if d := fetch(t, c, noSAS); d.status != 404 {
		t.Errorf("anonymous download: %d %s", d.status, d.raw)
	}
	d := fetch(t, c, a.files[0], "Authorization", "Bearer "+tok)
	if d.status != 400 || !strings.Contains(string(d.raw), "<Error><Code>") {
		t.Errorf("download with a bearer token: %d %s", d.status, d.raw)
	}

	clock.Advance(61 * time.Minute)
	tok = mdeToken(t, s, c, s.MDEScope()) // the first one expired too
	d = fetch(t, c, a.files[0])
	if d.status != 403 || !strings.Contains(string(d.raw), "<Code>AuthenticationFailed</Code>") ||
		!strings.Contains(string(d.raw), "Signature not valid in the specified time frame") ||
		d.header.Get("x-ms-error-code") != "AuthenticationFailed" {
		t.Fatalf("expired SAS: %d %s", d.status, d.raw)
	}
	b := requestExport(t, s, c, tok, "?sasValidHours=6")
	if b.files[0] == a.files[0] || b.generated != a.generated {
		t.Fatalf("a re-requested export must carry a new SAS for the same generation")
	}
	if d := fetch(t, c, b.files[0]); d.status != 200 || d.err != nil {
		t.Fatalf("re-requested SAS: %d %v", d.status, d.err)
	}
	clock.Advance(5 * time.Hour)
	if d := fetch(t, c, b.files[0]); d.status != 200 {
		t.Fatalf("6-hour SAS after 5h: %d", d.status)
	}
}

func TestMDEThrottling(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 25})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	export := s.URL() + "/api/machines/SoftwareVulnerabilitiesExport"
	call := func() graphResponse { return graphGet(t, c, tok, export) }

	retryAfter := func(g graphResponse) int {
		n, err := strconv.Atoi(g.header.Get("Retry-After"))
		if g.status != 429 || err != nil || g.errorCode() != "TooManyRequests" {
			t.Fatalf("want 429 TooManyRequests with Retry-After seconds, got %d %q %s", g.status, g.header.Get("Retry-After"), g.raw)
		}
		return n
	}
	for round := 0; round < 4; round++ {
		for i := 0; i < 5; i++ {
			if g := call(); g.status != 200 {
				t.Fatalf("round %d call %d: %d %s", round, i, g.status, g.raw)
			}
		}
		n := retryAfter(call())
		if round < 3 && (n < 1 || n > 60) {
			t.Fatalf("per-minute limit: Retry-After %d", n)
		}
		// 20 calls in the last hour: the hourly limit holds until the first leaves it.
		if round == 3 && (n <= 60 || n > 3600-3*61) {
			t.Fatalf("hourly limit: Retry-After %d", n)
		}
		clock.Advance(61 * time.Second)
	}
	if g := call(); g.status != 429 {
		t.Fatalf("a minute later the hourly limit must still hold: %d", g.status)
	}
	clock.Advance(time.Hour)
	tok = mdeToken(t, s, c, s.MDEScope())
	if g := call(); g.status != 200 {
		t.Fatalf("after an hour: %d", g.status)
	}

	delta := s.URL() + "/api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=" + url.QueryEscape(clock.Now().Add(-time.Hour).Format(time.RFC3339))
	for i := 0; i < 30; i++ {
		if g := graphGet(t, c, tok, delta); g.status != 200 {
			t.Fatalf("delta call %d: %d %s", i, g.status, g.raw)
		}
	}
	retryAfter(graphGet(t, c, tok, delta))

	free, _ := start(t, simulator.Config{Seed: 25, MDE: simulator.MDEConfig{DisableThrottling: true}})
	fc := httpClient(t, free)
	ftok := mdeToken(t, free, fc, free.MDEScope())
	for i := 0; i < 25; i++ {
		if g := graphGet(t, fc, ftok, free.URL()+"/api/machines/SoftwareVulnerabilitiesExport"); g.status != 200 {
			t.Fatalf("DisableThrottling, call %d: %d", i, g.status)
		}
	}
}

func TestMDEDownloadFaults(t *testing.T) {
	s, _ := start(t, simulator.Config{Seed: 26, MDE: simulator.MDEConfig{Devices: 40, SoftwarePerDevice: 10, CVEsPerSoftware: 3, Files: 2, DisableThrottling: true}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	ids := collectIDs(s)
	file0 := ids[:len(ids)/2] // rows are split evenly, in ExportRowIDs order
	idsOf := func(lines []string) []string {
		out := make([]string, 0, len(lines))
		for _, r := range rowsOf(t, lines) {
			out = append(out, r["Id"].(string))
		}
		return out
	}

	t.Run("SAS expires mid-download", func(t *testing.T) {
		a := requestExport(t, s, c, tok, "")
		s.AddFault(simulator.Fault{Path: "/tvm-export/", Kind: simulator.FaultSASExpireMidDownload})
		d := fetch(t, httpClientNoReuse(t, s), a.files[0])
		if d.status != 200 || d.err == nil || len(d.lines) == 0 || len(d.lines) >= len(file0) {
			t.Fatalf("cut download: %d, %d of %d rows, err %v", d.status, len(d.lines), len(file0), d.err)
		}
		if got := idsOf(d.lines); !slices.Equal(got, file0[:len(got)]) {
			t.Fatal("the rows before the cut are not the file's first rows")
		}
		again := fetch(t, c, a.files[0])
		if again.status != 403 || !strings.Contains(string(again.raw), "Signature not valid in the specified time frame") {
			t.Fatalf("same SAS after the cut: %d %s", again.status, again.raw)
		}
		if other := fetch(t, c, a.files[1]); other.status != 200 || other.err != nil {
			t.Fatalf("the other file's SAS must still work: %d %v", other.status, other.err)
		}
		b := requestExport(t, s, c, tok, "")
		full := fetch(t, c, b.files[0])
		if full.status != 200 || full.err != nil || !slices.Equal(idsOf(full.lines), file0) {
			t.Fatalf("after re-requesting the export: %d %v, %d rows", full.status, full.err, len(full.lines))
		}
	})
	t.Run("SAS expires after HugeBytes", func(t *testing.T) {
		a := requestExport(t, s, c, tok, "")
		s.AddFault(simulator.Fault{Path: "/tvm-export/", Kind: simulator.FaultSASExpireMidDownload, HugeBytes: 2000})
		d := fetch(t, httpClientNoReuse(t, s), a.files[1])
		if d.err == nil || len(d.lines) >= len(ids)-len(file0) {
			t.Fatalf("cut after 2000 bytes: %d rows, err %v", len(d.lines), d.err)
		}
		if again := fetch(t, c, a.files[1]); again.status != 403 {
			t.Fatalf("same SAS after the cut: %d", again.status)
		}
	})
	t.Run("empty body", func(t *testing.T) {
		a := requestExport(t, s, c, tok, "")
		s.AddFault(simulator.Fault{Path: "/tvm-export/", Kind: simulator.FaultEmptyBody})
		resp, err := c.Get(a.files[0])
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 0 {
			t.Fatalf("empty body: %d, %d bytes, Content-Length %d", resp.StatusCode, len(body), resp.ContentLength)
		}
		if d := fetch(t, c, a.files[0]); d.err != nil || len(d.lines) != len(file0) {
			t.Fatalf("the fault must apply once: %v %d", d.err, len(d.lines))
		}
	})
	t.Run("truncated gzip", func(t *testing.T) {
		a := requestExport(t, s, c, tok, "")
		s.AddFault(simulator.Fault{Path: "/tvm-export/", Kind: simulator.FaultTruncatedGzip})
		d := fetch(t, c, a.files[0])
		if d.status != 200 || !errors.Is(d.err, io.ErrUnexpectedEOF) || len(d.lines) == 0 || len(d.lines) >= len(file0) {
			t.Fatalf("truncated gzip: %d, %d rows, err %v", d.status, len(d.lines), d.err)
		}
		if got := idsOf(d.lines); !slices.Equal(got, file0[:len(got)]) {
			t.Fatal("rows before the truncation differ from the file's")
		}
	})
	t.Run("bad row", func(t *testing.T) {
		a := requestExport(t, s, c, tok, "")
		s.AddFault(simulator.Fault{Path: "/tvm-export/", Kind: simulator.FaultBadRow})
		d := fetch(t, c, a.files[0])
		if d.status != 200 || d.err != nil || len(d.lines) != len(file0) {
			t.Fatalf("bad row file: %d %v, %d lines", d.status, d.err, len(d.lines))
		}
		bad := 0
		for i, l := range d.lines {
			var row map[string]any
			if json.Unmarshal([]byte(l), &row) != nil {
				bad++
				continue
			}
			if row["Id"] != file0[i] {
				t.Fatalf("line %d: %v, want %s", i, row["Id"], file0[i])
			}
		}
		if bad != 1 {
			t.Fatalf("%d lines are not JSON, want 1", bad)
		}
	})
	t.Run("status faults on the MDE and blob paths", func(t *testing.T) {
		s.AddFault(simulator.Fault{Path: "/api/machines/SoftwareVulnerabilitiesExport", Status: 429, RetryAfter: "3"})
		g := graphGet(t, c, tok, s.URL()+"/api/machines/SoftwareVulnerabilitiesExport")
		if g.status != 429 || g.header.Get("Retry-After") != "3" || g.errorCode() != "TooManyRequests" {
			t.Fatalf("export 429: %d %v %s", g.status, g.header, g.raw)
		}
		s.AddFault(simulator.Fault{Path: "/api/machines/SoftwareVulnerabilitiesExport", Status: 429})
		if g := graphGet(t, c, tok, s.URL()+"/api/machines/SoftwareVulnerabilitiesExport"); g.status != 429 || g.header.Get("Retry-After") != "" {
			t.Fatalf("export 429 without Retry-After: %d %v", g.status, g.header)
		}
		s.AddFault(simulator.Fault{Path: "/api/machines/SoftwareVulnerabilityChangesByMachine", Status: 500})
		if g := graphGet(t, c, tok, s.URL()+"/api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=2025-03-14T00:00:00Z"); g.status != 500 || g.errorCode() == "" {
			t.Fatalf("delta 500: %d %s", g.status, g.raw)
		}
		a := requestExport(t, s, c, tok, "")
		s.AddFault(simulator.Fault{Path: "/tvm-export/", Status: 503, RetryAfter: "1"})
		if d := fetch(t, c, a.files[0]); d.status != 503 || !strings.Contains(string(d.raw), "<Code>ServerBusy</Code>") {
			t.Fatalf("blob 503: %d %s", d.status, d.raw)
		}
		if d := fetch(t, c, a.files[0]); d.status != 200 {
			t.Fatalf("after the blob fault: %d", d.status)
		}
	})
}

// httpClientNoReuse opens a fresh connection per request, so a connection the
// server cuts is not silently retried on another by Go's transport.
func httpClientNoReuse(t *testing.T, s *simulator.Server) *http.Client {
	t.Helper()
	c := httpClient(t, s)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	return c
}

func TestMDEFaultPresets(t *testing.T) {
	faults, err := simulator.ParseFaults("sasexpire,emptyfile,truncgzip,badrow,export429,deltacut")
	if err != nil {
		t.Fatal(err)
	}
	want := []simulator.FaultKind{simulator.FaultSASExpireMidDownload, simulator.FaultEmptyBody, simulator.FaultTruncatedGzip, simulator.FaultBadRow, simulator.FaultStatus, simulator.FaultCutPage}
	if len(faults) != len(want) {
		t.Fatalf("%d faults", len(faults))
	}
	for i, f := range faults {
		if f.Kind != want[i] {
			t.Errorf("fault %d: %v, want %v", i, f.Kind, want[i])
		}
	}
	if f := faults[4]; f.Status != 429 || f.RetryAfter == "" || !strings.Contains(f.Path, "SoftwareVulnerabilitiesExport") {
		t.Errorf("export429: %+v", f)
	}
}

type deltaRow struct {
	id, status, event string
	rbacGroupID       float64
}

func deltaPages(t *testing.T, s *simulator.Server, c *http.Client, tok string, since time.Time, pageSize int) (rows []deltaRow, pages int) {
	t.Helper()
	next := s.URL() + "/api/machines/SoftwareVulnerabilityChangesByMachine?sinceTime=" + url.QueryEscape(since.Format(time.RFC3339)) + "&pageSize=" + strconv.Itoa(pageSize)
	for next != "" {
		g := graphGet(t, c, tok, next)
		if g.status != 200 {
			t.Fatalf("delta page: %d %s", g.status, g.raw)
		}
		pages++
		vals := g.values(t)
		if len(vals) > pageSize {
			t.Fatalf("page of %d rows, pageSize %d", len(vals), pageSize)
		}
		for _, v := range vals {
			r := deltaRow{}
			r.id, _ = v["id"].(string)
			r.status, _ = v["status"].(string)
			r.event, _ = v["eventTimestamp"].(string)
			r.rbacGroupID, _ = v["rbacGroupId"].(float64)
			if r.id == "" || r.event == "" || v["deviceId"] == nil || v["cveId"] == nil {
				t.Fatalf("delta row lacks camelCase fields: %v", v)
			}
			rows = append(rows, r)
		}
		next, _ = g.body["@odata.nextLink"].(string)
		if pages > 1000 {
			t.Fatal("nextLink loop")
		}
	}
	return rows, pages
}

func TestMDEDeltaPaging(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 27, MDE: simulator.MDEConfig{DeltaChangesPerTick: 7, DisableThrottling: true}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	idSet := func() map[string]bool {
		ids := map[string]bool{}
		for id := range s.ExportRowIDs() {
			ids[id] = true
		}
		return ids
	}

	// baseTime is 09:26Z: tick A falls in the 06:00 bucket, B and C in 12:00,
	// after the 12:00 export generation.
	tickA := clock.Now()
	genA := idSet()
	s.Tick()
	clock.Advance(3 * time.Hour)
	tickB := clock.Now()
	genB := idSet()
	s.Tick()
	clock.Advance(time.Hour)
	s.Tick()
	tok = mdeToken(t, s, c, s.MDEScope())
	if s.DeltaRows() != 21 {
		t.Fatalf("DeltaRows = %d, want 21", s.DeltaRows())
	}

	all, _ := deltaPages(t, s, c, tok, tickA.Add(-time.Minute), 200000)
	paged, pages := deltaPages(t, s, c, tok, tickA.Add(-time.Minute), 5)
	if len(all) != 21 || !slices.Equal(all, paged) || pages != 5 {
		t.Fatalf("paging returned %d rows in %d pages, one page %d rows; want the same 21", len(paged), pages, len(all))
	}
	statuses := map[string]int{}
	for i, r := range all {
		exportIDs := genA
		if i >= 7 {
			exportIDs = genB
		}
		statuses[r.status]++
		ts, err := time.Parse(time.RFC3339Nano, r.event)
		if err != nil || ts.Before(tickA.Truncate(time.Millisecond)) {
			t.Fatalf("eventTimestamp %q: %v", r.event, err)
		}
		switch r.status {
		case "New":
			if exportIDs[r.id] {
				t.Errorf("New row %s is already in the export", r.id)
			}
		case "Fixed", "Updated":
			if !exportIDs[r.id] {
				t.Errorf("%s row %s is not in the export", r.status, r.id)
			}
		default:
			t.Fatalf("status %q", r.status)
		}
	}
	if len(statuses) != 3 {
		t.Errorf("statuses %v: want New, Fixed and Updated", statuses)
	}

	// sinceTime after tick B but in its bucket: B and C come back, A does not.
	inBucket, _ := deltaPages(t, s, c, tok, tickB.Add(30*time.Minute), 100)
	if !slices.Equal(inBucket, all[7:]) {
		t.Fatalf("sinceTime in the 12:00 bucket returned %d rows, want ticks B and C (14)", len(inBucket))
	}
	if later, _ := deltaPages(t, s, c, tok, clock.Now().Truncate(6*time.Hour).Add(6*time.Hour), 100); len(later) != 0 {
		t.Fatalf("sinceTime in a later bucket returned %d rows", len(later))
	}

	base := s.URL() + "/api/machines/SoftwareVulnerabilityChangesByMachine"
	for name, q := range map[string]string{
		"older than 14 days": "?sinceTime=" + url.QueryEscape(clock.Now().Add(-15*24*time.Hour).Format(time.RFC3339)),
		"no sinceTime":       "",
		"bad sinceTime":      "?sinceTime=yesterday",
		"pageSize too big":   "?sinceTime=" + url.QueryEscape(tickA.Format(time.RFC3339)) + "&pageSize=200001",
		"bad skiptoken":      "?sinceTime=" + url.QueryEscape(tickA.Format(time.RFC3339)) + "&$skiptoken=garbage",
	} {
		if g := graphGet(t, c, tok, base+q); g.status != 400 {
			t.Errorf("%s: %d %s", name, g.status, truncate(g.raw))
		}
	}
	if g := graphGet(t, c, tok, base+"?sinceTime="+url.QueryEscape(clock.Now().Add(-13*24*time.Hour).Format(time.RFC3339))); g.status != 200 {
		t.Errorf("13 days back: %d", g.status)
	}
}

func TestMDEExportGenerations(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 28, MDE: simulator.MDEConfig{Devices: 50, SoftwarePerDevice: 8, CVEsPerSoftware: 2, DisableThrottling: true}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	first := requestExport(t, s, c, tok, "")
	ids1, gt1 := collectIDs(s), s.GeneratedTime()

	s.NewExportGeneration()
	ids2, gt2 := collectIDs(s), s.GeneratedTime()
	if !gt2.After(gt1) || len(ids2) != len(ids1) {
		t.Fatalf("generatedTime %v -> %v, rows %d -> %d", gt1, gt2, len(ids1), len(ids2))
	}
	kept := 0
	old := map[string]bool{}
	for _, id := range ids1 {
		old[id] = true
	}
	for _, id := range ids2 {
		if old[id] {
			kept++
		}
	}
	if kept == len(ids1) || kept < len(ids1)/2 {
		t.Fatalf("%d of %d rows kept: a generation must fix some CVEs and find others, not replace everything", kept, len(ids1))
	}
	second := requestExport(t, s, c, tok, "")
	if second.generated != gt2.Format(time.RFC3339) || second.files[0] == first.files[0] {
		t.Fatalf("export after NewExportGeneration: %+v", second)
	}
	// Files of the previous generation stay downloadable while their SAS lasts.
	if d := fetch(t, c, first.files[0]); d.status != 200 || d.err != nil || rowsOf(t, d.lines)[0]["Id"] != ids1[0] {
		t.Fatalf("previous generation's file: %d %v", d.status, d.err)
	}
	s.NewExportGeneration()
	if gt3 := s.GeneratedTime(); !gt3.After(gt2) {
		t.Fatalf("two generations in the same minute share generatedTime %v", gt3)
	}

	// The 6-hour cadence: crossing a boundary brings a generation stamped with it.
	boundary := clock.Now().Truncate(6 * time.Hour).Add(6 * time.Hour)
	clock.Advance(boundary.Sub(clock.Now()) + 10*time.Minute)
	if got := s.GeneratedTime(); !got.Equal(boundary) {
		t.Fatalf("GeneratedTime after the boundary = %v, want %v", got, boundary)
	}
	if slices.Equal(collectIDs(s), ids2) {
		t.Fatal("rows did not change with the scheduled generation")
	}
}

func TestMDEDeltaRowsAreDistinctWhenTicksShareATime(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 29, MDE: simulator.MDEConfig{DeltaChangesPerTick: 40, DisableThrottling: true}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	for i := 0; i < 4; i++ {
		s.Tick() // the fake clock stands still: every row has the same eventTimestamp
	}
	rows, _ := deltaPages(t, s, c, tok, clock.Now().Add(-time.Minute), 1000)
	seen := map[deltaRow]bool{}
	for _, r := range rows {
		if seen[r] {
			t.Fatalf("delta row %+v served twice", r)
		}
		seen[r] = true
	}
	if len(rows) != 160 || s.DeltaRows() != 160 {
		t.Fatalf("%d delta rows served, DeltaRows %d, want 160", len(rows), s.DeltaRows())
	}
}

// TestMDEDeltaPageCutMidBody: FaultCutPage delivers the first half of a delta page's rows and
// then cuts the connection, once; the same page read again is whole.
func TestMDEDeltaPageCutMidBody(t *testing.T) {
	s, clock := start(t, simulator.Config{Seed: 5, MDE: simulator.MDEConfig{DeltaChangesPerTick: 40, DisableThrottling: true}})
	c := httpClient(t, s)
	tok := mdeToken(t, s, c, s.MDEScope())
	s.Tick()
	s.AddFault(simulator.Fault{Path: "/api/machines/SoftwareVulnerabilityChangesByMachine", Kind: simulator.FaultCutPage})
	page := s.URL() + "/api/machines/SoftwareVulnerabilityChangesByMachine?pageSize=20&sinceTime=" + url.QueryEscape(clock.Now().Add(-time.Hour).Format(time.RFC3339))

	req, _ := http.NewRequest(http.MethodGet, page, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("cut page: status %d, read error %v; want 200 and a body cut short", resp.StatusCode, err)
	}
	if n := strings.Count(string(body), `"cveId"`); n != 10 {
		t.Fatalf("the cut page delivered %d rows, want the first 10 of 20", n)
	}
	if rows, _ := deltaPages(t, s, c, tok, clock.Now().Add(-time.Hour), 20); len(rows) != 40 {
		t.Fatalf("after the fault: %d rows, want all 40", len(rows))
	}
}
