package event

import (
	"net/url"
	"strconv"
	"strings"
)

// The email family: the Email* tables and UrlClickEvents of Defender for Office 365, and the
// Message* tables (Teams messages), as the integration's pipeline_email maps them.
var emailFamily = &family{
	name: "email",
	columns: cols(
		"AccountUpn", fAccountUpn, asIs,
		"Action", fActionValue, asIs,
		"ActionResult", fActionResult, asIs,
		"ActionTrigger", fActionTrigger, asIs,
		"ActionType", fActionType, asIs,
		"AdditionalFields", fAdditionalFields, jsonText,
		"AttachmentCount", fAttachmentCount, toLong,
		"AuthenticationDetails", fAuthenticationDetails, asIs,
		"BulkComplaintLevel", fBulkComplaintLevel, toLong,
		"ConfidenceLevel", fConfidenceLevel, jsonText,
		"Connectors", fConnectors, asIs,
		"DeliveryAction", fDeliveryAction, asIs,
		"DeliveryLocation", fDeliveryLocation, asIs,
		"DetectionMethods", fDetectionMethods, jsonText,
		"EmailAction", fEmailAction, asIs,
		"EmailActionPolicy", fEmailActionPolicy, asIs,
		"EmailActionPolicyGuid", fEmailActionPolicyGUID, asIs,
		"EmailClusterId", fEmailClusterID, toString,
		"EmailDirection", fEmailDirection, asIs,
		"EmailLanguage", fEmailLanguage, asIs,
		"FileName", fFileName, asIs,
		"FileSize", fFileSize, toLong,
		"FileType", fFileType, asIs,
		"GroupId", fGroupID, asIs,
		"GroupName", fGroupName, asIs,
		"IPAddress", fIPAddress, toIP,
		"InternetMessageId", fInternetMessageID, asIs,
		"IsClickedThrough", fIsClickedThrough, truthy,
		"IsExternalThread", fIsExternalThread, truthy,
		"IsOwnedThread", fIsOwnedThread, truthy,
		"LatestDeliveryLocation", fLatestDeliveryLocation, asIs,
		"MessageFormatSubtype", fMessageFormatSubtype, asIs,
		"MessageFormatType", fMessageFormatType, asIs,
		"MessageId", fMessageID, asIs,
		"MessageVersion", fMessageVersion, asIs,
		"NetworkMessageId", fNetworkMessageID, asIs,
		"OrgLevelAction", fOrgLevelAction, asIs,
		"OrgLevelPolicy", fOrgLevelPolicy, asIs,
		"RecipientEmailAddress", fRecipientEmailAddress, asIs,
		"RecipientObjectId", fRecipientObjectID, asIs,
		"ReportId", fReportID, toString,
		"SHA256", fSHA256, asIs,
		"SenderDisplayName", fSenderDisplayName, asIs,
		"SenderEmailAddress", fSenderEmailAddress, asIs,
		"SenderFromAddress", fSenderFromAddress, asIs,
		"SenderFromDomain", fSenderFromDomain, asIs,
		"SenderIPv4", fSenderIPv4, toIP,
		"SenderIPv6", fSenderIPv6, toIP,
		"SenderMailFromAddress", fSenderMailFromAddress, asIs,
		"SenderMailFromDomain", fSenderMailFromDomain, asIs,
		"SenderObjectId", fSenderObjectID, asIs,
		"SenderType", fSenderType, asIs,
		"Subject", fSubject, asIs,
		"TeamsMessageId", fTeamsMessageID, asIs,
		"ThreadId", fThreadID, asIs,
		"ThreatNames", fThreatNames, asIs,
		"ThreatTypes", fThreatTypes, asIs,
		"Url", fURL, asIs,
		"UrlChain", fURLChain, asIs,
		"UrlCount", fURLCount, toLong,
		"UrlDomain", fURLDomain, asIs,
		"UrlLocation", fURLLocation, asIs,
		"UserLevelAction", fUserLevelAction, asIs,
		"UserLevelPolicy", fUserLevelPolicy, asIs,
		"Workload", fWorkload, asIs,
	),
	duplicates: []field{
		fSenderFromAddress, fNetworkMessageID, fRecipientEmailAddress, fFileType, fSHA256,
		fFileName, fFileSize, fEmailDirection, fSubject, fSenderIPv4, fSenderIPv6, fIPAddress,
		fActionType, fInternetMessageID, fMessageID, fSenderEmailAddress, fGroupID, fGroupName,
	},
	mapRecord: mapEmail,
}

