package event

import (
	"strings"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

// The app and identity family: the Identity* tables of Defender for Identity, CloudAppEvents of
// Defender for Cloud Apps, and CloudAuditEvents and CloudStorageAggregatedEvents of Defender for
// Cloud, as the integration's pipeline_app_and_identity maps them.
var identityFamily = &family{
	name: "app_and_identity",
	columns: cols(
		"AccountApplicationId", fAccountApplicationID, asIs,
		"AccountDisplayName", fAccountDisplayName, asIs,
		"AccountDomain", fAccountDomain, asIs,
		"AccountId", fAccountID, asIs,
		"AccountName", fAccountName, asIs,
		"AccountObjectId", fAccountObjectID, asIs,
		"AccountSid", fAccountSid, asIs,
		"AccountTenantId", fAccountTenantID, toString,
		"AccountType", fAccountType, asIs,
		"AccountUpn", fAccountUpn, asIs,
		"ActionType", fActionType, asIs,
		"ActivityObjects", fActivityObjects, jsonText,
		"ActivityType", fActivityType, asIs,
		"AdditionalFields", fAdditionalFields, jsonText,
		"Address", fAccountAddress, asIs,
		"AnonymousSuccessfulOperations", fAnonymousSuccessfulOps, toLong,
		"AppInstanceId", fAppInstanceID, toLong,
		"Application", fApplication, asIs,
		"ApplicationId", fApplicationID, toString,
		"AssignedRoles", fAccountAssignedRoles, asIs,
		"AuthenticationType", fAuthenticationType, asIs,
		"BlastRadius", fAccountBlastRadius, asIs,
		"ChangeSource", fChangeSource, asIs,
		"CityName", fCityName, asIs,
		"ClientCloudPlatformName", fClientCloudPlatformName, asIs,
		"ClientSystemServiceName", fClientSystemServiceName, asIs,
		"CloudSid", fAccountCloudSid, asIs,
		"CompanyName", fAccountCompanyName, asIs,
		"ContainerId", fContainerID, asIs,
		"ContainerImageName", fContainerImageName, asIs,
		"ContainerName", fContainerName, asIs,
		"CountryCode", fCountryCode, asIs,
		"CountryName", fCountryName, asIs,
		"CreatedDateTime", fAccountCreated, asIs,
		"CriticalityLevel", fAccountCriticalityLevel, asIs,
		"DataAggregationEndTime", fDataAggregationEndTime, toDate,
		"DataAggregationStartTime", fDataAggregationStartTime, toDate,
		"DataSource", fDataSource, asIs,
		"DataSources", fDataSources, asIs,
		"DeletedDateTime", fAccountDeletedDateTime, asIs,
		"Department", fAccountDepartment, asIs,
		"DestinationDeviceName", fDestinationDeviceName, asIs,
		"DestinationIPAddress", fDestinationIPAddress, toIP,
		"DestinationPort", fDestinationPort, toLong,
		"DeviceName", fDeviceName, asIs,
		"DeviceType", fDeviceType, asIs,
		"DistinctGetOperations", fDistinctGetOperations, toLong,
		"DistinguishedName", fAccountDistinguishedName, asIs,
		"EmailAddress", fAccountEmailAddress, asIs,
		"EmployeeId", fAccountEmployeeID, asIs,
		"FailedOperationsCount", fFailedOperationsCount, toLong,
		"FailureReason", fFailureReason, asIs,
		"FirstEventTimestamp", fFirstEventTimestamp, toDate,
		"GivenName", fAccountGivenName, asIs,
		"HasAnonymousResourceNotFoundFailures", fHasAnonymousNotFound, toBool,
		"HashReputationMd5List", fHashReputationMd5List, asIs,
		"IPAddress", fIPAddress, toIP,
		"IPCategory", fIPCategory, asIs,
		"IPTags", fIPTags, asIs,
		"ISP", fIsp, asIs,
		"IpAddress", fStorageIPAddress, toIP,
		"IsAccountEnabled", fAccountIsEnabled, truthy,
		"IsAdminOperation", fIsAdminOperation, truthy,
		"IsAnonymousProxy", fIsAnonymousProxy, truthy,
		"IsExternalUser", fIsExternalUser, truthy,
		"IsImpersonated", fIsImpersonated, truthy,
		"IsKnownSuspiciousIp", fIsKnownSuspiciousIP, toBool,
		"IsPrivateIp", fIsPrivateIP, toBool,
		"IsTorExitNode", fIsTorExitNode, toBool,
		"Isp", fIsp, asIs,
		"JobTitle", fAccountJobTitle, asIs,
		"KubernetesNamespace", fKubernetesNamespace, asIs,
		"KubernetesPodName", fKubernetesPodName, asIs,
		"KubernetesResource", fKubernetesResource, asIs,
		"LastEventTimestamp", fLastEventTimestamp, toDate,
		"Location", fLocation, asIs,
		"LogonType", fLogonType, asIs,
		"Manager", fAccountManager, asIs,
		"OSPlatform", fOSPlatform, asIs,
		"ObjectId", fObjectID, asIs,
		"ObjectName", fObjectName, asIs,
		"ObjectType", fObjectType, asIs,
		"OnPremSid", fAccountOnPremSid, asIs,
		"OperationName", fPropertiesOperationName, asIs,
		"OperationNamesList", fOperationNamesList, asIs,
		"OperationsCount", fOperationsCount, toLong,
		"OtherMailAddresses", fAccountOtherMailAddresses, asIs,
		"ParentProcessId", fParentProcessID, toLong,
		"ParentProcessName", fParentProcessName, asIs,
		"Phone", fAccountPhone, asIs,
		"Port", fPort, toLong,
		"ProcessCurrentWorkingDirectory", fProcessCurrentWorkingDir, asIs,
		"ProcessName", fProcessName, asIs,
		"Protocol", fProtocol, asIs,
		"ProvinceName", fProvinceName, asIs,
		"Query", fQueryValue, asIs,
		"QueryTarget", fQueryTarget, asIs,
		"QueryType", fQueryType, asIs,
		"RawEventData", fRawEventData, jsonText,
		"ReportId", fReportID, toString,
		"ResourceGroup", fResourceGroup, asIs,
		"ResourceId", fResourceID, asIs,
		"RiskLevel", fAccountRiskLevel, asIs,
		"RiskLevelDetails", fAccountRiskLevelDetails, asIs,
		"ServiceType", fServiceType, asIs,
		"SipProxyAddress", fAccountSipProxyAddress, asIs,
		"SourceProvider", fSourceProvider, asIs,
		"SourceSystem", fSourceSystem, asIs,
		"StorageAccount", fStorageAccount, asIs,
		"StorageContainer", fStorageContainer, asIs,
		"StorageFileShare", fStorageFileShare, asIs,
		"SubscriptionId", fSubscriptionID, asIs,
		"SuccessfulOperationsCount", fSuccessfulOperationsCount, toLong,
		"SuccessfulReadOperations", fSuccessfulReadOperations, toLong,
		"Surname", fAccountSurname, asIs,
		"SuspiciousUserAgentName", fSuspiciousUserAgentName, asIs,
		"Tags", fAccountTags, asIs,
		"TargetAccountDisplayName", fTargetAccountDisplayName, asIs,
		"TargetAccountUpn", fTargetAccountUpn, asIs,
		"TargetDeviceName", fTargetDeviceName, asIs,
		"TotalResponseLength", fTotalResponseLength, toLong,
		"Type", fType, asIs,
		"UserAgent", fUserAgent, asIs,
		"UserAgentHeader", fUserAgentHeader, asIs,
		"UserAgentTags", fUserAgentTags, asIs,
		// City, Country and State describe the account in IdentityInfo and the client elsewhere.
		"City", fCity, asIs,
		"Country", fCountry, asIs,
		"State", fAccountState, asIs,
	),
	duplicates: []field{
		fTargetDeviceName, fDestinationIPAddress, fDestinationPort, fDeviceName, fIPAddress,
		fOSPlatform, fDeviceType, fProtocol, fAccountDomain, fAccountEmailAddress, fAccountSid,
		fAccountID, fAccountDisplayName, fAccountName, fActionType, fReportID, fContainerID,
		fContainerImageName, fContainerName, fKubernetesNamespace, fKubernetesResource,
		fParentProcessID, fParentProcessName, fProcessCurrentWorkingDir, fProcessName,
	},
	mapRecord: mapIdentity,
}

func mapIdentity(r *record) {
	table := strings.ToLower(strings.TrimPrefix(r.category, "AdvancedHunting-"))
	identityInfo := table == "identityinfo"
	r.kind = "event"
	if identityInfo {
		// IdentityInfo describes accounts, not activity.
		r.kind = "asset"
		if v := r.val(fCity); v != nil {
			r.del(fCity)
			r.setField(fAccountCity, v)
		}
		if v := r.val(fCountry); v != nil {
			r.del(fCountry)
			r.setField(fAccountCountry, v)
		}
	} else {
		r.del(fAccountState)
	}
	switch table {
	case "identitylogonevents":
		r.category_("authentication")
	case "identityinfo":
		r.category_("iam")
	case "cloudauditevents":
		r.category_("configuration")
	}
	r.type_("info")
	if identityInfo {
		r.type_("user")
	}

	r.putFrom("orchestrator.namespace", fKubernetesNamespace)
	r.putFrom("orchestrator.resource.name", fKubernetesResource)
	if r.has(fKubernetesNamespace) || r.has(fKubernetesPodName) || r.has(fKubernetesResource) {
		r.put("orchestrator.type", "kubernetes")
	}
	r.putFrom("destination.domain", fTargetDeviceName)
	r.putFrom("destination.ip", fDestinationIPAddress)
	r.putFrom("destination.port", fDestinationPort)

	hostName := strings.ToLower(r.str(fDeviceName))
	r.put("host.name", hostName)
	if ip := r.val(fIPAddress); ip != nil {
		r.put("host.ip", []any{ip})
	}
	platform := strings.ToLower(r.str(fOSPlatform))
	osType := ""
	for _, t := range []string{"windows", "linux", "macos"} {
		if strings.Contains(platform, t) {
			osType = t
		}
	}
	if af, ok := r.val(fAdditionalFields).(mapstr.M); ok {
		// IdentityQueryEvents name the querying computer's OS in AdditionalFields.
		if t, ok := af["SourceComputerOperatingSystemType"]; ok && t != nil {
			osType = text(t)
		}
	}
	r.put("host.os.type", osType)
	r.putFrom("host.os.name", fOSPlatform)
	r.putFrom("host.type", fDeviceType)

	r.putFrom("container.id", fContainerID)
	r.putFrom("container.image.name", fContainerImageName)
	r.putFrom("container.name", fContainerName)
	r.putFrom("process.parent.pid", fParentProcessID)
	r.putFrom("process.parent.name", fParentProcessName)
	r.putFrom("process.working_directory", fProcessCurrentWorkingDir)
	r.putFrom("process.name", fProcessName)

	r.put("event.action", strings.ReplaceAll(strings.ToLower(r.str(fActionType)), " ", "-"))
	if table == "identitylogonevents" {
		if r.has(fFailureReason) {
			r.put("event.outcome", "failure")
		} else {
			r.put("event.outcome", "success")
		}
	}
	r.putFrom("event.id", fReportID)
	r.put("network.protocol", strings.ToLower(r.str(fProtocol)))

	r.putFrom("user.domain", fAccountDomain)
	var userID any
	switch table {
	case "identitylogonevents":
		userID = r.val(fAccountSid)
	case "cloudappevents":
		userID = r.val(fAccountID)
	case "identityinfo":
		userID = r.val(fAccountObjectID)
	}
	r.put("user.id", userID)
	userName := r.val(fAccountName)
	if userName == nil {
		if raw, ok := r.val(fRawEventData).(mapstr.M); ok {
			if id, ok := raw["UserId"].(string); ok && id != "" {
				userName = id
			}
		}
	}
	if userName == nil {
		userName = r.val(fAccountDisplayName)
	}
	r.put("user.name", userName)
	if identityInfo {
		r.putFrom("user.full_name", fAccountDisplayName)
	}
	r.putFrom("user.email", fAccountEmailAddress)

	var clientIP any
	if table == "cloudauditevents" {
		clientIP = r.val(fIPAddress)
	}
	if private, ok := r.val(fIsPrivateIP).(bool); ok && !private {
		if ip := r.val(fStorageIPAddress); ip != nil {
			clientIP = ip
		}
	}
	r.put("client.ip", clientIP)
	r.putFrom("user_agent.original", fUserAgent)
	r.putFrom("user_agent.original", fUserAgentHeader)

	r.relate(relUser, userID)
	r.relateColumns(relUser, fAccountDisplayName, fTargetAccountDisplayName, fAccountCloudSid, fAccountOnPremSid, fAccountUpn, fAccountEmailAddress)
	r.relate(relHosts, r.val(fTargetDeviceName))
	r.relate(relIP, r.val(fDestinationIPAddress))
	r.relate(relIP, clientIP)
	r.relate(relHosts, hostName)
	r.relate(relIP, r.val(fIPAddress))
	r.relate(relHosts, r.val(fAccountDomain))
	r.relate(relUser, r.val(fAccountName))
}
