package simulator

import (
	"strconv"
	"time"
)

// mdeGeneration is one full export: Microsoft regenerates it every six hours.
type mdeGeneration struct {
	index     int
	generated time.Time
}

const (
	mdeTimeLayout = "2006-01-02 15:04:05"
	// slotPeriod: a row slot changes its CVE every slotPeriod generations, at a
	// slot-specific phase, so about 1/slotPeriod of the rows change per generation.
	slotPeriod  = 10
	keepRecent  = 8 // generations whose files stay downloadable
	deltaSalt   = 0xde17a
	versionSalt = 0x7e5
)

func alignedGeneratedTime(now time.Time, every time.Duration) time.Time {
	return now.UTC().Truncate(every).Truncate(time.Second)
}

func (m *mdeState) rows() int {
	return m.cfg.Devices * m.cfg.SoftwarePerDevice * m.cfg.CVEsPerSoftware
}

// current returns the generation in force at now, moving to a new one when
// an ExportEvery boundary has passed since the last.
func (m *mdeState) current(now time.Time) mdeGeneration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.currentLocked(now)
}

func (m *mdeState) currentLocked(now time.Time) mdeGeneration {
	if b := alignedGeneratedTime(now, m.cfg.ExportEvery); b.After(m.gen.generated) {
		m.pushLocked(mdeGeneration{index: m.gen.index + 1, generated: b})
	}
	return m.gen
}

func (m *mdeState) newGeneration(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev := m.currentLocked(now)
	// Export file paths carry the generation's date and hhmm: keep them distinct.
	t := now.UTC().Truncate(time.Minute)
	if !t.After(prev.generated.Truncate(time.Minute)) {
		t = prev.generated.Truncate(time.Minute).Add(time.Minute)
	}
	m.pushLocked(mdeGeneration{index: prev.index + 1, generated: t})
}

func (m *mdeState) pushLocked(g mdeGeneration) {
	m.gen = g
	m.recent = append(m.recent, g)
	if len(m.recent) > keepRecent {
		m.recent = append(m.recent[:0], m.recent[len(m.recent)-keepRecent:]...)
	}
}

// generationAt finds a recent generation by the date/hhmm of its file paths.
func (m *mdeState) generationAt(dateHHMM string) (mdeGeneration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.recent) - 1; i >= 0; i-- {
		if generationPathStamp(m.recent[i].generated) == dateHHMM {
			return m.recent[i], true
		}
	}
	return mdeGeneration{}, false
}

func generationPathStamp(t time.Time) string { return t.UTC().Format("2006-01-02/1504") }

// mix is splitmix64's finaliser: rows are pure functions of these hashes.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func hash(seed uint64, parts ...uint64) uint64 {
	h := mix(seed + 0x9e3779b97f4a7c15)
	for _, p := range parts {
		h = mix(h ^ (p + 0x9e3779b97f4a7c15))
	}
	return h
}

type osPlatform struct {
	name, family, osVendor, osSoftware string
	osVersionTmpl                      string // OSVersion, as Defender reports it
	versionTmpl                        string // the OS's own software version
	arch, host                         string
	weight                             int
}

// Platforms as Defender names them (OSPlatform), weighted like a typical fleet.
var mdePlatforms = []osPlatform{
	{"Windows10", "windows", "microsoft", "windows_10", "10.0.19045.%d", "10.0.19045.%d", "x64", "ws", 34},
	{"Windows11", "windows", "microsoft", "windows_11", "10.0.22631.%d", "10.0.22631.%d", "x64", "ws", 24},
	{"WindowsServer2022", "windows", "microsoft", "windows_server_2022", "10.0.20348.%d", "10.0.20348.%d", "x64", "srv", 10},
	{"WindowsServer2019", "windows", "microsoft", "windows_server_2019", "10.0.17763.%d", "10.0.17763.%d", "x64", "srv", 5},
	{"Linux", "rhel", "red_hat", "enterprise_linux", "enterprise_linux_9.%d", "9.%d", "x64", "rhel", 8},
	{"Linux", "ubuntu", "ubuntu", "ubuntu_linux", "ubuntu_linux_22.04", "22.04.%d", "x64", "ubu", 9},
	{"macOS", "macos", "apple", "macos", "14.%d", "14.%d", "arm64", "mac", 10},
}

