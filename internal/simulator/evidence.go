package simulator

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Pools of tenant entities (people, machines, files, infrastructure) drawn
// from the seed, so alerts in one incident tell a consistent story and the
// same device or user recurs across alerts, as in a real tenant.

const tenantDomain = "contoso.com"

type simUser struct {
	accountName, displayName, upn, sid, aadID string
}

type simDevice struct {
	name, mdeID, aadID, osPlatform, version, healthStatus, riskScore, avStatus string
	osBuild                                                                    int
	rbacID                                                                     int
	rbacName                                                                   any
	ips                                                                        []string
	vm                                                                         map[string]any
	server                                                                     bool
}

type simFile struct {
	name, path, sha1, sha256, publisher, signer string
	size                                        int
}

type simApp struct {
	name   string
	appID  int
	saasID int
}

type pools struct {
	users      []simUser
	devices    []simDevice
	malware    []simFile
	binaries   map[string]simFile
	publicIPs  []struct{ ip, country string }
	domains    []string
	apps       []simApp
	subID      string
	oauthApps  []map[string]any
	senders    []map[string]any
	subjects   []string
	rbacGroups []struct {
		id   int
		name any
	}
}

var (
	firstNames = []string{"Adele", "Alex", "Bianca", "Carlos", "Diego", "Emma", "Farah", "Grady", "Henrietta", "Isaiah", "Johanna", "Joni", "Kenji", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Omar", "Patti", "Pradeep", "Quinn", "Rosa", "Sanjay", "Tomas", "Uma", "Victor", "Wen", "Yara"}
	lastNames  = []string{"Vance", "Wilber", "Pagani", "Garcia", "Siciliani", "Brooks", "Haddad", "Archambeau", "Mueller", "Okafor", "Lindqvist", "Sherman", "Tanaka", "Gu", "Holloway", "Robbins", "Bowen", "Yilmaz", "Ruiz", "Nassar", "Fernandez", "Gupta", "Novak", "Costa", "Iyer", "Dvorak", "Rahman", "Petrov", "Zhang", "Adeyemi"}
	countries  = []string{"RU", "CN", "NL", "US", "BR", "DE", "NG", "RO", "VN", "IR"}
)

func hexString(r *rand.Rand, n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[r.IntN(16)]
	}
	return string(b)
}

func newGUID(r *rand.Rand) string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return formatGUID(b)
}

// newClientSecret looks like an Entra client secret value ("xxx8Q~..."), 40 characters.
func newClientSecret(r *rand.Rand) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-."
	b := make([]byte, 40)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	copy(b[3:6], "8Q~")
	return string(b)
}

func pick[T any](r *rand.Rand, items []T) T { return items[r.IntN(len(items))] }

