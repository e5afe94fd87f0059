package simulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/defenderbeat/defenderbeat/internal/eventhubfake"
)

// StreamingConfig turns on the tenant's Defender XDR Streaming API destination: an event hub,
// served by the Event Hubs fake (plain AMQP in the SDK's emulator mode, on 127.0.0.1), into
// which Advanced Hunting records arrive as Defender sends them: {"records":[…]} messages of
// one table each, at start and on every Tick.
type StreamingConfig struct {
	Hub               string // default "defender-streaming"
	Partitions        int    // default 4
	MessagesPerTick   int    // default: one message per table
	RecordsPerMessage int    // at most; default 8
	// Storage also writes every record to the Streaming API's other destination, a simulated
	// storage account (storage.go), as Defender does when both are configured.
	Storage bool
}

// StreamingTables are the Advanced Hunting tables the simulated tenant streams.
var StreamingTables = []string{
	"DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileEvents", "DeviceLogonEvents",
	"DeviceRegistryEvents", "DeviceEvents", "EmailEvents", "EmailUrlInfo", "IdentityLogonEvents",
	"CloudAppEvents", "AlertInfo", "AlertEvidence", "UrlClickEvents",
}

// streamer generates Streaming API messages and puts them on the hub's partitions.
type streamer struct {
	cfg     StreamingConfig
	hub     *eventhubfake.Server
	storage *blobService // nil unless cfg.Storage
	tenant  string
	now     func() time.Time

	mu      sync.Mutex
	r       *rand.Rand
	p       *pools
	next    int // the table of the next message
	report  int64
	records int
}

func startStreaming(cfg StreamingConfig, seed int64, tenant, addr string, now func() time.Time) (*streamer, error) {
	if cfg.Hub == "" {
		cfg.Hub = "defender-streaming"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 4
	}
	if cfg.MessagesPerTick <= 0 {
		cfg.MessagesPerTick = len(StreamingTables)
	}
	if cfg.RecordsPerMessage <= 0 {
		cfg.RecordsPerMessage = 8
	}
	hub, err := eventhubfake.Start(eventhubfake.Config{
		Namespace: "defenderbeat-simulator",
		Hubs:      []eventhubfake.HubConfig{{Name: cfg.Hub, Partitions: cfg.Partitions}},
	})
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x57ea))
	st := &streamer{cfg: cfg, hub: hub, tenant: tenant, now: now, r: r, p: newPools(r), report: 1000 + r.Int64N(9000)}
	if cfg.Storage {
		if st.storage, err = startBlobService(addr, now()); err != nil {
			_ = hub.Close()
			return nil, fmt.Errorf("simulated storage account: %w", err)
		}
	}
	return st, nil
}

// EventHubConnectionString is the simulated hub's namespace connection string (emulator mode:
// plain AMQP to 127.0.0.1); empty without StreamingConfig.
func (s *Server) EventHubConnectionString() string {
	if s.streaming == nil {
		return ""
	}
	return s.streaming.hub.ConnectionString("")
}

// EventHubName is the simulated Streaming API hub; empty without StreamingConfig.
func (s *Server) EventHubName() string {
	if s.streaming == nil {
		return ""
	}
	return s.streaming.cfg.Hub
}

// StreamedRecords counts the records put on the hub so far.
func (s *Server) StreamedRecords() int {
	if s.streaming == nil {
		return 0
	}
	s.streaming.mu.Lock()
	defer s.streaming.mu.Unlock()
	return s.streaming.records
}

// Stream puts n more messages on the hub (round robin over the tables and partitions).
func (s *Server) Stream(n int) error {
	if s.streaming == nil {
		return fmt.Errorf("simulator: streaming is not enabled")
	}
	return s.streaming.send(n)
}

func (st *streamer) send(n int) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := 0; i < n; i++ {
		table := StreamingTables[st.next%len(StreamingTables)]
		partition := fmt.Sprint(st.next % st.cfg.Partitions)
		st.next++
		count := 1 + st.r.IntN(st.cfg.RecordsPerMessage)
		body, err := st.message(table, count)
		if err != nil {
			return err
		}
		if err := st.hub.Send(st.cfg.Hub, partition, body); err != nil {
			return err
		}
		if st.storage != nil {
			if err := st.storage.appendRecords(table, st.tenant, st.now(), body); err != nil {
				return err
			}
		}
		st.records += count
	}
	return nil
}