var platformWeightTotal = func() int {
	t := 0
	for _, p := range mdePlatforms {
		t += p.weight
	}
	return t
}()

type mdeSoftware struct {
	vendor, name, versionTmpl, diskPath, registryPath string
}

// Installed software per platform family; the first entry is the OS itself.
// versionTmpl's "%d" varies per device and per extra install of the product.
var mdeCatalog = map[string][]mdeSoftware{
	"windows": {
		{"microsoft", "", "", "", ""},
		{"microsoft", "edge_chromium-based", "131.0.%d.70", `C:\Program Files (x86)\Microsoft\Edge\Application\msedge.exe`, `HKEY_LOCAL_MACHINE\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\Microsoft Edge`},
		{"google", "chrome", "130.0.%d.92", `C:\Program Files\Google\Chrome\Application\chrome.exe`, `HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\Google Chrome`},
		{"mozilla", "firefox", "128.%d.0.0", `C:\Program Files\Mozilla Firefox\firefox.exe`, `HKEY_LOCAL_MACHINE\SOFTWARE\Mozilla\Mozilla Firefox`},
		{"microsoft", "office", "16.0.%d.20226", `C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE`, ""},
		{"vmware", "tools", "12.0.%d.0", `C:\Program Files\VMware\VMware Tools\VMware VGAuth\VMwareAliasImport.exe`, ""},
		{"7-zip", "7-zip", "23.%d.0.0", `C:\Program Files\7-Zip\7z.exe`, `HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\7-Zip`},
		{"adobe", "acrobat_reader_dc", "24.%d.20272.0", `C:\Program Files\Adobe\Acrobat DC\Acrobat\Acrobat.exe`, ""},
		{"oracle", "jre", "8.0.%d.0", `C:\Program Files\Java\jre1.8.0\bin\java.exe`, ""},
		{"notepad++", "notepad++", "8.6.%d.0", `C:\Program Files\Notepad++\notepad++.exe`, ""},
		{"microsoft", ".net", "6.0.%d.0", `C:\Program Files\dotnet\shared\Microsoft.NETCore.App\6.0.0\coreclr.dll`, ""},
		{"python", "python", "3.11.%d.0", `C:\Program Files\Python311\python.exe`, ""},
	},
	"rhel": {
		{"red_hat", "", "", "", ""},
		{"red_hat", "kernel", "0:5.14.0-427.%d.1.el9_4", "", ""},
		{"red_hat", "openssl", "1:3.0.7-%d.el9_4", "", ""},
		{"red_hat", "glibc", "0:2.34-%d.el9", "/usr/lib64/libc.so.6", ""},
		{"red_hat", "sudo", "0:1.9.5p2-%d.el9", "/usr/bin/sudo", ""},
		{"red_hat", "openssh", "0:8.7p1-%d.el9", "/usr/sbin/sshd", ""},
		{"red_hat", "curl", "0:7.76.1-%d.el9", "/usr/bin/curl", ""},
		{"red_hat", "python3", "0:3.9.%d-1.el9", "", ""},
	},
	"ubuntu": {
		{"ubuntu", "", "", "", ""},
		{"ubuntu", "linux-image-generic", "5.15.0.%d.112", "", ""},
		{"ubuntu", "thunderbird-gnome-support_for_linux", "1:115.18.0+build1-0ubuntu0.22.04.%d", "", ""},
		{"ubuntu", "openssl", "3.0.2-0ubuntu1.%d", "", ""},
		{"ubuntu", "bash", "5.1-6ubuntu1.%d", "/usr/bin/bash", ""},
		{"ubuntu", "vim", "2:8.2.3995-1ubuntu2.%d", "/usr/bin/vim.basic", ""},
		{"ubuntu", "git", "1:2.34.1-1ubuntu1.%d", "/usr/bin/git", ""},
		{"ubuntu", "libxml2", "2.9.13+dfsg-1ubuntu0.%d", "", ""},
	},
	"macos": {
		{"apple", "", "", "", ""},
		{"google", "chrome", "130.0.%d.92", "/Applications/Google Chrome.app", ""},
		{"mozilla", "firefox", "128.%d.0", "/Applications/Firefox.app", ""},
		{"microsoft", "teams", "24.%d.0", "/Applications/Microsoft Teams.app", ""},
		{"zoom", "zoom", "6.0.%d", "/Applications/zoom.us.app", ""},
		{"apple", "safari", "17.%d", "/Applications/Safari.app", ""},
		{"microsoft", "office", "16.%d", "/Applications/Microsoft Word.app", ""},
	},
}