func newPools(r *rand.Rand) *pools {
	p := &pools{subID: newGUID(r), binaries: map[string]simFile{}}
	p.rbacGroups = []struct {
		id   int
		name any
	}{{0, nil}, {12, "Workstations-EU"}, {19, "Finance"}, {75, "Tier0-Servers"}, {88, "Developers"}}

	usedNames := map[string]bool{}
	for len(p.users) < 36 {
		first, last := pick(r, firstNames), pick(r, lastNames)
		account := strings.ToLower(first[:1] + last)
		if usedNames[account] {
			continue
		}
		usedNames[account] = true
		p.users = append(p.users, simUser{
			accountName: account,
			displayName: first + " " + last,
			upn:         account + "@" + tenantDomain,
			sid:         fmt.Sprintf("S-1-5-21-%d-%d-%d-%d", 1000000000+r.IntN(999999999), 1000000000+r.IntN(999999999), 1000000000+r.IntN(999999999), 1100+len(p.users)),
			aadID:       newGUID(r),
		})
	}
	for _, svc := range []string{"svc-backup", "svc-sql", "adm-tier0"} {
		p.users = append(p.users, simUser{
			accountName: svc, displayName: svc, upn: svc + "@" + tenantDomain,
			sid:   fmt.Sprintf("S-1-5-21-%d-%d-%d-%d", 1000000000+r.IntN(999999999), 1000000000+r.IntN(999999999), 1000000000+r.IntN(999999999), 500+len(p.users)),
			aadID: newGUID(r),
		})
	}

	type devKind struct {
		prefix, platform, version string
		build                     int
		server                    bool
	}
	kinds := []devKind{
		{"ws-fin", "Windows11", "23H2", 22631, false}, {"ws-hr", "Windows11", "22H2", 22621, false},
		{"lt-sales", "Windows10", "22H2", 19045, false}, {"lt-dev", "Windows11", "24H2", 26100, false},
		{"srv-sql", "WindowsServer2022", "21H2", 20348, true}, {"srv-dc", "WindowsServer2019", "1809", 17763, true},
		{"srv-file", "WindowsServer2016", "1607", 14393, true}, {"lnx-web", "Linux", "Ubuntu 22.04", 0, true},
		{"mac-design", "macOS", "14.4", 0, false},
	}
	for i := 0; i < 28; i++ {
		k := kinds[r.IntN(len(kinds))]
		name := fmt.Sprintf("%s-%04d", k.prefix, 10+r.IntN(9000))
		if k.server {
			name = fmt.Sprintf("%s-%02d", k.prefix, 1+r.IntN(40))
		}
		grp := p.rbacGroups[r.IntN(len(p.rbacGroups))]
		d := simDevice{
			name:         name,
			mdeID:        hexString(r, 40),
			osPlatform:   k.platform,
			version:      k.version,
			osBuild:      k.build,
			healthStatus: pick(r, []string{"active", "active", "active", "inactive", "impairedCommunication", "noSensorData"}),
			riskScore:    pick(r, []string{"none", "low", "medium", "high"}),
			avStatus:     pick(r, []string{"updated", "updated", "outdated", "notSupported", "disabled"}),
			rbacID:       grp.id,
			rbacName:     grp.name,
			ips:          []string{fmt.Sprintf("10.%d.%d.%d", 1+r.IntN(30), r.IntN(256), 2+r.IntN(250)), fmt.Sprintf("fe80::%x:%x:%x:%x", r.IntN(65536), r.IntN(65536), r.IntN(65536), r.IntN(65536)), "127.0.0.1", "::1"},
			server:       k.server,
		}
		if !k.server || r.IntN(2) == 0 {
			d.aadID = newGUID(r)
		}
		if k.server && r.IntN(3) > 0 {
			vmID := newGUID(r)
			d.vm = map[string]any{
				"cloudProvider":  "azure",
				"resourceId":     fmt.Sprintf("/subscriptions/%s/resourceGroups/rg-prod-servers/providers/Microsoft.Compute/virtualMachines/%s", p.subID, name),
				"subscriptionId": p.subID,
				"vmId":           vmID,
			}
		}
		p.devices = append(p.devices, d)
	}

	bin := func(name, path, publisher string, size int) {
		p.binaries[name] = simFile{name: name, path: path, sha1: hexString(r, 40), sha256: hexString(r, 64), publisher: publisher, signer: "Microsoft Windows", size: size}
	}
	bin("powershell.exe", `C:\Windows\System32\WindowsPowerShell\v1.0`, "Microsoft Corporation", 491520)
	bin("cmd.exe", `C:\Windows\System32`, "Microsoft Corporation", 323584)
	bin("explorer.exe", `C:\Windows`, "Microsoft Corporation", 5261576)
	bin("rundll32.exe", `C:\Windows\System32`, "Microsoft Corporation", 71680)
	bin("reg.exe", `C:\Windows\System32`, "Microsoft Corporation", 79360)
	bin("net.exe", `C:\Windows\System32`, "Microsoft Corporation", 57344)
	bin("whoami.exe", `C:\Windows\System32`, "Microsoft Corporation", 73728)
	bin("certutil.exe", `C:\Windows\System32`, "Microsoft Corporation", 1582080)
	bin("WINWORD.EXE", `C:\Program Files\Microsoft Office\root\Office16`, "Microsoft Corporation", 1620384)
	bin("wmic.exe", `C:\Windows\System32\wbem`, "Microsoft Corporation", 512000)

	for _, m := range []struct{ name, dir string }{
		{"mimikatz.exe", `C:\Users\Public\Downloads`}, {"invoice_0423.docm", `C:\Users\%s\Downloads`},
		{"svchost32.exe", `C:\ProgramData\Microsoft\Crypto`}, {"update.dll", `C:\Users\%s\AppData\Local\Temp`},
		{"rclone.exe", `C:\PerfLogs`}, {"locker.exe", `C:\Windows\Temp`}, {"PsExec64.exe", `C:\Tools`},
	} {
		p.malware = append(p.malware, simFile{
			name: m.name, path: m.dir, sha1: hexString(r, 40), sha256: hexString(r, 64),
			size: 20000 + r.IntN(4000000),
		})
	}
	for i := 0; i < 24; i++ {
		p.publicIPs = append(p.publicIPs, struct{ ip, country string }{
			fmt.Sprintf("%d.%d.%d.%d", pick(r, []int{185, 45, 91, 103, 193, 146, 5, 194}), r.IntN(256), r.IntN(256), 1+r.IntN(254)),
			pick(r, countries),
		})
	}
	p.domains = []string{"login-micros0ft-secure.com", "contoso-payroll-update.net", "cdn-update-check.xyz", "sharepoint-docs-view.top", "teams-meeting-join.info", "invoice-portal-secure.biz"}
	p.apps = []simApp{{"Microsoft Exchange Online", 20893, 20893}, {"Microsoft SharePoint Online", 20892, 20892}, {"Microsoft OneDrive for Business", 15600, 15600}, {"Microsoft Teams", 28375, 28375}, {"Dropbox", 11627, 11627}, {"Box", 10489, 10489}, {"Salesforce", 11114, 11114}}
	for _, name := range []string{"Mail Sync Helper", "PDF Converter Pro", "Contoso HR Portal", "Calendar Assistant"} {
		p.oauthApps = append(p.oauthApps, map[string]any{"appId": newGUID(r), "objectId": newGUID(r), "displayName": name, "publisher": pick(r, []any{"Unverified", "Contoso Ltd", nil})})
	}
	for _, d := range p.domains {
		p.senders = append(p.senders, map[string]any{"displayName": pick(r, []string{"Payroll Department", "Microsoft 365", "IT Service Desk", "DocuSign", "Accounts Payable"}), "domainName": d, "emailAddress": pick(r, []string{"noreply", "payroll", "it-support", "billing"}) + "@" + d})
	}
	p.subjects = []string{"Action required: password expires today", "Invoice #INV-20431 overdue", "You have (3) new voice messages", "Updated payroll details for March", "Document shared with you: Q3 Budget.xlsx", "Urgent wire transfer request"}
	return p
}