func (st *streamer) close() {
	_ = st.hub.Close()
	if st.storage != nil {
		st.storage.close()
	}
}

// StorageConnectionString is the simulated storage account's connection string (plain HTTP to
// 127.0.0.1); empty unless StreamingConfig.Storage.
func (s *Server) StorageConnectionString() string {
	if s.streaming == nil || s.streaming.storage == nil {
		return ""
	}
	return s.streaming.storage.connectionString()
}

// PutGeneratedBlob adds to the simulated storage account a blob of n lines of lineLen bytes
// each (line break included), line(i) making line i as it is read: a blob of any size that
// costs the simulator no memory, for measurements. It needs StreamingConfig.Storage.
func (s *Server) PutGeneratedBlob(container, name string, n, lineLen int64, line func(i int64) []byte) error {
	if s.streaming == nil || s.streaming.storage == nil {
		return fmt.Errorf("simulator: the storage destination is not enabled")
	}
	s.streaming.storage.putBlob(container, name, &generatedBlob{lines: n, lineLen: lineLen, line: line})
	return nil
}

// message is one Streaming API message: records of one table, as Defender batches them.
func (st *streamer) message(table string, count int) ([]byte, error) {
	now := st.now().UTC()
	records := make([]any, count)
	for i := range records {
		at := now.Add(-time.Duration(30+st.r.IntN(240)) * time.Second)
		st.report++
		props := st.properties(table, at)
		props["Timestamp"] = adTime(at)
		if _, ok := props["ReportId"]; !ok && !strings.HasPrefix(table, "Alert") {
			props["ReportId"] = st.report
		}
		records[i] = map[string]any{
			"time":          adTime(now.Add(time.Duration(st.r.IntN(900)) * time.Millisecond)),
			"tenantId":      st.tenant,
			"operationName": "Publish",
			"category":      "AdvancedHunting-" + table,
			"properties":    props,
			"Tenant":        "DefaultTenant",
		}
	}
	return json.Marshal(map[string]any{"records": records})
}