var rbacGroups = []struct {
	id   int
	name string
}{{0, "Unassigned"}, {1, "Production"}, {2, "Engineering"}, {3, "Finance"}, {4, "Servers - Tier 0"}}

var exploitLevels = []string{"NoExploit", "NoExploit", "NoExploit", "NoExploit", "NoExploit", "NoExploit", "ExploitIsPublic", "ExploitIsPublic", "ExploitIsVerified", "ExploitIsInKit"}

var monthNames = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}

// mdeRow is one device × software × CVE assessment, rebuilt in place for
// every row so that streaming a file allocates almost nothing.
type mdeRow struct {
	device  int // the device whose fields below are filled, -1 for none
	plat    *osPlatform
	devHash uint64

	DeviceID, DeviceName, OSVersion, RbacGroupName string
	RbacGroupID                                    int
	IsOnboarded                                    bool

	SoftwareVendor, SoftwareName, SoftwareVersion string
	DiskPath, RegistryPath                        string
	PathsMode                                     int // 0: omitted, 1: empty arrays, 2: filled

	CveYear, CveNumber         int
	Cvss10                     int // CVSS × 10, 0 = missing
	Severity, Exploitability   string
	UpdateAvailable            bool
	Update, UpdateID           string
	UpdateURL                  string
	BatchTitle, BatchURL       string
	FirstSeen, LastSeen, Event time.Time
	Status                     string // delta rows only
}

func newMDERow() *mdeRow { return &mdeRow{device: -1} }

// exportRow fills row with row i of generation gen.
func (m *mdeState) exportRow(row *mdeRow, gen mdeGeneration, i int) {
	perDevice := m.cfg.SoftwarePerDevice * m.cfg.CVEsPerSoftware
	d := i / perDevice
	k := (i / m.cfg.CVEsPerSoftware) % m.cfg.SoftwarePerDevice
	c := i % m.cfg.CVEsPerSoftware
	slot := hash(m.seed, 0x510, uint64(i))
	version := (uint64(gen.index) + slot%slotPeriod) / slotPeriod
	m.fill(row, gen, d, k, c, version, slot)
}

func (m *mdeState) fillDevice(row *mdeRow, d int) {
	if row.device == d {
		return
	}
	row.device = d
	h := hash(m.seed, 0xde, uint64(d))
	row.devHash = h
	pick := int(h % uint64(platformWeightTotal))
	for i := range mdePlatforms {
		if pick < mdePlatforms[i].weight {
			row.plat = &mdePlatforms[i]
			break
		}
		pick -= mdePlatforms[i].weight
	}
	p := row.plat
	const hexDigits = "0123456789abcdef"
	id := make([]byte, 40)
	for j, x := 0, h; j < 40; j++ {
		if j%16 == 0 {
			x = hash(m.seed, 0x1d, uint64(d), uint64(j))
		}
		id[j] = hexDigits[x&15]
		x >>= 4
	}
	row.DeviceID = string(id)
	row.DeviceName = p.host + "-" + pad(d+1, 5)
	if p.family == "windows" && h>>40%3 == 0 {
		row.DeviceName += ".corp.contoso.com"
	}
	row.OSVersion = fillTmpl(p.osVersionTmpl, osBuild(p, h))
	g := rbacGroups[h>>8%uint64(len(rbacGroups))]
	row.RbacGroupID, row.RbacGroupName = g.id, g.name
	row.IsOnboarded = h>>16%40 != 0
}