// alertContext is what one alert's evidence is about.
type alertContext struct {
	user    simUser
	device  simDevice
	extIP   struct{ ip, country string }
	domain  string
	created time.Time
	file    simFile
}

func evidenceBase(typ string, c *alertContext, verdict string, r *rand.Rand) map[string]any {
	remediation := "none"
	if verdict == "malicious" && r.IntN(3) == 0 {
		remediation = pick(r, []string{"remediated", "prevented", "blocked"})
	}
	return map[string]any{
		"@odata.type":              "#microsoft.graph.security." + typ,
		"createdDateTime":          formatShortGraphTime(c.created.Add(time.Duration(r.IntN(900)) * time.Millisecond)),
		"verdict":                  verdict,
		"remediationStatus":        remediation,
		"remediationStatusDetails": nil,
		"roles":                    []string{},
		"detailedRoles":            []string{},
		"tags":                     []string{},
	}
}

func userAccount(u simUser, withCloudIDs bool) map[string]any {
	acc := map[string]any{
		"accountName":       u.accountName,
		"domainName":        strings.ToUpper(strings.Split(tenantDomain, ".")[0]),
		"userSid":           u.sid,
		"azureAdUserId":     nil,
		"userPrincipalName": nil,
		"displayName":       nil,
	}
	if withCloudIDs {
		acc["azureAdUserId"] = u.aadID
		acc["userPrincipalName"] = u.upn
		acc["displayName"] = u.displayName
	}
	return acc
}