func mapEmail(r *record) {
	r.kind = "event"
	urlClick := strings.EqualFold(r.category, "AdvancedHunting-UrlClickEvents")
	if !urlClick {
		r.category_("email")
	}
	if r.has(fFileType) {
		r.category_("file")
	}
	r.type_("info")

	r.putFrom("file.extension", fFileType)
	r.putFrom("file.hash.sha256", fSHA256)
	r.putFrom("file.name", fFileName)
	r.putFrom("file.size", fFileSize)
	r.put("event.action", strings.ReplaceAll(strings.ToLower(r.str(fActionType)), " ", "-"))

	// Email addresses: the author (Defender for Office 365) or the Teams sender.
	from := r.val(fSenderFromAddress)
	if from == nil {
		from = r.val(fSenderEmailAddress)
	}
	if from != nil {
		r.put("email.from.address", []any{text(from)})
	}
	if to := r.val(fRecipientEmailAddress); to != nil {
		r.put("email.to.address", []any{text(to)})
	}
	// InternetMessageId is the RFC 5322 Message-ID; NetworkMessageId is Defender's own id.
	r.putFrom("email.message_id", fInternetMessageID)
	r.putFrom("email.message_id", fMessageID)
	r.putFrom("email.local_id", fNetworkMessageID)
	r.putFrom("email.direction", fEmailDirection)
	r.putFrom("email.subject", fSubject)

	if sender := r.str(fSenderEmailAddress); sender != "" {
		r.put("user.email", sender)
		if at := strings.LastIndexByte(sender, '@'); at > 0 {
			r.put("user.name", sender[:at])
			r.put("user.domain", sender[at+1:])
		}
	}
	r.putFrom("user.group.id", fGroupID)
	r.putFrom("user.group.name", fGroupName)

	var sourceIPs []any
	for _, f := range []field{fSenderIPv4, fSenderIPv6} {
		if ip := r.val(f); ip != nil {
			sourceIPs = append(sourceIPs, ip)
		}
	}
	if len(sourceIPs) > 0 {
		r.put("source.ip", sourceIPs)
	}
	r.putFrom("host.ip", fIPAddress)

	if u := r.str(fURL); u != "" && !r.uriParts(u) {
		r.put("url.original", u)
	}

	r.relateColumns(relUser, fSenderFromAddress, fSenderEmailAddress, fRecipientEmailAddress)
	r.relate(relHash, r.val(fSHA256))
	r.relateColumns(relIP, fSenderIPv4, fSenderIPv6, fIPAddress)
	r.relateColumns(relHosts, fSenderFromDomain, fSenderMailFromDomain, fURLDomain)
}

// uriParts splits a URL into url.* as Elasticsearch's uri_parts processor does (a URL without
// scheme is a path). It reports whether the URL could be read.
func (r *record) uriParts(s string) bool {
	if s == "" {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	r.put("url.original", s)
	r.put("url.scheme", u.Scheme)
	r.put("url.domain", u.Hostname())
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseInt(p, 10, 64); err == nil {
			r.put("url.port", n)
		}
	}
	path := u.EscapedPath()
	if u.Opaque != "" {
		path = u.Opaque
	}
	r.put("url.path", path)
	if dot := strings.LastIndexByte(path, '.'); dot > -1 {
		r.put("url.extension", path[dot+1:])
	}
	r.put("url.query", u.RawQuery)
	r.put("url.fragment", u.Fragment)
	if u.User != nil {
		r.put("url.user_info", u.User.String())
		r.put("url.username", u.User.Username())
		if pw, ok := u.User.Password(); ok {
			r.put("url.password", pw)
		}
	}
	return true
}