func osBuild(p *osPlatform, h uint64) int {
	switch p.family {
	case "windows":
		return 4000 + int(h>>24%2500)
	case "rhel":
		return 2 + int(h>>24%3)
	case "ubuntu":
		return int(h >> 24 % 6)
	}
	return 4 + int(h>>24%4)
}

// fill builds the row for device d, its k-th software and that software's
// c-th CVE slot at the slot's version (which changes the CVE: old fixed, new found).
func (m *mdeState) fill(row *mdeRow, gen mdeGeneration, d, k, c int, version, slot uint64) {
	m.fillDevice(row, d)
	p := row.plat
	catalog := mdeCatalog[p.family]
	idx := (k + d) % len(catalog)
	extra := k / len(catalog) // further installs of the same product, other versions
	sw := catalog[idx]
	swHash := hash(m.seed, 0x50f7, uint64(d), uint64(k))
	row.SoftwareVendor = sw.vendor
	if idx == 0 {
		row.SoftwareName = p.osSoftware
		row.SoftwareVersion = fillTmpl(p.versionTmpl, osBuild(p, row.devHash)+extra*10000)
		if p.family == "windows" {
			row.SoftwareVersion = row.OSVersion
			if extra > 0 {
				row.SoftwareVersion += "." + strconv.Itoa(extra)
			}
		}
	} else {
		row.SoftwareName = sw.name
		row.SoftwareVersion = fillTmpl(sw.versionTmpl, int(swHash%7)+extra*10)
	}
	row.DiskPath, row.RegistryPath = sw.diskPath, sw.registryPath
	switch {
	case swHash>>8%6 == 0:
		row.PathsMode = 0
	case swHash>>8%6 == 1 || sw.diskPath == "":
		row.PathsMode = 1
	default:
		row.PathsMode = 2
	}

	h := hash(m.seed, 0xc7e, uint64(d), uint64(k), uint64(c), version)
	row.CveYear = 2019 + int(h%7)
	// Distinct per c whatever the hash: CVE slots of one software never collide.
	row.CveNumber = 10000 + c + m.cfg.CVEsPerSoftware*int(h>>8%9000)
	if h>>24%11 == 0 {
		row.Cvss10 = 0
	} else {
		row.Cvss10 = 20 + int(h>>32%79)
	}
	switch s := row.Cvss10; {
	case s == 0:
		row.Severity = []string{"Low", "Medium", "High", "Critical"}[h>>40%4]
	case s >= 90:
		row.Severity = "Critical"
	case s >= 70:
		row.Severity = "High"
	case s >= 40:
		row.Severity = "Medium"
	default:
		row.Severity = "Low"
	}
	row.Exploitability = exploitLevels[h>>44%uint64(len(exploitLevels))]
	row.UpdateAvailable = h>>50%5 != 0
	month := int(h >> 52 % 12)
	m.fillUpdate(row, p, idx, h, month)

	// FirstSeen is fixed for the slot version; LastSeen moves with the generation.
	genTime := gen.generated
	row.FirstSeen = genTime.Add(-time.Duration(h>>20%(90*24*3600)) * time.Second)
	row.LastSeen = genTime.Add(-time.Duration(slot>>20%(6*3600)) * time.Second)
	if row.LastSeen.Before(row.FirstSeen) {
		row.FirstSeen = row.LastSeen.Add(-time.Hour)
	}
	row.Event, row.Status = time.Time{}, ""
}