func fileDetails(f simFile, userName string) map[string]any {
	path := f.path
	if strings.Contains(path, "%s") {
		path = fmt.Sprintf(path, userName)
	}
	d := map[string]any{
		"sha1": f.sha1, "sha256": f.sha256, "fileName": f.name, "filePath": path, "fileSize": f.size,
		"filePublisher": nil, "signer": nil, "issuer": nil,
	}
	if f.publisher != "" {
		d["filePublisher"] = f.publisher
	}
	return d
}

func deviceEvidence(c *alertContext, r *rand.Rand, primary bool) map[string]any {
	d := c.device
	ev := evidenceBase("deviceEvidence", c, pick(r, []string{"unknown", "unknown", "suspicious"}), r)
	if primary {
		ev["detailedRoles"] = []string{"PrimaryDevice"}
		if r.IntN(3) == 0 {
			ev["roles"] = []string{"compromised"}
		}
	}
	if d.server && r.IntN(2) == 0 {
		ev["tags"] = []string{"Production"}
	}
	var aad any
	if d.aadID != "" {
		aad = d.aadID
	}
	var vm any
	if d.vm != nil {
		vm = d.vm
	}
	logged := []map[string]any{}
	if !d.server || r.IntN(2) == 0 {
		logged = append(logged, map[string]any{"accountName": c.user.accountName, "domainName": strings.ToUpper(strings.Split(tenantDomain, ".")[0])})
	}
	for k, v := range map[string]any{
		"firstSeenDateTime": formatGraphTime(c.created.Add(-time.Duration(30+r.IntN(500)) * 24 * time.Hour)),
		"mdeDeviceId":       d.mdeID, "azureAdDeviceId": aad, "deviceDnsName": d.name + "." + tenantDomain,
		"hostName": d.name, "ntDomain": nil, "dnsDomain": tenantDomain,
		"osPlatform": d.osPlatform, "osBuild": d.osBuild, "version": d.version, "healthStatus": d.healthStatus,
		"riskScore": d.riskScore, "rbacGroupId": d.rbacID, "rbacGroupName": d.rbacName, "onboardingStatus": "onboarded",
		"defenderAvStatus": d.avStatus, "ipInterfaces": d.ips, "vmMetadata": vm, "loggedOnUsers": logged,
	} {
		ev[k] = v
	}
	return ev
}

func userEvidence(c *alertContext, r *rand.Rand, verdict string) map[string]any {
	ev := evidenceBase("userEvidence", c, verdict, r)
	ev["userAccount"] = userAccount(c.user, r.IntN(3) > 0)
	if verdict != "unknown" && r.IntN(2) == 0 {
		ev["roles"] = []string{"compromised"}
	}
	return ev
}

