package graphalert

import (
	"strings"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

// conversion is what a renamed evidence property goes through on its way.
type conversion int

const (
	asIs conversion = iota
	asDate
	asLong
	asString
	asIP
	asIPList
)

// evidenceRenames is how the integration renames Graph evidence properties (camelCase) under
// m365_defender.*.evidence. Properties it does not rename (verdict, roles, tags, url, subject,
// properties of evidence types it does not know…) stay as Graph names them, which is also what
// the integration publishes.
var evidenceRenames = []struct {
	from, to string
	conv     conversion
}{
	{"createdDateTime", "created_datetime", asDate},
	{"remediationStatus", "remediation_status", asIs},
	{"remediationStatusDetails", "remediation_status_details", asIs},
	{"detailedRoles", "detailed_roles", asIs},
	{"ipInterfaces", "ip_interfaces", asIPList},
	// mailbox, analyzedMessage and mailCluster evidence
	{"receivedDateTime", "received_datetime", asDate},
	{"antiSpamDirection", "antispam_direction", asIs},
	{"recipientEmailAddress", "recipient_email_address", asIs},
	{"attachmentsCount", "attachments_count", asLong},
	{"deliveryAction", "delivery_action", asIs},
	{"deliveryLocation", "delivery_location", asIs},
	{"internetMessageId", "internet_message_id", asIs},
	{"networkMessageId", "network_message_id", asIs},
	{"p1Sender.odata_type", "p1_sender.odata_type", asIs},
	{"p1Sender.displayName", "p1_sender.display_name", asIs},
	{"p1Sender.domainName", "p1_sender.domain_name", asIs},
	{"p1Sender.emailAddress", "p1_sender.email_address", asIs},
	{"p2Sender.odata_type", "p2_sender.odata_type", asIs},
	{"p2Sender.displayName", "p2_sender.display_name", asIs},
	{"p2Sender.domainName", "p2_sender.domain_name", asIs},
	{"p2Sender.emailAddress", "p2_sender.email_address", asIs},
	{"senderIp", "sender_ip", asIP},
	{"threatDetectionMethods", "threat_detection_methods", asIs},
	{"urlCount", "url_count", asLong},
	{"primaryAddress", "primary_address", asIs},
	{"clusterBy", "cluster_by", asIs},
	{"clusterByValue", "cluster_by_value", asIs},
	{"emailCount", "email_count", asLong},
	{"networkMessageIds", "network_message_ids", asIs},
	// cloudApplication and oauthApplication evidence
	{"instanceId", "instance_id", asString},
	{"instanceName", "instance_name", asIs},
	{"appId", "app_id", asString},
	{"displayName", "display_name", asIs},
	{"saasAppId", "saas_app_id", asString},
	{"objectId", "object_id", asIs},
	// device evidence
	{"vmMetadata.cloudProvider", "vm_metadata.cloud_provider", asIs},
	{"vmMetadata.odata_type", "vm_metadata.odata_type", asIs},
	{"vmMetadata.resourceId", "vm_metadata.resource_id", asIs},
	{"vmMetadata.subscriptionId", "vm_metadata.subscription_id", asIs},
	{"vmMetadata.vmId", "vm_metadata.vm_id", asIs},
	{"mdeDeviceId", "mde_device_id", asIs},
	{"osPlatform", "os_platform", asIs},
	{"azureAdDeviceId", "azure_ad_device_id", asIs},
	{"defenderAvStatus", "defender_av_status", asIs},
	{"deviceDnsName", "device_dns_name", asIs},
	{"firstSeenDateTime", "first_seen_datetime", asDate},
	{"healthStatus", "health_status", asIs},
	{"onboardingStatus", "onboarding_status", asIs},
	{"osBuild", "os_build", asString},
	{"rbacGroupId", "rbac_group.id", asString},
	{"rbacGroupName", "rbac_group.name", asIs},
	{"riskScore", "risk_score", asIs},
	// file and process evidence
	{"detectionStatus", "detection_status", asIs},
	{"fileDetails.odata_type", "file_details.odata_type", asIs},
	{"fileDetails.sha1", "file_details.sha1", asIs},
	{"fileDetails.sha256", "file_details.sha256", asIs},
	{"fileDetails.fileName", "file_details.name", asIs},
	{"fileDetails.filePath", "file_details.path", asIs},
	{"fileDetails.fileSize", "file_details.size", asLong},
	{"fileDetails.filePublisher", "file_details.publisher", asIs},
	{"fileDetails.issuer", "file_details.issuer", asIs},
	{"fileDetails.signer", "file_details.signer", asIs},
	{"processCommandLine", "process.command_line", asIs},
	{"processId", "process.id", asLong},
	{"processCreationDateTime", "process.creation_datetime", asDate},
	{"parentProcessId", "parent_process.id", asLong},
	{"parentProcessCreationDateTime", "parent_process.creation_datetime", asDate},
	{"imageFile.odata_type", "image_file.odata_type", asIs},
	{"imageFile.sha1", "image_file.sha1", asIs},
	{"imageFile.sha256", "image_file.sha256", asIs},
	{"imageFile.fileName", "image_file.name", asIs},
	{"imageFile.filePath", "image_file.path", asIs},
	{"imageFile.fileSize", "image_file.size", asLong},
	{"imageFile.filePublisher", "image_file.publisher", asIs},
	{"imageFile.issuer", "image_file.issuer", asIs},
	{"imageFile.signer", "image_file.signer", asIs},
	{"parentProcessImageFile.odata_type", "parent_process.image_file.odata_type", asIs},
	{"parentProcessImageFile.sha1", "parent_process.image_file.sha1", asIs},
	{"parentProcessImageFile.sha256", "parent_process.image_file.sha256", asIs},
	{"parentProcessImageFile.fileName", "parent_process.image_file.name", asIs},
	{"parentProcessImageFile.filePath", "parent_process.image_file.path", asIs},
	{"parentProcessImageFile.fileSize", "parent_process.image_file.size", asLong},
	{"parentProcessImageFile.filePublisher", "parent_process.image_file.publisher", asIs},
	{"parentProcessImageFile.issuer", "parent_process.image_file.issuer", asIs},
	{"parentProcessImageFile.signer", "parent_process.image_file.signer", asIs},
	// ip evidence
	{"ipAddress", "ip_address", asIP},
	// user, mailbox and process evidence
	{"userAccount.odata_type", "user_account.odata_type", asIs},
	{"userAccount.accountName", "user_account.account_name", asIs},
	{"userAccount.domainName", "user_account.domain_name", asIs},
	{"userAccount.azureAdUserId", "user_account.azure_ad_user_id", asIs},
	{"userAccount.userPrincipalName", "user_account.user_principal_name", asIs},
	{"userAccount.userSid", "user_account.user_sid", asIs},
	{"userAccount.displayName", "user_account.display_name", asIs},
	// registryKey and registryValue evidence
	{"registryHive", "registry_hive", asIs},
	{"registryKey", "registry_key", asIs},
	{"registryValueType", "registry_value_type", asIs},
	{"registryValue", "registry_value", asIs},
	{"registryValueName", "registry_value_name", asIs},
	// securityGroup evidence
	{"securityGroupId", "security_group_id", asIs},
}

// ecsDuplicates are the evidence properties also copied to ECS fields, which the integration
// removes from the evidence unless the preserve_duplicate_custom_fields tag is set.
var ecsDuplicates = []string{
	"ip_address", "detection_status", "received_datetime", "antispam_direction", "subject",
	"recipient_email_address", "instance_id", "instance_name", "vm_metadata.cloud_provider",
	"os_platform", "version",
	"file_details.sha1", "file_details.sha256", "file_details.name", "file_details.path", "file_details.size",
	"process.command_line", "image_file.sha1", "image_file.sha256",
	"parent_process.image_file.sha1", "parent_process.image_file.sha256",
	"parent_process.id", "parent_process.creation_datetime", "process.id", "process.creation_datetime",
	"registry_value_type", "registry_hive", "registry_key", "registry_value", "security_group_id",
}

// Evidence @odata.type values the mapping depends on.
const (
	typeAnalyzedMessage = "#microsoft.graph.security.analyzedMessageEvidence"
	typeMailbox         = "#microsoft.graph.security.mailboxEvidence"
	typeMailCluster     = "#microsoft.graph.security.mailClusterEvidence"
	typeDevice          = "#microsoft.graph.security.deviceEvidence"
	typeFile            = "#microsoft.graph.security.fileEvidence"
	typeIP              = "#microsoft.graph.security.ipEvidence"
	typeProcess         = "#microsoft.graph.security.processEvidence"
	typeRegistryKey     = "#microsoft.graph.security.registryKeyEvidence"
	typeRegistryValue   = "#microsoft.graph.security.registryValueEvidence"
	typeUser            = "#microsoft.graph.security.userEvidence"
	typeSecurityGroup   = "#microsoft.graph.security.securityGroupEvidence"
)

// evidenceCategory is the event.category an evidence type implies.
var evidenceCategory = map[string]string{
	typeAnalyzedMessage: "email",
	typeMailbox:         "email",
	typeMailCluster:     "email",
	typeDevice:          "host",
	typeFile:            "file",
	typeIP:              "network",
	typeProcess:         "process",
	typeRegistryKey:     "registry",
	typeRegistryValue:   "registry",
	typeUser:            "iam",
	typeSecurityGroup:   "iam",
}

// normalizeEvidence renames one (cleaned) evidence item in place.
func normalizeEvidence(ev mapstr.M) {
	for _, r := range evidenceRenames {
		v, err := ev.GetValue(r.from)
		if err != nil {
			continue
		}
		remove(ev, r.from)
		if c, ok := convert(v, r.conv); ok {
			_, _ = ev.Put(r.to, c)
		}
	}
	if users, ok := ev["loggedOnUsers"].([]any); ok {
		delete(ev, "loggedOnUsers")
		var renamed []any
		for _, u := range users {
			m, ok := u.(mapstr.M)
			if !ok {
				renamed = append(renamed, u)
				continue
			}
			for from, to := range map[string]string{"accountName": "account_name", "domainName": "domain_name"} {
				if v, ok := m[from]; ok {
					delete(m, from)
					m[to] = v
				}
			}
			renamed = append(renamed, m)
		}
		ev["logged_on_users"] = renamed
	}
}

func convert(v any, conv conversion) (any, bool) {
	switch conv {
	case asDate:
		return Date(v)
	case asLong:
		return toLong(v)
	case asString:
		return text(v)
	case asIP:
		return validIP(v)
	case asIPList:
		list, ok := v.([]any)
		if !ok {
			return validIP(v)
		}
		var ips []any
		for _, el := range list {
			if ip, ok := validIP(el); ok {
				ips = append(ips, ip)
			}
		}
		return ips, len(ips) > 0
	}
	return v, true
}

// remove deletes path from m and then the objects it leaves empty.
func remove(m mapstr.M, path string) {
	_ = m.Delete(path)
	for i := strings.LastIndex(path, "."); i > 0; i = strings.LastIndex(path, ".") {
		path = path[:i]
		v, err := m.GetValue(path)
		if err != nil {
			return
		}
		if obj, ok := v.(mapstr.M); !ok || len(obj) > 0 {
			return
		}
		_ = m.Delete(path)
	}
}

func str(m mapstr.M, path string) string {
	v, err := m.GetValue(path)
	if err != nil {
		return ""
	}
	s, _ := text(v)
	return s
}

func value(m mapstr.M, path string) any {
	v, err := m.GetValue(path)
	if err != nil {
		return nil
	}
	return v
}