func (m *mdeState) fillUpdate(row *mdeRow, p *osPlatform, idx int, h uint64, month int) {
	row.Update, row.UpdateID, row.UpdateURL, row.BatchTitle, row.BatchURL = "", "", "", "", ""
	year := strconv.Itoa(2022 + int(h>>56%4))
	cve := row.appendCVE(nil)
	switch {
	case row.SoftwareVendor == "microsoft":
		kb := strconv.Itoa(5030000 + int(h>>12%60000))
		row.Update = monthNames[month] + " " + year + " Security Updates"
		row.UpdateID = kb
		row.UpdateURL = "https://catalog.update.microsoft.com/v7/site/Search.aspx?q=KB" + kb
		row.BatchTitle = "Microsoft " + row.Update
		row.BatchURL = "https://portal.msrc.microsoft.com/en-US/security-guidance/advisory/" + string(cve)
	case p.family == "rhel":
		n := pad(int(h>>12%10000), 4)
		row.Update = string(cve) + "_oval:com.redhat.rhsa:def:" + year + n
		row.UpdateID = "RHSA-" + year + ":" + n
		row.UpdateURL = "https://access.redhat.com/errata/" + row.UpdateID
		row.BatchTitle = "Red_hat " + monthNames[month] + " " + year + " Vulnerabilities"
		row.BatchURL = "https://security.access.redhat.com/data/oval/v2/RHEL9/rhel-9.4-eus.oval.xml.bz2"
	case p.family == "ubuntu":
		n := strconv.Itoa(6000 + int(h>>12%2000))
		row.Update = string(cve) + "_oval:com.ubuntu.jammy:def:" + n + "1000000"
		row.UpdateID = "USN-" + n + "-1"
		row.UpdateURL = "https://ubuntu.com/security/notices/" + row.UpdateID
		row.BatchTitle = "Ubuntu " + monthNames[month] + " " + year + " Vulnerabilities"
		row.BatchURL = "https://security-metadata.canonical.com/oval/com.ubuntu.jammy.usn.oval.xml.bz2"
	case idx == 0 && p.family == "macos":
		row.Update = "Update macOS to version 14." + strconv.Itoa(int(h>>12%8)+5)
		row.BatchTitle = "Apple " + monthNames[month] + " " + year + " Security Updates"
		row.BatchURL = "https://support.apple.com/en-us/100100"
	default:
		if h>>14%3 != 0 {
			row.Update = "Update " + row.SoftwareName + " to a version later than " + row.SoftwareVersion
		}
	}
	if !row.UpdateAvailable {
		row.UpdateID, row.UpdateURL = "", ""
	}
}

func fillTmpl(tmpl string, n int) string {
	for i := 0; i+1 < len(tmpl); i++ {
		if tmpl[i] == '%' && tmpl[i+1] == 'd' {
			return tmpl[:i] + strconv.Itoa(n) + tmpl[i+2:]
		}
	}
	return tmpl
}

func pad(n, width int) string {
	s := strconv.Itoa(n)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

func (r *mdeRow) appendCVE(b []byte) []byte {
	b = append(b, "CVE-"...)
	b = strconv.AppendInt(b, int64(r.CveYear), 10)
	b = append(b, '-')
	return strconv.AppendInt(b, int64(r.CveNumber), 10)
}

// appendID appends the row's Id: deviceId_vendor_name_version_cveId.
func (r *mdeRow) appendID(b []byte) []byte {
	b = append(b, r.DeviceID...)
	b = append(b, '_')
	b = append(b, r.SoftwareVendor...)
	b = append(b, '_')
	b = append(b, r.SoftwareName...)
	b = append(b, '_')
	b = append(b, r.SoftwareVersion...)
	b = append(b, '_')
	return r.appendCVE(b)
}

// rowKeys are the export files' PascalCase names and the delta API's camelCase ones.
type rowKeys struct {
	pascal bool
}

func (k rowKeys) key(b []byte, first bool, pascal, camel string) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	if k.pascal {
		b = append(b, pascal...)
	} else {
		b = append(b, camel...)
	}
	return append(b, '"', ':')
}