func processEvidence(c *alertContext, r *rand.Rand, image, parent simFile, cmd string, pid int, verdict string) map[string]any {
	ev := evidenceBase("processEvidence", c, verdict, r)
	started := c.created.Add(-time.Duration(60+r.IntN(600)) * time.Second)
	ev["processId"] = pid
	ev["parentProcessId"] = 1000 + r.IntN(9000)
	ev["processCommandLine"] = cmd
	ev["processCreationDateTime"] = formatGraphTime(started)
	ev["parentProcessCreationDateTime"] = formatGraphTime(started.Add(-time.Duration(r.IntN(3600)) * time.Second))
	ev["detectionStatus"] = pick(r, []string{"detected", "detected", "blocked", "prevented"})
	ev["mdeDeviceId"] = c.device.mdeID
	ev["imageFile"] = fileDetails(image, c.user.accountName)
	pf := fileDetails(parent, c.user.accountName)
	pf["sha1"], pf["sha256"] = nil, nil
	ev["parentProcessImageFile"] = pf
	ev["userAccount"] = userAccount(c.user, r.IntN(2) == 0)
	return ev
}

func fileEvidence(c *alertContext, r *rand.Rand, f simFile) map[string]any {
	ev := evidenceBase("fileEvidence", c, "malicious", r)
	ev["detectionStatus"] = pick(r, []string{"detected", "blocked", "prevented"})
	ev["mdeDeviceId"] = c.device.mdeID
	ev["fileDetails"] = fileDetails(f, c.user.accountName)
	return ev
}

func ipEvidence(c *alertContext, r *rand.Rand) map[string]any {
	ev := evidenceBase("ipEvidence", c, pick(r, []string{"suspicious", "malicious", "unknown"}), r)
	ev["ipAddress"] = c.extIP.ip
	ev["countryLetterCode"] = c.extIP.country
	if r.IntN(4) == 0 {
		ev["countryLetterCode"] = nil
	}
	return ev
}

func urlEvidence(c *alertContext, r *rand.Rand) map[string]any {
	ev := evidenceBase("urlEvidence", c, pick(r, []string{"suspicious", "malicious"}), r)
	ev["url"] = fmt.Sprintf("https://%s/%s?id=%s", c.domain, pick(r, []string{"login", "auth/verify", "docs/view", "download/invoice.zip"}), hexString(r, 12))
	return ev
}

func mailboxEvidence(c *alertContext, r *rand.Rand) map[string]any {
	ev := evidenceBase("mailboxEvidence", c, "unknown", r)
	ev["displayName"] = c.user.displayName
	ev["primaryAddress"] = c.user.upn
	ev["userAccount"] = userAccount(c.user, true)
	return ev
}

func analyzedMessageEvidence(p *pools, c *alertContext, r *rand.Rand) map[string]any {
	ev := evidenceBase("analyzedMessageEvidence", c, pick(r, []string{"malicious", "suspicious"}), r)
	sender := p.senders[r.IntN(len(p.senders))]
	networkID := newGUID(r)
	ev["networkMessageId"] = networkID
	ev["internetMessageId"] = fmt.Sprintf("<%s@%s>", hexString(r, 24), sender["domainName"])
	ev["recipientEmailAddress"] = c.user.upn
	ev["senderIp"] = c.extIP.ip
	ev["subject"] = pick(r, p.subjects)
	ev["language"] = pick(r, []string{"en", "en", "de", "fr"})
	ev["antiSpamDirection"] = pick(r, []string{"inbound", "inbound", "intraorg"})
	ev["deliveryAction"] = pick(r, []string{"delivered", "junked", "blocked", "replaced"})
	ev["deliveryLocation"] = pick(r, []string{"inbox", "junkFolder", "quarantine", "deletedFolder"})
	ev["attachmentsCount"] = r.IntN(3)
	ev["urlCount"] = 1 + r.IntN(4)
	ev["urls"] = []string{fmt.Sprintf("https://%s/%s", c.domain, hexString(r, 8))}
	ev["threats"] = []string{pick(r, []string{"Phish", "Malware", "Spam", "HighConfPhish"})}
	ev["threatDetectionMethods"] = []string{pick(r, []string{"urlDetonationReputation", "fileDetonation", "spoofDmarc", "advancedFilter"})}
	ev["receivedDateTime"] = formatGraphTime(c.created.Add(-time.Duration(5+r.IntN(120)) * time.Minute))
	ev["urn"] = fmt.Sprintf("urn:MailEntity:%s", hexString(r, 32))
	ev["p1Sender"] = sender
	ev["p2Sender"] = sender
	return ev
}

