package event

import (
	"slices"
	"strings"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

// The device family: the Device* tables of Defender for Endpoint and CloudProcessEvents (Defender
// for Cloud's container processes), as the integration's pipeline_device maps them.
var deviceFamily = &family{
	name: "device",
	columns: cols(
		"AadDeviceId", fAadDeviceID, asIs,
		"AccountDomain", fAccountDomain, asIs,
		"AccountName", fAccountName, asIs,
		"AccountObjectId", fAccountObjectID, asIs,
		"AccountSid", fAccountSid, asIs,
		"AccountUpn", fAccountUpn, asIs,
		"ActionType", fActionType, asIs,
		"AdditionalFields", fAdditionalFields, jsonText,
		"AppGuardContainerId", fAppGuardContainerID, asIs,
		"AssetValue", fAssetValue, asIs,
		"AwsResourceName", fAwsResourceName, asIs,
		"AzureResourceId", fAzureResourceID, asIs,
		"CertificateCountersignatureTime", fCertCountersignatureTime, toDate,
		"CertificateCreationTime", fCertCreationTime, toDate,
		"CertificateExpirationTime", fCertExpirationTime, toDate,
		"CertificateSerialNumber", fCertSerialNumber, asIs,
		"ClientVersion", fClientVersion, asIs,
		"ConnectedNetworks", fConnectedNetworks, jsonText,
		"ContainerId", fContainerID, asIs,
		"ContainerImageName", fContainerImageName, asIs,
		"ContainerName", fContainerName, asIs,
		"CrlDistributionPointUrls", fCrlDistributionPointUrls, jsonText,
		"DefaultGateways", fDefaultGateways, jsonText,
		"DeviceCategory", fDeviceCategory, asIs,
		"DeviceDynamicTags", fDeviceDynamicTags, asIs,
		"DeviceId", fDeviceID, asIs,
		"DeviceManualTags", fDeviceManualTags, asIs,
		"DeviceName", fDeviceName, asIs,
		"DeviceSubType", fDeviceSubType, asIs,
		"DeviceType", fDeviceType, asIs,
		"DnsAddresses", fDNSAddresses, jsonText,
		"ExclusionReason", fExclusionReason, asIs,
		"ExposureLevel", fExposureLevel, asIs,
		"FailureReason", fFailureReason, asIs,
		"FileName", fFileName, asIs,
		"FileOriginIP", fFileOriginIP, toIP,
		"FileOriginReferrerUrl", fFileOriginReferrerURL, asIs,
		"FileOriginUrl", fFileOriginURL, asIs,
		"FileSize", fFileSize, toLong,
		"FolderPath", fFolderPath, asIs,
		"GcpFullResourceName", fGcpFullResourceName, asIs,
		"InitiatingProcessAccountDomain", fIPAccountDomain, asIs,
		"InitiatingProcessAccountName", fIPAccountName, asIs,
		"InitiatingProcessAccountObjectId", fIPAccountObjectID, asIs,
		"InitiatingProcessAccountSid", fIPAccountSid, asIs,
		"InitiatingProcessAccountUpn", fIPAccountUpn, asIs,
		"InitiatingProcessCommandLine", fIPCommandLine, asIs,
		"InitiatingProcessCreationTime", fIPCreationTime, toDate,
		"InitiatingProcessFileName", fIPFileName, asIs,
		"InitiatingProcessFileSize", fIPFileSize, toLong,
		"InitiatingProcessFolderPath", fIPFolderPath, asIs,
		"InitiatingProcessId", fIPID, toLong,
		"InitiatingProcessIntegrityLevel", fIPIntegrityLevel, asIs,
		"InitiatingProcessLogonId", fIPLogonID, toString,
		"InitiatingProcessMD5", fIPMD5, asIs,
		"InitiatingProcessParentCreationTime", fIPParentCreationTime, toDate,
		"InitiatingProcessParentFileName", fIPParentFileName, asIs,
		"InitiatingProcessParentId", fIPParentID, toLong,
		"InitiatingProcessSHA1", fIPSHA1, asIs,
		"InitiatingProcessSHA256", fIPSHA256, asIs,
		"InitiatingProcessSignatureStatus", fIPSignatureStatus, asIs,
		"InitiatingProcessSignerType", fIPSignerType, asIs,
		"InitiatingProcessTokenElevation", fIPTokenElevation, asIs,
		"InitiatingProcessVersionInfoCompanyName", fIPVersionCompany, asIs,
		"InitiatingProcessVersionInfoFileDescription", fIPVersionDescription, asIs,
		"InitiatingProcessVersionInfoInternalFileName", fIPVersionInternalName, asIs,
		"InitiatingProcessVersionInfoOriginalFileName", fIPVersionOriginalName, asIs,
		"InitiatingProcessVersionInfoProductName", fIPVersionProduct, asIs,
		"InitiatingProcessVersionInfoProductVersion", fIPVersionProductVersion, asIs,
		"IPAddresses", fIPAddresses, jsonText,
		"IPv4Dhcp", fIPv4Dhcp, toIP,
		"IPv6Dhcp", fIPv6Dhcp, toIP,
		"IsAzureADJoined", fIsAzureADJoined, truthy,
		"IsAzureInfoProtectionApplied", fIsAzureInfoProtection, truthy,
		"IsExcluded", fIsExcluded, truthy,
		"IsInternetFacing", fIsInternetFacing, truthy,
		"IsLocalAdmin", fIsLocalAdmin, truthy,
		"IsRootSignerMicrosoft", fIsRootSignerMicrosoft, truthy,
		"IsSigned", fIsSigned, truthy,
		"IsTrusted", fIsTrusted, truthy,
		"Issuer", fIssuer, asIs,
		"IssuerHash", fIssuerHash, asIs,
		"JoinType", fJoinType, asIs,
		"KubernetesNamespace", fKubernetesNamespace, asIs,
		"KubernetesPodName", fKubernetesPodName, asIs,
		"KubernetesResource", fKubernetesResource, asIs,
		"LocalIP", fLocalIP, toIP,
		"LocalIPType", fLocalIPType, asIs,
		"LocalPort", fLocalPort, toLong,
		"LogonId", fLogonID, toString,
		"LogonType", fLogonType, asIs,
		"MD5", fMD5, asIs,
		"MacAddress", fMacAddress, asIs,
		"MachineGroup", fMachineGroup, asIs,
		"MergedDeviceIds", fMergedDeviceIDs, asIs,
		"MergedToDeviceId", fMergedToDeviceID, asIs,
		"Model", fModel, asIs,
		"NetworkAdapterStatus", fNetworkAdapterStatus, asIs,
		"NetworkAdapterType", fNetworkAdapterType, asIs,
		"NetworkAdapterVendor", fNetworkAdapterVendor, asIs,
		"OSArchitecture", fOSArchitecture, asIs,
		"OSBuild", fOSBuild, toString,
		"OSDistribution", fOSDistribution, asIs,
		"OSPlatform", fOSPlatform, asIs,
		"OSVersion", fOSVersion, asIs,
		"OSVersionInfo", fOSVersionInfo, asIs,
		"OnboardingStatus", fOnboardingStatus, asIs,
		"ParentProcessId", fParentProcessID, toLong,
		"ParentProcessName", fParentProcessName, asIs,
		"PreviousFileName", fPreviousFileName, asIs,
		"PreviousFolderPath", fPreviousFolderPath, asIs,
		"PreviousRegistryKey", fPreviousRegistryKey, asIs,
		"PreviousRegistryValueData", fPreviousRegistryValueData, asIs,
		"PreviousRegistryValueName", fPreviousRegistryValueName, asIs,
		"ProcessCommandLine", fProcessCommandLine, asIs,
		"ProcessCreationTime", fProcessCreationTime, toDate,
		"ProcessCurrentWorkingDirectory", fProcessCurrentWorkingDir, asIs,
		"ProcessId", fProcessID, toLong,
		"ProcessIntegrityLevel", fProcessIntegrityLevel, asIs,
		"ProcessName", fProcessName, asIs,
		"ProcessTokenElevation", fProcessTokenElevation, asIs,
		"ProcessVersionInfoCompanyName", fProcessVersionCompany, asIs,
		"ProcessVersionInfoFileDescription", fProcessVersionDescription, asIs,
		"ProcessVersionInfoInternalFileName", fProcessVersionInternalName, asIs,
		"ProcessVersionInfoOriginalFileName", fProcessVersionOriginalName, asIs,
		"ProcessVersionInfoProductName", fProcessVersionProduct, asIs,
		"ProcessVersionInfoProductVersion", fProcessVersionProductVersion, asIs,
		"Protocol", fProtocol, asIs,
		"PublicIP", fPublicIP, toIP,
		"RegistryDeviceTag", fRegistryDeviceTag, asIs,
		"RegistryKey", fRegistryKey, asIs,
		"RegistryValueData", fRegistryValueData, asIs,
		"RegistryValueName", fRegistryValueName, asIs,
		"RegistryValueType", fRegistryValueType, asIs,
		"RemoteDeviceName", fRemoteDeviceName, asIs,
		"RemoteIP", fRemoteIP, toIP,
		"RemoteIPType", fRemoteIPType, asIs,
		"RemotePort", fRemotePort, toLong,
		"RemoteUrl", fRemoteURL, asIs,
		"ReportId", fReportID, toString,
		"RequestAccountDomain", fRequestAccountDomain, asIs,
		"RequestAccountName", fRequestAccountName, asIs,
		"RequestAccountSid", fRequestAccountSid, asIs,
		"RequestProtocol", fRequestProtocol, asIs,
		"RequestSourceIP", fRequestSourceIP, toIP,
		"RequestSourcePort", fRequestSourcePort, toLong,
		"SHA1", fSHA1, asIs,
		"SHA256", fSHA256, asIs,
		"SensitivityLabel", fSensitivityLabel, asIs,
		"SensitivitySubLabel", fSensitivitySubLabel, asIs,
		"SensorHealthState", fSensorHealthState, asIs,
		"ShareName", fShareName, asIs,
		"SignatureType", fSignatureType, asIs,
		"Signer", fSigner, asIs,
		"SignerHash", fSignerHash, asIs,
		"TunnelType", fTunnelType, asIs,
		"Vendor", fVendor, asIs,
	),
	duplicates: []field{
		fFolderPath, fMD5, fSHA1, fSHA256, fFileName, fFileSize, fFileOriginReferrerURL,
		fDeviceName, fDeviceID, fProcessVersionCompany, fProcessVersionProduct,
		fProcessVersionProductVersion, fProcessVersionDescription, fIPFileName,
		fIPVersionProductVersion, fIPVersionDescription, fIPVersionOriginalName, fIPFileSize,
		fIPVersionCompany, fIPVersionProduct, fIPFolderPath, fIPCommandLine, fIPMD5, fIPSHA1,
		fIPSHA256, fIPParentID, fIPID, fIPParentFileName, fIPParentCreationTime,
		fIPSignatureStatus, fRegistryKey, fRegistryValueName, fRegistryValueData, fPublicIP,
		fLocalIP, fRemoteIP, fRequestSourceIP, fLocalPort, fRemotePort, fRequestSourcePort,
		fAccountName, fAccountSid, fCertExpirationTime, fCertSerialNumber, fProtocol,
		fRequestProtocol, fRequestAccountDomain, fRequestAccountName, fOSArchitecture,
		fOSPlatform, fOSDistribution, fOSVersion, fDeviceType, fAccountDomain, fMacAddress,
		fClientVersion, fDeviceCategory, fActionType, fIsSigned, fSigner, fIssuer, fIsTrusted,
		fDNSQclassName, fDNSQuery, fDNSQtypeName, fDNSRcodeName, fDNSAnswers, fDNSHeaderFlags,
		fContainerID, fContainerImageName, fContainerName, fKubernetesNamespace,
		fKubernetesResource, fParentProcessID, fParentProcessName, fProcessCurrentWorkingDir,
		fProcessName,
	},
	mapRecord: mapDevice,
}

// deviceEventsMappingProcess are the DeviceEvents action types whose initiating process is the
// actor (process.*) rather than the parent of the process acted upon.
var deviceEventsMappingProcess = map[string]bool{
	"namedpipeevent": true, "dpapiaccessed": true, "ntallocatevirtualmemoryapicall": true,
	"getclipboarddata": true, "ntprotectvirtualmemoryapicall": true, "browserlaunchedtoopenurl": true,
	"processprimarytokenmodified": true, "powershellcommand": true, "clrunbackedmoduleloaded": true,
	"ldapsearch": true, "dnsqueryresponse": true, "ntallocatevirtualmemoryremoteapicall": true,
	"memoryremoteprotect": true, "screenshottaken": true, "antivirusscancompleted": true,
	"exploitguardwin32systemcallblocked": true, "getasynckeystateapicall": true,
	"appguardcreatecontainer": true, "exploitguardacgenforced": true,
	"writetolsassprocessmemory": true, "antivirusscancancelled": true,
	"controlflowguardviolation": true, "appcontrolpolicyapplied": true,
	"createremotethreadapicall": true, "auditpolicymodification": true,
	"ntmapviewofsectionremoteapicall": true, "appguardlaunchedwithurl": true,
	"appguardresumecontainer": true, "smartscreenurlwarning": true, "appguardbrowsetourl": true,
	"otheralertrelatedactivity": true, "antivirusscanfailed": true,
}

// remoteAPICalls act on another process, which becomes Target.process.
var remoteAPICalls = map[string]bool{
	"createremotethreadapicall": true, "readprocessmemoryapicall": true,
	"ntallocatevirtualmemoryremoteapicall": true, "openprocessapicall": true,
}

var registryHives = map[string]string{
	"HKEY_CURRENT_USER":   "HKCU",
	"HKEY_LOCAL_MACHINE":  "HKLM",
	"HKEY_USERS":          "HKU",
	"HKEY_CLASSES_ROOT":   "HKCR",
	"HKEY_CURRENT_CONFIG": "HKCC",
}

// deviceRecord holds what the device mapping decides once and consults throughout.
type deviceRecord struct {
	*record
	table    string // the lowercased table name
	action   string // the lowercased ActionType as Defender wrote it
	mapsProc int8   // DeviceEvents only: 1 when the initiating process is the actor, -1 when it is the parent
}

func (d *deviceRecord) is(cat string) bool { return slices.Contains(d.categories, cat) }

func mapDevice(r *record) {
	d := &deviceRecord{record: r, table: strings.ToLower(strings.TrimPrefix(r.category, "AdvancedHunting-"))}
	d.action = strings.ToLower(r.str(fActionType))
	r.kind = "event"
	d.categorize()
	d.additionalFields()
	d.loggedOnUsers()
	d.adapterName()
	d.files()
	d.dlls()
	d.processes()
	d.container()
	d.host()
	d.registry()
	d.network()
	d.users()
	d.actionAndOutcome()
	d.splitArgs()
	d.relateAll()
}

func (d *deviceRecord) categorize() {
	a := d.action
	hasAction := d.has(fActionType)
	switch d.table {
	case "devicelogonevents":
		d.category_("authentication")
	case "deviceinfo":
		d.category_("host")
	case "deviceevents":
		if hasAction && !strings.HasSuffix(a, "apicall") && !strings.Contains(a, "driverload") {
			d.category_("host")
		}
		if hasAction && strings.HasSuffix(a, "apicall") {
			d.category_("api")
		}
	}
	if strings.Contains(a, "driverload") {
		d.category_("driver")
	}
	switch d.table {
	case "devicefileevents", "devicefilecertificateinfo":
		d.category_("file")
	case "deviceprocessevents", "cloudprocessevents":
		d.category_("process")
	case "deviceimageloadevents":
		d.category_("library")
	case "devicenetworkevents", "devicenetworkinfo":
		d.category_("network")
	case "deviceregistryevents":
		d.category_("registry")
	}

	if d.is("authentication") || d.is("host") || strings.Contains(a, "connectionfound") ||
		strings.Contains(a, "networksignatureinspected") {
		d.type_("info")
	}
	if d.is("file") {
		switch a {
		case "filedeleted":
			d.type_("deletion")
		case "filemodified", "filerenamed":
			d.type_("change")
		case "filecreated":
			d.type_("creation")
		}
		if len(d.types) == 0 {
			d.type_("info")
		}
	}
	if strings.Contains(a, "connectionsuccess") || strings.Contains(a, "driverload") {
		d.type_("start")
	}
	if strings.Contains(a, "connectionfailed") {
		d.type_("denied")
	}
	if strings.Contains(a, "connectionrequest") || strings.Contains(a, "listeningconnectioncreated") ||
		strings.Contains(a, "processcreated") || (hasAction && d.table == "deviceimageloadevents") {
		d.type_("start")
	}
	if strings.Contains(a, "inboundconnectionaccepted") {
		d.type_("start")
	}
	switch {
	case strings.Contains(a, "registrykeycreated"):
		d.type_("creation")
	case strings.Contains(a, "registrykeydeleted") || strings.Contains(a, "registryvaluedeleted"):
		d.type_("deletion")
	case strings.Contains(a, "registrykeyrenamed") || strings.Contains(a, "registryvalueset"):
		d.type_("change")
	}
	if strings.Contains(a, "imageloaded") {
		d.setField(fActionType, "load")
	}
	if d.is("network") && strings.Contains(a, "dnsconnectioninspected") {
		d.type_("protocol")
	}
	if d.is("api") && len(d.types) == 0 {
		switch {
		case strings.HasPrefix(a, "open"):
			d.type_("access")
		case strings.HasPrefix(a, "write"):
			d.type_("change")
		}
	}
	if len(d.types) == 0 && (d.is("network") || d.is("api")) {
		d.type_("info")
	}

	if d.table == "deviceevents" && hasAction {
		d.mapsProc = -1
		if deviceEventsMappingProcess[a] {
			d.mapsProc = 1
		}
	}
}

// additionalFields moves the connection direction, and for DNS inspections the DNS details, out
// of AdditionalFields, which otherwise stays as Defender wrote it.
func (d *deviceRecord) additionalFields() {
	af, ok := d.val(fAdditionalFields).(mapstr.M)
	if !ok {
		return
	}
	if dir, ok := af["direction"]; ok {
		delete(af, "direction")
		d.setField(fNetworkDirection, dir)
	}
	if d.is("network") && strings.Contains(d.action, "dnsconnectioninspected") {
		for key, f := range map[string]field{"qclass_name": fDNSQclassName, "query": fDNSQuery, "qtype_name": fDNSQtypeName, "rcode_name": fDNSRcodeName} {
			if v, ok := af[key]; ok {
				delete(af, key)
				d.setField(f, v)
			}
		}
		if answers, ok := af["answers"]; ok {
			delete(af, "answers")
			if s, ok := answers.(string); ok {
				if v, err := parseDocument([]byte(s)); err == nil {
					answers = generic(v)
				} else {
					d.fail("m365_defender.event.dns.answers: expected JSON text, got %q", s)
				}
			}
			answers, _ = dropEmpty(answers)
			d.setField(fDNSAnswers, answers)
		}
		var flags []string
		for _, flag := range []string{"AA", "TC", "RD", "RA", "AD", "CD", "DO"} {
			if af[flag] == "true" {
				flags = append(flags, flag)
			}
		}
		if len(flags) > 0 {
			d.setField(fDNSHeaderFlags, flags)
		}
	}
	if d.is("api") {
		for key, path := range map[string]string{
			"RegionSize":     "process.Ext.api.parameters.size",
			"ProtectionMask": "process.Ext.api.parameters.protection",
			"BaseAddress":    "process.Ext.api.parameters.address",
			"DesiredAccess":  "process.Ext.api.parameters.desired_access_numeric",
		} {
			if v, ok := af[key]; ok {
				delete(af, key)
				if key == "ProtectionMask" {
					v = text(v)
				}
				d.put(path, v)
			}
		}
	}
	if len(af) == 0 {
		d.del(fAdditionalFields)
	}
}

// loggedOnUsers turns DeviceInfo's LoggedOnUsers ([{"UserName": …}, …], as JSON text) into the
// list of user names.
func (d *deviceRecord) loggedOnUsers() {
	v := d.prop("LoggedOnUsers")
	if v.isNull() {
		return
	}
	users, ok, problem := d.convert(v, jsonText)
	if problem != "" {
		d.fail("m365_defender.event.active_users: expected JSON text, got %s", clip(v.raw))
	}
	list, isList := users.([]any)
	if !ok || !isList {
		return
	}
	var names []any
	for _, u := range list {
		if m, ok := u.(mapstr.M); ok {
			if name := text(m["UserName"]); name != "" {
				names = append(names, name)
				d.relate(relUser, name)
			}
		}
	}
	if len(names) > 0 {
		d.setField(fActiveUsers, names)
	}
}

// adapterName keeps a Windows adapter name without the braces around its GUID.
func (d *deviceRecord) adapterName() {
	name := d.src.text(d.prop("NetworkAdapterName"))
	if strings.HasPrefix(name, "{") && strings.HasSuffix(name, "}") {
		name = name[1 : len(name)-1]
	}
	if name != "" {
		d.setField(fNetworkAdapterName, name)
	}
}

func (d *deviceRecord) files() {
	if len(d.categories) > 0 && !d.is("process") && d.table != "deviceevents" {
		path := d.str(fFolderPath)
		d.put("file.path", path)
		if len(path) > 1 {
			idx := strings.LastIndexByte(path, '/')
			if strings.Contains(path, `\`) {
				idx = strings.LastIndexByte(path, '\\')
			}
			if idx > -1 {
				d.put("file.name", path[idx+1:])
				d.put("file.directory", path[:idx])
				if ext := strings.LastIndexByte(path, '.'); ext > -1 {
					d.put("file.extension", path[ext+1:])
				}
			}
		}
		d.putFrom("file.hash.md5", fMD5)
		d.putFrom("file.hash.sha1", fSHA1)
		d.putFrom("file.hash.sha256", fSHA256)
		d.putFrom("file.name", fFileName)
		d.putFrom("file.size", fFileSize)
	}
	d.putFrom("file.x509.not_after", fCertExpirationTime)
	d.putFrom("file.x509.serial_number", fCertSerialNumber)
	if issuer := d.val(fIssuer); issuer != nil {
		d.put("file.x509.issuer.common_name", []any{text(issuer)})
	}
	d.putFrom("file.code_signature.subject_name", fSigner)
	d.putFrom("file.code_signature.exists", fIsSigned)
	d.putFrom("file.code_signature.trusted", fIsTrusted)
}

func (d *deviceRecord) dlls() {
	switch {
	case d.table == "deviceimageloadevents" && len(d.categories) > 0:
		d.putFrom("dll.path", fFolderPath)
		d.putFrom("dll.Ext.size", fFileSize)
	case d.is("driver"):
		d.put("dll.path", joinPath(d.str(fFolderPath), d.str(fFileName)))
	default:
		return
	}
	d.putFrom("dll.hash.md5", fMD5)
	d.putFrom("dll.hash.sha1", fSHA1)
	d.putFrom("dll.hash.sha256", fSHA256)
	d.putFrom("dll.name", fFileName)
}

// processes maps the process and its initiating process. In process tables the row describes the
// created process, so the initiating process is its parent; elsewhere the initiating process is
// the actor, process.*, and its parent is process.parent.
func (d *deviceRecord) processes() {
	hasCat := len(d.categories) > 0
	api, driver, proc, library := d.is("api"), d.is("driver"), d.is("process"), d.is("library")
	deviceEvents := d.table == "deviceevents"

	asParent := hasCat && !api && !driver && (proc || d.mapsProc == -1)
	if asParent {
		if d.table != "deviceimageloadevents" {
			d.putFrom("process.executable", fFolderPath)
			d.putFrom("process.hash.md5", fMD5)
			d.putFrom("process.hash.sha1", fSHA1)
			d.putFrom("process.hash.sha256", fSHA256)
			d.putFrom("process.name", fFileName)
		}
		d.putFrom("process.parent.command_line", fIPCommandLine)
		d.putFrom("process.parent.hash.md5", fIPMD5)
		d.putFrom("process.parent.hash.sha1", fIPSHA1)
		d.putFrom("process.parent.hash.sha256", fIPSHA256)
		d.putFrom("process.parent.group_leader.pid", fIPParentID)
		d.putFrom("process.parent.pid", fIPID)
		d.putFrom("process.parent.start", fIPCreationTime)
		d.putFrom("process.parent.name", fIPFileName)
		d.putFrom("process.parent.executable", fIPFolderPath)
		d.putFrom("process.parent.group_leader.start", fIPParentCreationTime)
		d.putFrom("process.parent.group_leader.name", fIPParentFileName)
		d.putFrom("process.parent.pe.company", fIPVersionCompany)
		d.putFrom("process.parent.pe.description", fIPVersionDescription)
		d.putFrom("process.parent.pe.original_file_name", fIPVersionOriginalName)
		d.putFrom("process.parent.pe.product", fIPVersionProduct)
		d.putFrom("process.parent.pe.file_version", fIPVersionProductVersion)
		status := d.str(fIPSignatureStatus)
		d.put("process.parent.code_signature.status", status)
		switch status {
		case "Valid":
			d.put("process.parent.code_signature.exists", true)
			d.put("process.parent.code_signature.status", "trusted")
			d.put("process.parent.code_signature.trusted", true)
		case "Unsigned":
			d.put("process.parent.code_signature.exists", false)
			d.put("process.parent.code_signature.trusted", false)
		}
	}
	if hasCat && !api && !driver && (proc || deviceEvents || library) {
		d.putFrom("process.Ext.token.integrity_level_name", fIPIntegrityLevel)
	}
	if api {
		at := d.str(fActionType)
		if i := strings.LastIndex(strings.ToLower(at), "apicall"); i >= 0 {
			d.put("process.Ext.api.name", at[:i])
		}
		if remoteAPICalls[d.action] {
			d.putFrom("Target.process.name", fFileName)
			d.putFrom("Target.process.command_line", fProcessCommandLine)
			d.put("Target.process.executable", joinPath(d.str(fFolderPath), d.str(fFileName)))
		}
	}

	asActor := hasCat && (api || driver || (!proc && !deviceEvents) || d.mapsProc == 1)
	asActorWithImage := hasCat && (api || driver || (!library && !proc && !deviceEvents) || d.mapsProc == 1)
	if asActor {
		d.putFrom("process.command_line", fIPCommandLine)
		d.putFrom("process.parent.pid", fIPParentID)
		d.putFrom("process.pid", fIPID)
		d.putFrom("process.start", fIPCreationTime)
		d.putFrom("process.name", fIPFileName)
		d.putFrom("process.parent.start", fIPParentCreationTime)
		d.putFrom("process.parent.name", fIPParentFileName)
	}
	if asActorWithImage {
		d.putFrom("process.hash.md5", fIPMD5)
		d.putFrom("process.hash.sha1", fIPSHA1)
		d.putFrom("process.hash.sha256", fIPSHA256)
		d.putFrom("process.pe.company", fIPVersionCompany)
		d.putFrom("process.pe.description", fIPVersionDescription)
		d.putFrom("process.pe.original_file_name", fIPVersionOriginalName)
		d.putFrom("process.pe.product", fIPVersionProduct)
		d.putFrom("process.pe.file_version", fIPVersionProductVersion)
	}
	if hasCat && ((!proc && !deviceEvents) || d.mapsProc == 1) {
		d.putFrom("process.executable", fIPFolderPath)
	}
	if api || driver {
		d.put("process.executable", joinPath(d.str(fIPFolderPath), d.str(fIPFileName)))
		d.putFrom("process.group_leader.pid", fIPParentID)
		d.putFrom("process.group_leader.name", fIPParentFileName)
		d.putFrom("process.group_leader.start", fIPParentCreationTime)
	}
	if hasCat && (api || (!proc && !deviceEvents) || d.mapsProc == 1) {
		d.putFrom("process.code_signature.status", fIPSignatureStatus)
	}

	// The row's own process columns describe process.*, except in an API call on another process,
	// where they describe that process (Target.process) and process.* stays the caller.
	if api && remoteAPICalls[d.action] {
		return
	}
	d.putFrom("process.command_line", fProcessCommandLine)
	d.putFrom("process.start", fProcessCreationTime)
	d.putFrom("process.pid", fProcessID)
	d.putFrom("process.pe.company", fProcessVersionCompany)
	d.putFrom("process.pe.description", fProcessVersionDescription)
	d.putFrom("process.pe.original_file_name", fProcessVersionOriginalName)
	d.putFrom("process.pe.product", fProcessVersionProduct)
	d.putFrom("process.pe.file_version", fProcessVersionProductVersion)
}

// container maps the container and cloud columns of CloudProcessEvents; the values the row's
// process columns already gave are kept.
func (d *deviceRecord) container() {
	d.putFrom("container.id", fContainerID)
	d.putFrom("container.image.name", fContainerImageName)
	d.putFrom("container.name", fContainerName)
	d.putFrom("orchestrator.namespace", fKubernetesNamespace)
	d.putFrom("orchestrator.resource.name", fKubernetesResource)
	if d.has(fKubernetesNamespace) || d.has(fKubernetesPodName) || d.has(fKubernetesResource) {
		d.put("orchestrator.type", "kubernetes")
	}
	switch {
	case d.has(fAzureResourceID):
		d.put("cloud.provider", "azure")
	case d.has(fAwsResourceName):
		d.put("cloud.provider", "aws")
	case d.has(fGcpFullResourceName):
		d.put("cloud.provider", "gcp")
	}
	d.putIfAbsent("process.parent.pid", fParentProcessID)
	d.putIfAbsent("process.parent.name", fParentProcessName)
	d.putIfAbsent("process.name", fProcessName)
	d.putFrom("process.working_directory", fProcessCurrentWorkingDir)
}

// putIfAbsent copies a field to an ECS path unless the path already has a value.
func (r *record) putIfAbsent(path string, f field) {
	if r.get(path) == nil {
		r.putFrom(path, f)
	}
}

// get reads an ECS field back.
func (r *record) get(path string) any {
	v, err := r.ecs.GetValue(path)
	if err != nil {
		return nil
	}
	return v
}

func (d *deviceRecord) host() {
	d.put("host.name", strings.ToLower(d.str(fDeviceName)))
	d.putFrom("host.id", fDeviceID)
	if ip := d.str(fPublicIP); ip != "" {
		d.put("host.ip", []any{ip})
	}
	d.putFrom("host.architecture", fOSArchitecture)

	osType := ""
	platform := strings.ToLower(d.str(fOSPlatform))
	for _, t := range []string{"windows", "linux", "macos"} {
		if strings.Contains(platform, t) {
			osType = t
		}
	}
	ipSid, accountSid, requestSid := d.has(fIPAccountSid), d.has(fAccountSid), d.has(fRequestAccountSid)
	switch {
	case d.is("api") || d.is("registry") || d.is("library") || d.is("driver"),
		d.is("file") && (ipSid || requestSid),
		d.is("process") && ipSid,
		d.is("authentication") && (ipSid || accountSid),
		d.is("network") && ipSid:
		osType = "windows"
	}
	if osType == "" && d.posix() {
		osType = "unix"
	}
	d.put("host.os.type", osType)
	d.putFrom("host.os.full", fOSPlatform)
	d.putFrom("host.os.platform", fOSDistribution)
	d.putFrom("host.os.version", fOSVersion)
	d.putFrom("host.type", fDeviceType)

	if mac := d.str(fMacAddress); mac != "" {
		mac = strings.ToUpper(strings.NewReplacer(":", "-", ".", "-").Replace(mac))
		d.setField(fMacAddress, mac)
		d.put("host.mac", []any{ecsMAC(mac)})
	}
	d.putFrom("observer.version", fClientVersion)
	d.putFrom("observer.type", fDeviceCategory)
	d.putFrom("http.request.referrer", fFileOriginReferrerURL)
}

// posix reports a Linux or macOS sensor, which describes processes with POSIX attributes in
// AdditionalFields.
func (d *deviceRecord) posix() bool {
	af, _ := d.val(fAdditionalFields).(mapstr.M)
	for k := range af {
		if strings.HasPrefix(k, "ProcessPosix") || strings.HasPrefix(k, "InitiatingProcessPosix") {
			return true
		}
	}
	return false
}

func (d *deviceRecord) registry() {
	key := d.str(fRegistryKey)
	if key == "" {
		key = d.str(fPreviousRegistryKey)
	}
	if key == "" {
		return
	}
	hive := registryHives[strings.SplitN(key, `\`, 2)[0]]
	d.put("registry.hive", hive)
	key = strings.NewReplacer(`HKEY_CURRENT_USER\`, "", `HKEY_LOCAL_MACHINE\`, "").Replace(key)
	d.put("registry.key", key)
	name := d.str(fRegistryValueName)
	if name == "" {
		name = d.str(fPreviousRegistryValueName)
	}
	d.put("registry.value", name)
	if key != "" && name != "" {
		d.put("registry.path", hive+`\`+key+`\`+name)
	}
	var data []any
	for _, f := range []field{fRegistryValueData, fPreviousRegistryValueData} {
		if v := d.val(f); v != nil && !slices.Contains(data, any(text(v))) {
			data = append(data, text(v))
		}
	}
	if len(data) > 0 {
		d.put("registry.data.strings", data)
	}
	d.putFrom("registry.data.type", fRegistryValueType)
}

func (d *deviceRecord) network() {
	hasCat := len(d.categories) > 0
	auth, network, file := d.is("authentication"), d.is("network"), d.is("file")
	dir := d.str(fNetworkDirection)
	in, out, none := dir == "In", dir == "Out", !d.has(fNetworkDirection)

	var srcIP, srcPort, dstIP, dstPort any
	pick := func(cur *any, v any) {
		if v != nil {
			*cur = v
		}
	}
	if auth {
		pick(&srcIP, d.val(fRemoteIP))
	}
	if network && in {
		pick(&srcIP, d.val(fRemoteIP))
	}
	if hasCat && !auth && none {
		pick(&srcIP, d.val(fLocalIP))
	}
	if network && out {
		pick(&srcIP, d.val(fLocalIP))
	}
	if file {
		pick(&srcIP, d.val(fRequestSourceIP))
	}
	if network && in {
		pick(&srcPort, d.val(fRemotePort))
	}
	if auth {
		pick(&srcPort, d.val(fRemotePort))
	}
	if hasCat && !auth {
		pick(&srcPort, d.val(fLocalPort))
	}
	pick(&srcPort, d.val(fRequestSourcePort))
	if network && out {
		pick(&dstIP, d.val(fRemoteIP))
	}
	if hasCat && !auth && none {
		pick(&dstIP, d.val(fRemoteIP))
		pick(&dstPort, d.val(fRemotePort))
	}
	if network && in {
		pick(&dstIP, d.val(fLocalIP))
	}
	if network && out {
		pick(&dstPort, d.val(fRemotePort))
	}
	if network && in {
		pick(&dstPort, d.val(fLocalPort))
	}
	d.put("source.ip", srcIP)
	d.put("source.port", srcPort)
	d.putFrom("source.domain", fRemoteDeviceName)
	d.put("destination.ip", dstIP)
	if network {
		d.put("destination.address", dstIP)
	}
	d.put("destination.port", dstPort)

	if network && strings.Contains(d.action, "dnsconnectioninspected") {
		d.putFrom("dns.question.name", fDNSQuery)
		d.putFrom("dns.question.class", fDNSQclassName)
		d.putFrom("dns.question.type", fDNSQtypeName)
		d.putFrom("dns.response_code", fDNSRcodeName)
		d.put("dns.answers", dnsAnswers(d.val(fDNSAnswers)))
		d.putFrom("dns.header_flags", fDNSHeaderFlags)
	}

	protocol := d.str(fProtocol)
	if p := d.str(fRequestProtocol); p != "" {
		protocol = p
	}
	protocol = strings.ToLower(protocol)
	if strings.Contains(d.action, "dns") {
		protocol = "dns"
	}
	d.put("network.protocol", protocol)
	if network {
		switch {
		case in:
			d.put("network.direction", "inbound")
		case out:
			d.put("network.direction", "outbound")
		case none:
			d.put("network.direction", "unknown")
		}
	}
	d.uriParts(d.str(fRemoteURL))
}

func (d *deviceRecord) users() {
	actorTables := d.is("library") || d.is("registry") || d.is("network") || d.is("driver") || d.is("api")
	name := d.val(fAccountName)
	pick := func(cur *any, v any) {
		if v != nil {
			*cur = v
		}
	}
	pick(&name, d.val(fRequestAccountName))
	if name == nil && actorTables {
		name = d.val(fIPAccountName)
	}
	domain := d.val(fRequestAccountDomain)
	pick(&domain, d.val(fAccountDomain))
	if domain == nil && actorTables {
		domain = d.val(fIPAccountDomain)
	}
	id := d.val(fAccountSid)
	if id == nil && (actorTables || d.is("file")) {
		id = d.val(fIPAccountSid)
	}
	if id == nil && d.is("file") {
		id = d.val(fRequestAccountSid)
	}
	d.put("user.name", name)
	d.put("user.domain", domain)
	d.put("user.id", id)
}

func (d *deviceRecord) actionAndOutcome() {
	var action string
	switch {
	case d.is("file") && d.action == "filedeleted":
		action = "deletion"
	case d.is("file") && d.action == "filemodified":
		action = "modification"
	case d.is("file") && d.action == "filerenamed":
		action = "rename"
	case d.is("file") && d.action == "filecreated":
		action = "creation"
	case d.is("registry") && d.action == "registrykeycreated":
		action = "creation"
	case d.is("registry") && d.action == "registryvalueset":
		action = "modification"
	case d.is("driver"):
		action = "load"
	case d.is("process") && d.action == "processcreated":
		action = "start"
	case len(d.categories) > 0 && !d.is("file"):
		action = d.str(fActionType)
	}
	d.put("event.action", strings.ReplaceAll(strings.ToLower(action), " ", "-"))
	if d.table == "devicelogonevents" {
		if d.has(fFailureReason) {
			d.put("event.outcome", "failure")
		} else {
			d.put("event.outcome", "success")
		}
	}
}

func (d *deviceRecord) splitArgs() {
	proc, _ := d.ecs["process"].(mapstr.M)
	if proc == nil {
		return
	}
	putArgs(proc)
	if parent, ok := proc["parent"].(mapstr.M); ok {
		putArgs(parent)
	}
}

func putArgs(m mapstr.M) {
	cmd, _ := m["command_line"].(string)
	if cmd == "" {
		return
	}
	args := splitCommandLine(cmd)
	m["args"] = args
	m["args_count"] = int64(len(args))
}

func (d *deviceRecord) relateAll() {
	d.relate(relHosts, d.get("host.id"))
	d.relate(relHosts, d.get("host.name"))
	d.relate(relHosts, d.get("user.domain"))
	d.relate(relHosts, d.val(fIPAccountDomain))
	d.relate(relUser, d.get("user.name"))
	d.relate(relUser, d.val(fIPAccountName))
	d.relate(relIP, d.val(fFileOriginIP))
	d.relate(relIP, d.get("source.ip"))
	d.relate(relIP, d.get("destination.ip"))
	d.relateColumns(relIP, fPublicIP, fIPv4Dhcp, fIPv6Dhcp)
	for _, alg := range []string{"md5", "sha1", "sha256"} {
		d.relate(relHash, d.get("file.hash."+alg))
	}
	for _, alg := range []string{"md5", "sha1", "sha256"} {
		d.relate(relHash, d.get("process.hash."+alg))
	}
	for _, alg := range []string{"md5", "sha1", "sha256"} {
		if d.get("process.hash."+alg) != nil {
			d.relate(relHash, d.get("process.parent.hash."+alg))
		}
	}
	d.relateColumns(relHash, fIssuerHash, fSignerHash)
}

// dnsAnswers gives each answer Defender lists the shape ECS defines for dns.answers (an object
// per answer, its value in data); a bare list of strings cannot be indexed where ECS maps
// dns.answers as objects.
func dnsAnswers(v any) []any {
	list, ok := v.([]any)
	if !ok {
		if v == nil {
			return nil
		}
		list = []any{v}
	}
	out := make([]any, 0, len(list))
	for _, a := range list {
		if m, ok := a.(mapstr.M); ok {
			out = append(out, m)
		} else if s := text(a); s != "" {
			out = append(out, mapstr.M{"data": s})
		}
	}
	return out
}

// joinPath names a file by its folder and name. Defender's folder paths usually end with the
// file name already; the integration appends it regardless (c:\x\a.exe\a.exe), which helps no
// search, so a path that already names the file is kept as it is.
func joinPath(folder, name string) string {
	switch {
	case folder == "":
		return name
	case name == "":
		return folder
	}
	lf, ln := strings.ToLower(folder), strings.ToLower(name)
	if lf == ln || strings.HasSuffix(lf, `\`+ln) || strings.HasSuffix(lf, "/"+ln) {
		return folder
	}
	return folder + `\` + name
}

// ecsMAC writes a MAC address as ECS wants it: upper case, byte pairs joined by "-", whatever
// separators Defender used.
func ecsMAC(mac string) string {
	hex := strings.Map(func(r rune) rune {
		if r == '-' || r == ':' || r == '.' {
			return -1
		}
		return r
	}, mac)
	var b strings.Builder
	for i := 0; i < len(hex); i += 2 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(hex[i:min(i+2, len(hex))])
	}
	return b.String()
}