// appendJSON appends the row as one JSON object: PascalCase keys in the
// export files' alphabetical order, or the delta API's camelCase.
func (r *mdeRow) appendJSON(b []byte, pascal bool) []byte {
	k := rowKeys{pascal}
	b = append(b, '{')
	first := true
	str := func(pk, ck, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = k.key(b, first, pk, ck)
		first = false
		b = appendJSONString(b, v)
	}
	if r.BatchTitle != "" {
		str("CveBatchTitle", "cveBatchTitle", r.BatchTitle, true)
		str("CveBatchUrl", "cveBatchUrl", r.BatchURL, true)
	}
	b = k.key(b, first, "CveId", "cveId")
	first = false
	b = append(b, '"')
	b = r.appendCVE(b)
	b = append(b, '"')
	if r.Cvss10 > 0 {
		b = k.key(b, false, "CvssScore", "cvssScore")
		b = strconv.AppendInt(b, int64(r.Cvss10/10), 10)
		if r.Cvss10%10 != 0 {
			b = append(b, '.', byte('0'+r.Cvss10%10))
		}
	}
	str("DeviceId", "deviceId", r.DeviceID, false)
	str("DeviceName", "deviceName", r.DeviceName, false)
	if r.PathsMode > 0 {
		b = k.key(b, false, "DiskPaths", "diskPaths")
		b = appendStringArray(b, r.DiskPath, r.PathsMode == 2)
	}
	if r.Status != "" {
		b = k.key(b, false, "EventTimestamp", "eventTimestamp")
		b = append(b, '"')
		b = r.Event.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, '"')
	}
	str("ExploitabilityLevel", "exploitabilityLevel", r.Exploitability, false)
	b = k.key(b, false, "FirstSeenTimestamp", "firstSeenTimestamp")
	b = append(b, '"')
	b = r.FirstSeen.UTC().AppendFormat(b, mdeTimeLayout)
	b = append(b, '"')
	b = k.key(b, false, "Id", "id")
	b = append(b, '"')
	b = r.appendID(b) // its parts hold nothing JSON must escape
	b = append(b, '"')
	b = k.key(b, false, "IsOnboarded", "isOnboarded")
	b = strconv.AppendBool(b, r.IsOnboarded)
	b = k.key(b, false, "LastSeenTimestamp", "lastSeenTimestamp")
	b = append(b, '"')
	b = r.LastSeen.UTC().AppendFormat(b, mdeTimeLayout)
	b = append(b, '"')
	str("OSArchitecture", "osArchitecture", r.plat.arch, false)
	str("OSPlatform", "osPlatform", r.plat.name, false)
	str("OSVersion", "osVersion", r.OSVersion, false)
	b = k.key(b, false, "RbacGroupId", "rbacGroupId")
	b = strconv.AppendInt(b, int64(r.RbacGroupID), 10)
	str("RbacGroupName", "rbacGroupName", r.RbacGroupName, false)
	b = k.key(b, false, "RecommendationReference", "recommendationReference")
	b = append(b, `"va-_-`...)
	b = appendJSONStringBody(b, r.SoftwareVendor)
	b = append(b, "-_-"...)
	b = appendJSONStringBody(b, r.SoftwareName)
	b = append(b, '"')
	str("RecommendedSecurityUpdate", "recommendedSecurityUpdate", r.Update, true)
	str("RecommendedSecurityUpdateId", "recommendedSecurityUpdateId", r.UpdateID, true)
	if r.UpdateURL != "" {
		str("RecommendedSecurityUpdateUrl", "recommendedSecurityUpdateUrl", r.UpdateURL, false)
	} else if !pascal {
		b = k.key(b, false, "", "recommendedSecurityUpdateUrl")
		b = append(b, "null"...)
	}
	if r.PathsMode > 0 {
		b = k.key(b, false, "RegistryPaths", "registryPaths")
		b = appendStringArray(b, r.RegistryPath, r.PathsMode == 2)
	}
	if pascal || r.Status == "" {
		b = k.key(b, false, "SecurityUpdateAvailable", "securityUpdateAvailable")
		b = strconv.AppendBool(b, r.UpdateAvailable)
	}
	str("SoftwareName", "softwareName", r.SoftwareName, false)
	str("SoftwareVendor", "softwareVendor", r.SoftwareVendor, false)
	str("SoftwareVersion", "softwareVersion", r.SoftwareVersion, false)
	if r.Status != "" {
		str("Status", "status", r.Status, false)
	}
	str("VulnerabilitySeverityLevel", "vulnerabilitySeverityLevel", r.Severity, false)
	return append(b, '}')
}

func appendStringArray(b []byte, v string, filled bool) []byte {
	b = append(b, '[')
	if filled && v != "" {
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringBody(b, s)
	return append(b, '"')
}

// appendJSONStringBody escapes what the generated data can hold: quotes,
// backslashes (Windows paths) and control characters.
func appendJSONStringBody(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}
