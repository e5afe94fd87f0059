package simulator

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// GET /api/vulnerabilities/{cveId}: one vulnerability of Defender's knowledge
// base (MicrosoftDocs/defender-docs defender-endpoint/api/get-vulnerability-by-id.md,
// properties in vulnerability.md). Details are a pure function of (seed, id),
// so any id the export rows carry can be asked for without storing anything;
// about one id in ten is unknown to the API and answers 404.

const mdeVulnerabilityPath = "/api/vulnerabilities/"

// vulnerabilityLimits: Microsoft documents no limit of its own for this API,
// only the Defender for Endpoint API's 100 calls per minute per connection
// (learn.microsoft.com/legal/microsoft-365/api-terms-of-use).
var vulnerabilityLimits = []CallLimit{{100, time.Minute}}

var vulnerabilityIDPattern = regexp.MustCompile(`^(?i:CVE|TVM)-\d{4}-\d{4,}$`)

const vulnerabilitySalt = 0xc7ed

var (
	exploitTypeNames = []string{"PrivilegeEscalation", "RemoteCodeExecution", "DenialOfService", "SecurityFeatureBypass", "InformationDisclosure"}
	cvssAttackVector = []string{"N", "A", "L", "P"}
	cvssLowHigh      = []string{"L", "H"}
	cvssImpact       = []string{"N", "L", "H"}
	vulnSeverities   = []string{"Low", "Medium", "High", "Critical"}
)

// mdeVulnerability is the entity as the API serves it (camelCase, and
// "cveSupportability" as in the list example).
type mdeVulnerability struct {
	Context           string   `json:"@odata.context"`
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	Description       string   `json:"description"`
	Severity          string   `json:"severity"`
	CvssV3            *float64 `json:"cvssV3"`
	CvssVector        *string  `json:"cvssVector"`
	ExposedMachines   int      `json:"exposedMachines"`
	PublishedOn       string   `json:"publishedOn"`
	UpdatedOn         string   `json:"updatedOn"`
	FirstDetected     string   `json:"firstDetected"`
	PublicExploit     bool     `json:"publicExploit"`
	ExploitVerified   bool     `json:"exploitVerified"`
	ExploitInKit      bool     `json:"exploitInKit"`
	ExploitTypes      []string `json:"exploitTypes"`
	ExploitUris       []string `json:"exploitUris"`
	CveSupportability string   `json:"cveSupportability"`
	EPSS              *float64 `json:"epss"`
}

// vulnerabilityDetails returns what the API says about id, or false when the
// API does not know it.
func (m *mdeState) vulnerabilityDetails(id string) (mdeVulnerability, bool) {
	id = strings.ToUpper(id)
	if !vulnerabilityIDPattern.MatchString(id) {
		return mdeVulnerability{}, false
	}
	h := hash(m.seed, vulnerabilitySalt, stringHash(id))
	if h%10 == 0 {
		return mdeVulnerability{}, false
	}
	v := mdeVulnerability{ID: id, Name: id, ExploitTypes: []string{}, ExploitUris: []string{}, CveSupportability: "Supported"}
	year := 2019
	if parts := strings.Split(id, "-"); len(parts) == 3 {
		year, _ = strconv.Atoi(parts[1])
	}
	published := time.Date(year, time.Month(1+h>>8%12), int(1+h>>12%28), 0, 0, 0, 0, time.UTC)
	v.PublishedOn = published.Format(time.RFC3339)
	v.UpdatedOn = published.Add(time.Duration(h>>16%(400*24)) * time.Hour).Add(time.Duration(h>>28%3600) * time.Second).Format("2006-01-02T15:04:05.000Z")
	v.FirstDetected = published.Add(time.Duration(h>>20%72) * time.Hour).Format(time.RFC3339)
	v.ExposedMachines = 1 + int(h>>24%500)

	// About one in eight has no CVSS v3 score, like Defender's TVM- entries.
	if h>>32%8 != 0 {
		score := float64(10+h>>35%91) / 10
		v.CvssV3 = &score
		v.Severity = severityOf(score)
		if h>>42%5 != 0 {
			vector := "CVSS:3." + strconv.Itoa(int(h>>45%2)) +
				"/AV:" + cvssAttackVector[h>>46%4] + "/AC:" + cvssLowHigh[h>>48%2] +
				"/PR:" + cvssImpact[h>>49%3] + "/UI:" + []string{"N", "R"}[h>>51%2] +
				"/S:" + []string{"U", "C"}[h>>52%2] + "/C:" + cvssImpact[h>>53%3] +
				"/I:" + cvssImpact[h>>55%3] + "/A:" + cvssImpact[h>>57%3] + "/E:U/RL:O/RC:C"
			v.CvssVector = &vector
		}
	} else {
		v.Severity = vulnSeverities[h>>33%4]
	}
	epss := float64(h>>36%100000) / 100000
	v.EPSS = &epss
	v.PublicExploit = h>>59%3 == 0
	v.ExploitVerified = v.PublicExploit && h>>61%2 == 0
	v.ExploitInKit = v.ExploitVerified && h>>62%2 == 0
	if v.PublicExploit {
		v.ExploitTypes = append(v.ExploitTypes, exploitTypeNames[h>>40%uint64(len(exploitTypeNames))])
		v.ExploitUris = append(v.ExploitUris, "https://exploits.example/"+strings.ToLower(id))
	}
	kind := []string{"remote code execution", "elevation of privilege", "denial of service", "information disclosure"}[h>>6%4]
	v.Description = "Summary: A " + kind + " vulnerability (" + id + ") exists in an affected component. " +
		"Impact: Successful exploitation could let an attacker compromise the confidentiality, integrity or availability of the device. " +
		"Remediation: Apply the latest patches and updates provided by the respective vendors. [Simulated]"
	return v, true
}

func severityOf(score float64) string {
	switch {
	case score >= 9:
		return "Critical"
	case score >= 7:
		return "High"
	case score >= 4:
		return "Medium"
	}
	return "Low"
}

func stringHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Vulnerability is the answer GET /api/vulnerabilities/{id} gives, decoded as
// a client would, and false when it answers 404: what tests compare documents with.
func (s *Server) Vulnerability(id string) (map[string]any, bool) {
	v, ok := s.mde.vulnerabilityDetails(id)
	if !ok {
		return nil, false
	}
	b, _ := json.Marshal(v)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	delete(out, "@odata.context")
	return out, true
}

// VulnerabilityLookups counts the GET /api/vulnerabilities/{id} calls
// answered (200 or 404), not those refused by throttling or faults.
func (s *Server) VulnerabilityLookups() int { return int(s.mde.vulnLookups.Load()) }

func isVulnerabilityPath(p string) bool {
	return len(p) > len(mdeVulnerabilityPath) && strings.HasPrefix(strings.ToLower(p), mdeVulnerabilityPath)
}

func (s *Server) serveVulnerability(w http.ResponseWriter, r *http.Request) {
	if !s.throttle(w, "vulnerability", vulnerabilityLimits, s.cfg.Now().UTC()) {
		return
	}
	id := strings.TrimSuffix(r.URL.Path[len(mdeVulnerabilityPath):], "/")
	s.mde.vulnLookups.Add(1)
	v, ok := s.mde.vulnerabilityDetails(id)
	if !ok {
		writeMDEError(w, http.StatusNotFound, "NotFound", "Vulnerability with id "+id+" was not found.")
		return
	}
	v.Context = baseURL(r) + "/api/$metadata#Vulnerabilities/$entity"
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