func mailClusterEvidence(c *alertContext, r *rand.Rand) map[string]any {
	ev := evidenceBase("mailClusterEvidence", c, "suspicious", r)
	ids := []string{newGUID(r), newGUID(r), newGUID(r)}
	ev["clusterBy"] = "Similar Sender & Subject"
	ev["clusterByValue"] = fmt.Sprintf("%s;%s", c.domain, hexString(r, 16))
	ev["emailCount"] = 3 + r.IntN(120)
	ev["networkMessageIds"] = ids
	ev["query"] = fmt.Sprintf(`(SenderIp:"%s") AND (Date > %s)`, c.extIP.ip, c.created.Add(-48*time.Hour).Format("2006-01-02"))
	ev["urn"] = fmt.Sprintf("urn:MailClusterEntity:%s", hexString(r, 32))
	return ev
}

func cloudApplicationEvidence(p *pools, c *alertContext, r *rand.Rand) map[string]any {
	app := pick(r, p.apps)
	ev := evidenceBase("cloudApplicationEvidence", c, "unknown", r)
	ev["appId"] = app.appID
	ev["displayName"] = app.name
	ev["instanceId"] = 0
	ev["instanceName"] = app.name
	ev["saasAppId"] = app.saasID
	return ev
}

func oauthApplicationEvidence(p *pools, c *alertContext, r *rand.Rand) map[string]any {
	ev := evidenceBase("oauthApplicationEvidence", c, pick(r, []string{"suspicious", "malicious"}), r)
	for k, v := range pick(r, p.oauthApps) {
		ev[k] = v
	}
	return ev
}

func registryKeyEvidence(c *alertContext, r *rand.Rand, key string) map[string]any {
	ev := evidenceBase("registryKeyEvidence", c, "suspicious", r)
	ev["registryHive"] = "HKEY_LOCAL_MACHINE"
	ev["registryKey"] = key
	return ev
}

func registryValueEvidence(c *alertContext, r *rand.Rand, key, name, value string) map[string]any {
	ev := evidenceBase("registryValueEvidence", c, "suspicious", r)
	ev["mdeDeviceId"] = c.device.mdeID
	ev["registryHive"] = "HKEY_LOCAL_MACHINE"
	ev["registryKey"] = key
	ev["registryValueName"] = name
	ev["registryValue"] = value
	ev["registryValueType"] = "String"
	return ev
}

func azureResourceEvidence(p *pools, c *alertContext, r *rand.Rand) map[string]any {
	name := pick(r, []string{"stcontosodata01", "kv-contoso-prod", "sql-contoso-hr"})
	typ := map[string]string{"stcontosodata01": "Microsoft.Storage/storageAccounts", "kv-contoso-prod": "Microsoft.KeyVault/vaults", "sql-contoso-hr": "Microsoft.Sql/servers"}[name]
	ev := evidenceBase("azureResourceEvidence", c, "unknown", r)
	ev["resourceId"] = fmt.Sprintf("/subscriptions/%s/resourceGroups/rg-data/providers/%s/%s", p.subID, typ, name)
	ev["resourceName"] = name
	ev["resourceType"] = typ
	return ev
}

func securityGroupEvidence(c *alertContext, r *rand.Rand) map[string]any {
	ev := evidenceBase("securityGroupEvidence", c, "suspicious", r)
	ev["displayName"] = pick(r, []string{"Domain Admins", "Enterprise Admins", "Backup Operators", "Finance-Approvers"})
	ev["securityGroupId"] = newGUID(r)
	return ev
}
