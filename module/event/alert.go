package event

import (
	"slices"
	"strings"

	"github.com/defenderbeat/defenderbeat/internal/graphalert"
)

// The alert family: AlertInfo and AlertEvidence (alerts and their evidence) and BehaviorInfo and
// BehaviorEntities (behaviors, which are not alerts), as the integration's pipeline_alert maps
// them.
var alertFamily = &family{
	name: "alert",
	columns: cols(
		"AccountDomain", fAccountDomain, asIs,
		"AccountName", fAccountName, asIs,
		"AccountObjectId", fAccountObjectID, asIs,
		"AccountSid", fAccountSid, asIs,
		"AccountUpn", fAccountUpn, asIs,
		"ActionType", fActionType, asIs,
		"AdditionalFields", fAdditionalFields, jsonText,
		"AlertId", fAlertID, asIs,
		"Application", fApplication, asIs,
		"ApplicationId", fApplicationID, toString,
		"AttackTechniques", fAttackTechniques, jsonText,
		"BehaviorId", fBehaviorID, asIs,
		"Categories", fAlertCategories, jsonText,
		"Category", fAlertCategory, asIs,
		"CloudPlatform", fCloudPlatform, asIs,
		"CloudResourceId", fCloudResourceID, asIs,
		"CloudResourceType", fCloudResourceType, asIs,
		"CloudSubscriptionId", fCloudSubscriptionID, asIs,
		"DataSources", fDataSources, asIs,
		"Description", fDescription, asIs,
		"DetailedEntityRole", fDetailedEntityRole, asIs,
		"DetectionSource", fDetectionSource, asIs,
		"DeviceId", fDeviceID, asIs,
		"DeviceName", fDeviceName, asIs,
		"EmailClusterId", fEmailClusterID, toString,
		"EmailSubject", fEmailSubject, asIs,
		"EndTime", fEndTime, toDate,
		"EntityRole", fEntityRole, asIs,
		"EntityType", fEntityType, asIs,
		"EvidenceDirection", fEvidenceDirection, asIs,
		"EvidenceRole", fEvidenceRole, asIs,
		"FileName", fFileName, asIs,
		"FileSize", fFileSize, toLong,
		"FolderPath", fFolderPath, asIs,
		"LocalIP", fLocalIP, toIP,
		"MachineGroup", fMachineGroup, asIs,
		"NetworkMessageId", fNetworkMessageID, asIs,
		"OAuthApplicationId", fOAuthApplicationID, asIs,
		"ProcessCommandLine", fProcessCommandLine, asIs,
		"RegistryKey", fRegistryKey, asIs,
		"RegistryValueData", fRegistryValueData, asIs,
		"RegistryValueName", fRegistryValueName, asIs,
		"RemoteIP", fRemoteIP, toIP,
		"RemoteUrl", fRemoteURL, asIs,
		"SHA1", fSHA1, asIs,
		"SHA256", fSHA256, asIs,
		"ServiceSource", fServiceSource, asIs,
		"Severity", fSeverity, lowercase,
		"StartTime", fStartTime, toDate,
		"ThreatFamily", fThreatFamily, asIs,
		"Title", fTitle, asIs,
	),
	duplicates: []field{
		fTimestamp, fRemoteURL, fAlertID, fServiceSource, fDeviceName, fDeviceID,
		fEvidenceDirection, fProcessCommandLine, fRegistryKey, fRegistryValueName,
		fRegistryValueData, fRemoteIP, fFolderPath, fSHA1, fSHA256, fFileName, fFileSize,
		fThreatFamily, fAccountName, fAccountDomain, fAccountSid, fAccountObjectID,
		fNetworkMessageID, fEmailSubject, fTitle, fBehaviorID, fCloudPlatform,
	},
	mapRecord: mapAlert,
}

func mapAlert(r *record) {
	r.kind = "alert"
	if strings.HasPrefix(strings.ToLower(r.category), "advancedhunting-behavior") {
		// Behaviors are detections that did not (yet) raise an alert.
		r.kind = "event"
	}
	switch strings.ToLower(r.str(fEntityType)) {
	case "file":
		r.category_("file")
	case "process":
		r.category_("process")
	case "device":
		r.category_("host")
	case "user":
		r.category_("iam")
	}
	r.type_("info")

	if id := r.val(fAlertID); id != nil {
		r.put("event.id", id)
	} else {
		r.putFrom("event.id", fBehaviorID)
	}
	r.putFrom("event.provider", fServiceSource)
	r.putFrom("event.reference", fRemoteURL)
	if sev, ok := graphalert.Severity(r.str(fSeverity)); ok { // the column is lowercased already
		r.put("event.severity", sev)
	}

	hostName := strings.ToLower(r.str(fDeviceName))
	r.put("host.name", hostName)
	r.putFrom("host.id", fDeviceID)
	r.put("network.direction", strings.ToLower(r.str(fEvidenceDirection)))

	if cmd := r.str(fProcessCommandLine); cmd != "" {
		r.put("process.command_line", cmd)
		args := splitCommandLine(cmd)
		if len(args) > 0 {
			r.put("process.args", args)
			r.put("process.args_count", int64(len(args)))
			r.put("process.executable", args[0])
		}
	}

	r.mapAttackTechniques()

	r.putFrom("file.directory", fFolderPath)
	r.putFrom("file.hash.sha1", fSHA1)
	r.putFrom("file.hash.sha256", fSHA256)
	r.putFrom("file.name", fFileName)
	r.putFrom("file.size", fFileSize)
	r.putFrom("registry.key", fRegistryKey)
	if data := r.val(fRegistryValueData); data != nil {
		r.put("registry.data.strings", []any{text(data)})
	}
	r.putFrom("destination.ip", fRemoteIP)
	r.putFrom("source.ip", fLocalIP)

	userID := r.val(fAccountSid)
	if userID == nil {
		userID = r.val(fAccountObjectID)
	}
	r.put("user.id", userID)
	r.putFrom("user.name", fAccountName)
	r.putFrom("user.domain", fAccountDomain)
	r.putFrom("email.subject", fEmailSubject)
	r.putFrom("email.message_id", fNetworkMessageID)
	r.putFrom("message", fTitle)
	r.putFrom("cloud.provider", fCloudPlatform)

	r.relate(relHosts, hostName)
	r.relateColumns(relHosts, fAccountDomain, fDeviceID)
	r.relateColumns(relUser, fAccountObjectID, fAccountName)
	r.relateColumns(relIP, fLocalIP, fRemoteIP)
	r.relateColumns(relHash, fSHA256, fSHA1)
}

// mapAttackTechniques fills threat.technique.subtechnique from the "Name (T1234.001)" entries of
// AttackTechniques, and sorts the lists as the pipeline does.
func (r *record) mapAttackTechniques() {
	list, ok := r.val(fAttackTechniques).([]any)
	if !ok {
		return
	}
	var names, ids []string
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			continue
		}
		space, open, closing := strings.LastIndexByte(s, ' '), strings.IndexByte(s, '('), strings.IndexByte(s, ')')
		if space < 0 || open < 0 || closing < open {
			continue
		}
		names = append(names, s[:space])
		ids = append(ids, s[open+1:closing])
	}
	sorted := slices.Clone(list)
	slices.SortStableFunc(sorted, func(a, b any) int { return strings.Compare(text(a), text(b)) })
	r.setField(fAttackTechniques, sorted)
	if len(ids) > 0 {
		slices.Sort(ids)
		slices.Sort(names)
		r.put("threat.technique.subtechnique.id", ids)
		r.put("threat.technique.subtechnique.name", names)
	}
}