// adTime is how Advanced Hunting writes times: UTC with seven fractional digits.
func adTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000Z") }

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (st *streamer) properties(table string, at time.Time) map[string]any {
	r, p := st.r, st.p
	dev := pick(r, p.devices)
	user := pick(r, p.users)
	ext := pick(r, p.publicIPs)
	initiating := func(m map[string]any) map[string]any {
		parent := p.binaries[pick(r, []string{"explorer.exe", "cmd.exe", "WINWORD.EXE", "powershell.exe"})]
		proc := p.binaries[pick(r, []string{"powershell.exe", "cmd.exe", "rundll32.exe", "certutil.exe", "wmic.exe"})]
		m["DeviceId"], m["DeviceName"] = dev.mdeID, dev.name+"."+tenantDomain
		m["InitiatingProcessAccountDomain"] = strings.ToLower(strings.Split(tenantDomain, ".")[0])
		m["InitiatingProcessAccountName"] = user.accountName
		m["InitiatingProcessAccountSid"] = user.sid
		m["InitiatingProcessAccountUpn"] = user.upn
		m["InitiatingProcessAccountObjectId"] = user.aadID
		m["InitiatingProcessFileName"] = proc.name
		m["InitiatingProcessFolderPath"] = strings.ToLower(proc.path + `\` + proc.name)
		m["InitiatingProcessSHA1"], m["InitiatingProcessSHA256"] = proc.sha1, proc.sha256
		m["InitiatingProcessMD5"] = hexString(r, 32)
		m["InitiatingProcessId"] = 1000 + r.IntN(20000)
		m["InitiatingProcessCommandLine"] = proc.name
		m["InitiatingProcessCreationTime"] = adTime(at.Add(-time.Duration(r.IntN(3600)) * time.Second))
		m["InitiatingProcessParentFileName"] = parent.name
		m["InitiatingProcessParentId"] = 500 + r.IntN(9000)
		m["InitiatingProcessIntegrityLevel"] = pick(r, []string{"Medium", "High", "System"})
		m["InitiatingProcessTokenElevation"] = pick(r, []string{"TokenElevationTypeDefault", "TokenElevationTypeFull", "TokenElevationTypeLimited"})
		m["InitiatingProcessVersionInfoCompanyName"] = proc.publisher
		m["InitiatingProcessVersionInfoProductName"] = "Microsoft® Windows® Operating System"
		m["MachineGroup"] = dev.rbacName
		return m
	}
	switch table {
	case "DeviceProcessEvents":
		f := p.binaries[pick(r, []string{"whoami.exe", "net.exe", "reg.exe", "powershell.exe", "certutil.exe"})]
		return initiating(map[string]any{
			"ActionType": "ProcessCreated", "FileName": f.name, "FolderPath": f.path + `\` + f.name,
			"SHA1": f.sha1, "SHA256": f.sha256, "MD5": hexString(r, 32), "FileSize": f.size,
			"ProcessId": 1000 + r.IntN(30000), "ProcessCommandLine": pick(r, []string{f.name + " /all", `"` + f.name + `" -urlcache -f http://` + pick(r, p.domains) + `/a.bin`, f.name + " user /domain"}),
			"ProcessCreationTime": adTime(at), "ProcessIntegrityLevel": "Medium", "ProcessTokenElevation": "TokenElevationTypeDefault",
			"ProcessVersionInfoCompanyName": f.publisher, "ProcessVersionInfoOriginalFileName": f.name,
			"AccountDomain": "contoso", "AccountName": user.accountName, "AccountSid": user.sid, "AccountUpn": user.upn,
			"AccountObjectId": user.aadID, "LogonId": 100000 + r.IntN(900000), "AdditionalFields": nil,
		})
	case "DeviceNetworkEvents":
		return initiating(map[string]any{
			"ActionType": pick(r, []string{"ConnectionSuccess", "ConnectionSuccess", "ConnectionFailed", "InboundConnectionAccepted"}),
			"RemoteIP":   ext.ip, "RemotePort": pick(r, []int{443, 80, 445, 3389, 8080}), "RemoteUrl": pick(r, p.domains),
			"LocalIP": dev.ips[0], "LocalPort": 49152 + r.IntN(16000), "Protocol": "Tcp",
			"LocalIPType": "Private", "RemoteIPType": "Public", "AdditionalFields": nil,
		})
	case "DeviceFileEvents":
		m := pick(r, p.malware)
		return initiating(map[string]any{
			"ActionType": pick(r, []string{"FileCreated", "FileModified", "FileRenamed", "FileDeleted"}),
			"FileName":   m.name, "FolderPath": strings.ReplaceAll(m.path, "%s", user.accountName) + `\` + m.name,
			"SHA1": m.sha1, "SHA256": m.sha256, "MD5": hexString(r, 32), "FileSize": m.size,
			"FileOriginUrl": "https://" + pick(r, p.domains) + "/dl/" + m.name, "FileOriginIP": ext.ip,
			"PreviousFileName": nil, "PreviousFolderPath": nil, "RequestProtocol": "Local",
			"RequestAccountName": user.accountName, "RequestAccountDomain": "contoso", "RequestAccountSid": user.sid,
			"ShareName": nil, "SensitivityLabel": nil, "IsAzureInfoProtectionApplied": false,
		})
	case "DeviceLogonEvents":
		success := r.IntN(4) > 0
		m := initiating(map[string]any{
			"ActionType":    map[bool]string{true: "LogonSuccess", false: "LogonFailed"}[success],
			"LogonType":     pick(r, []string{"Interactive", "RemoteInteractive", "Network", "Unlock"}),
			"AccountDomain": "contoso", "AccountName": user.accountName, "AccountSid": user.sid,
			"Protocol": pick(r, []string{"Kerberos", "NTLM", "Negotiate"}), "IsLocalAdmin": r.IntN(5) == 0,
			"LogonId": 100000 + r.IntN(900000), "RemoteDeviceName": pick(r, p.devices).name, "RemoteIP": ext.ip,
			"RemoteIPType": "Public", "RemotePort": 49152 + r.IntN(16000), "FailureReason": nil,
			"AdditionalFields": jsonText(map[string]any{"IsLocalLogon": r.IntN(2) == 0}),
		})
		if !success {
			m["FailureReason"] = pick(r, []string{"InvalidUserNameOrPassword", "AccountLocked", "UserLogonTypeNotGranted"})
		}
		return m
	case "DeviceRegistryEvents":
		return initiating(map[string]any{
			"ActionType":        pick(r, []string{"RegistryValueSet", "RegistryKeyCreated", "RegistryValueDeleted"}),
			"RegistryKey":       `HKEY_CURRENT_USER\` + user.sid + `\SOFTWARE\Microsoft\Windows\CurrentVersion\Run`,
			"RegistryValueType": "String", "RegistryValueName": pick(r, []string{"Updater", "OneDriveSync", "svchost32"}),
			"RegistryValueData":         `C:\ProgramData\Microsoft\Crypto\svchost32.exe`,
			"PreviousRegistryValueName": nil, "PreviousRegistryValueData": nil,
		})
	case "DeviceEvents":
		m := pick(r, p.malware)
		action := pick(r, []string{"AntivirusDetection", "PowerShellCommand", "DnsQueryResponse", "ExploitGuardNetworkProtectionBlocked", "UsbDriveMounted"})
		ev := initiating(map[string]any{"ActionType": action, "FileName": nil, "FolderPath": nil, "SHA1": nil, "RemoteUrl": nil, "RemoteIP": nil,
			"AccountName": user.accountName, "AccountDomain": "contoso", "AccountSid": user.sid, "ProcessCommandLine": nil})
		switch action {
		case "AntivirusDetection":
			ev["FileName"], ev["FolderPath"], ev["SHA1"] = m.name, m.path+`\`+m.name, m.sha1
			ev["AdditionalFields"] = jsonText(map[string]any{"ThreatName": "HackTool:Win32/Mimikatz!pz", "WasRemediated": true, "WasExecutingWhileDetected": false})
		case "PowerShellCommand":
			ev["AdditionalFields"] = jsonText(map[string]any{"Command": pick(r, []string{"Invoke-WebRequest", "Get-ADUser", "Set-MpPreference"})})
		case "DnsQueryResponse":
			ev["AdditionalFields"] = jsonText(map[string]any{"DnsQueryString": pick(r, p.domains), "DnsQueryResult": []any{map[string]any{"DnsQueryType": 1, "IP": ext.ip}}})
		case "ExploitGuardNetworkProtectionBlocked":
			ev["RemoteUrl"], ev["RemoteIP"] = pick(r, p.domains), ext.ip
			ev["AdditionalFields"] = jsonText(map[string]any{"ResponseCategory": "CustomBlockList", "IsAudit": false})
		default:
			ev["AdditionalFields"] = jsonText(map[string]any{"DriveLetter": "E:", "ProductName": "USB DISK 3.0", "Manufacturer": "Kingston", "Volume": "E"})
		}
		return ev
	case "EmailEvents", "EmailUrlInfo", "UrlClickEvents":
		return st.emailProperties(table, user, ext.ip)
	case "IdentityLogonEvents":
		target := pick(r, p.devices)
		return map[string]any{
			"ActionType":  pick(r, []string{"LogonSuccess", "LogonSuccess", "LogonFailed"}),
			"Application": pick(r, []string{"Active Directory", "Microsoft 365"}), "LogonType": pick(r, []string{"Resource access", "Credentials validation", "Interactive"}),
			"Protocol": pick(r, []any{"Kerberos", "Ntlm", nil}), "FailureReason": nil,
			"AccountName": user.accountName, "AccountDomain": tenantDomain, "AccountUpn": user.upn, "AccountSid": user.sid,
			"AccountObjectId": user.aadID, "AccountDisplayName": user.displayName,
			"DeviceName": dev.name, "DeviceType": "Desktop", "OSPlatform": dev.osPlatform, "IPAddress": dev.ips[0], "Port": 49152 + r.IntN(16000),
			"DestinationDeviceName": target.name + "." + tenantDomain, "DestinationIPAddress": target.ips[0], "DestinationPort": 88,
			"TargetDeviceName": nil, "TargetAccountDisplayName": nil, "Location": ext.country, "ISP": nil,
			"AdditionalFields": jsonText(map[string]any{"Spns": "krbtgt/" + strings.ToUpper(tenantDomain)}),
		}
	case "CloudAppEvents":
		app := pick(r, p.apps)
		action := pick(r, []string{"FileDownloaded", "MailItemsAccessed", "FileAccessed", "New-InboxRule", "Add member to role."})
		return map[string]any{
			"ActionType": action, "Application": app.name, "ApplicationId": app.appID,
			"AccountObjectId": user.aadID, "AccountId": user.aadID, "AccountDisplayName": user.displayName, "AccountType": "Regular",
			"IsExternalUser": false, "IsImpersonated": false, "IsAdminOperation": strings.HasPrefix(action, "Add"),
			"DeviceType": "Desktop", "OSPlatform": "Windows 10", "IPAddress": ext.ip, "IsAnonymousProxy": false,
			"CountryCode": ext.country, "City": nil, "Isp": "Example Networks", "IPTags": nil, "IPCategory": nil,
			"UserAgent":     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			"UserAgentTags": nil, "ActivityType": "Basic",
			"ActivityObjects": []any{map[string]any{"Type": "User", "Role": "Actor", "Name": user.displayName, "Id": user.aadID}},
			"ObjectName":      "Q3 Budget.xlsx", "ObjectType": "File", "ObjectId": newGUID(r),
			"RawEventData":     map[string]any{"Operation": action, "UserId": user.upn, "ClientIP": ext.ip, "Workload": "SharePoint", "RecordType": 6},
			"AdditionalFields": nil,
		}
	case "AlertInfo", "AlertEvidence":
		return st.alertProperties(table, dev, user, ext.ip)
	}
	return map[string]any{}
}

func (st *streamer) emailProperties(table string, user simUser, ip string) map[string]any {
	r, p := st.r, st.p
	sender := pick(r, p.senders)
	msgID := newGUID(r)
	domain := fmt.Sprint(sender["domainName"])
	url := "https://" + domain + "/" + pick(r, []string{"login", "invoice/view", "s/doc"}) + "?id=" + hexString(r, 8)
	switch table {
	case "EmailUrlInfo":
		return map[string]any{"NetworkMessageId": msgID, "Url": url, "UrlDomain": domain, "UrlLocation": pick(r, []string{"Body", "Subject", "Attachment"})}
	case "UrlClickEvents":
		action := pick(r, []string{"ClickAllowed", "ClickBlocked", "ClickedThrough"})
		return map[string]any{
			"Url": url, "ActionType": action, "AccountUpn": user.upn, "Workload": pick(r, []string{"Email", "Teams", "Office"}),
			"NetworkMessageId": msgID, "IPAddress": ip, "ThreatTypes": pick(r, []any{"Phish", nil}),
			"DetectionMethods": pick(r, []any{jsonText([]string{"URL detonation reputation"}), nil}),
			"IsClickedThrough": action == "ClickedThrough", "UrlChain": jsonText([]string{url}),
		}
	}
	phish := r.IntN(3) == 0
	ev := map[string]any{
		"NetworkMessageId": msgID, "InternetMessageId": "<" + hexString(r, 16) + "@" + domain + ">",
		"SenderMailFromAddress": sender["emailAddress"], "SenderFromAddress": sender["emailAddress"], "SenderDisplayName": sender["displayName"],
		"SenderObjectId": nil, "SenderMailFromDomain": domain, "SenderFromDomain": domain, "SenderIPv4": pick(r, p.publicIPs).ip,
		"RecipientEmailAddress": user.upn, "RecipientObjectId": user.aadID, "Subject": pick(r, p.subjects),
		"EmailClusterId": 3000000000 + r.Int64N(999999999), "EmailDirection": "Inbound", "EmailLanguage": "en",
		"DeliveryAction": "Delivered", "DeliveryLocation": "Inbox/folder", "ThreatTypes": nil, "ThreatNames": nil,
		"DetectionMethods": nil, "ConfidenceLevel": nil, "BulkComplaintLevel": r.IntN(10),
		"EmailAction": nil, "EmailActionPolicy": nil, "EmailActionPolicyGuid": nil,
		"AuthenticationDetails": jsonText(map[string]any{"SPF": pick(r, []string{"pass", "fail", "softfail"}), "DKIM": "none", "DMARC": pick(r, []string{"pass", "fail"}), "CompAuth": "fail"}),
		"AttachmentCount":       r.IntN(3), "UrlCount": 1 + r.IntN(4), "Connectors": nil,
		"OrgLevelAction": nil, "OrgLevelPolicy": nil, "UserLevelAction": nil, "UserLevelPolicy": nil,
	}
	if phish {
		ev["DeliveryAction"], ev["DeliveryLocation"] = "Blocked", "Quarantine"
		ev["ThreatTypes"], ev["ThreatNames"] = "Phish", nil
		ev["DetectionMethods"] = jsonText(map[string]any{"Phish": []string{"URL detonation reputation", "Spoof DMARC"}})
		ev["ConfidenceLevel"] = jsonText(map[string]any{"Phish": "High", "Spam": "Normal"})
		ev["EmailAction"], ev["EmailActionPolicy"] = "Send to quarantine", "Antiphish"
	}
	return ev
}

func (st *streamer) alertProperties(table string, dev simDevice, user simUser, ip string) map[string]any {
	r := st.r
	tpl := pick(r, alertTemplates)
	id := tpl.idPrefix + fmt.Sprint(638000000000000000+r.Int64N(999999999999999))
	severity := pick(r, []string{"Low", "Medium", "High", "Informational"})
	service := map[string]string{"endpoint": "Microsoft Defender for Endpoint", "email": "Microsoft Defender for Office 365",
		"identity": "Microsoft Defender for Identity", "cloud": "Microsoft Defender for Cloud Apps"}[tpl.theme]
	techniques := jsonText(tpl.techniques)
	if table == "AlertInfo" {
		return map[string]any{"AlertId": id, "Title": tpl.title, "Category": tpl.category, "Severity": severity,
			"ServiceSource": service, "DetectionSource": pick(r, []string{"EDR", "Antivirus", "Custom detection", "Microsoft Defender for Office 365"}),
			"AttackTechniques": techniques}
	}
	ev := map[string]any{"AlertId": id, "Title": tpl.title, "Categories": jsonText([]string{tpl.category}), "AttackTechniques": techniques,
		"ServiceSource": service, "DetectionSource": "EDR", "Severity": severity,
		"EntityType": pick(r, []string{"Machine", "User", "Process", "File", "Ip", "Url"}), "EvidenceRole": pick(r, []string{"Impacted", "Related"}),
		"EvidenceDirection": nil, "FileName": nil, "FolderPath": nil, "SHA1": nil, "SHA256": nil, "FileSize": nil, "ThreatFamily": nil,
		"RemoteIP": nil, "RemoteUrl": nil, "AccountName": nil, "AccountDomain": nil, "AccountSid": nil, "AccountObjectId": nil, "AccountUpn": nil,
		"DeviceId": nil, "DeviceName": nil, "LocalIP": nil, "NetworkMessageId": nil, "EmailSubject": nil, "ApplicationId": nil, "Application": nil,
		"ProcessCommandLine": nil, "RegistryKey": nil, "RegistryValueName": nil, "RegistryValueData": nil, "AdditionalFields": nil}
	switch ev["EntityType"] {
	case "Machine":
		ev["DeviceId"], ev["DeviceName"], ev["LocalIP"] = dev.mdeID, dev.name+"."+tenantDomain, dev.ips[0]
		ev["AdditionalFields"] = jsonText(map[string]any{"HostName": dev.name, "OSFamily": "Windows", "RiskScore": dev.riskScore})
	case "User":
		ev["AccountName"], ev["AccountDomain"], ev["AccountSid"], ev["AccountObjectId"], ev["AccountUpn"] = user.accountName, "contoso", user.sid, user.aadID, user.upn
	case "Process", "File":
		f := pick(r, st.p.malware)
		ev["FileName"], ev["FolderPath"], ev["SHA1"], ev["SHA256"], ev["FileSize"] = f.name, f.path, f.sha1, f.sha256, f.size
		ev["DeviceId"], ev["DeviceName"] = dev.mdeID, dev.name+"."+tenantDomain
		if ev["EntityType"] == "Process" {
			ev["ProcessCommandLine"] = f.name + " -enc " + hexString(r, 24)
		}
	case "Ip":
		ev["RemoteIP"] = ip
	case "Url":
		ev["RemoteUrl"] = "https://" + pick(r, st.p.domains) + "/payload"
	}
	return ev
}
