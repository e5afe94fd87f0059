package alert

import "github.com/defenderbeat/defenderbeat/internal/graphalert"

// rules are how the integration's alert pipeline maps an alert and its evidence where it differs
// from the incident pipeline, which embeds alerts too.
var rules = graphalert.Rules{
	WebURL:        "web_url",
	KeepODataType: true,
	Duplicates: []string{
		"last_update_datetime", "description", "created_datetime", "last_activity_datetime", "id",
		"service_source", "first_activity_datetime", "web_url", "assigned_to", "threat_family_name",
		"category", "mitre_techniques", "tenant_id",
	},

	IPAddress:     "host.ip",
	SenderIP:      "source.ip",
	SenderAddress: "email.sender.address",
	MovedToECS: []graphalert.Move{
		{From: "internet_message_id", To: "email.message_id"},
		{From: "network_message_id", To: "email.local_id"},
	},
	DeviceHosts: []string{"mde_device_id", "os_platform", "version", "device_dns_name"},
	AccountUsers: []string{
		"user_account.azure_ad_user_id", "user_account.user_principal_name",
		"user_account.account_name", "user_account.user_sid",
	},
	UserID:    "user_account.azure_ad_user_id",
	UserEmail: "user_account.user_principal_name",
	FilePath:  graphalert.FilePathAsGiven,

	ProcessEntityID:      graphalert.EntityIDFromPID,
	ProcessNameFromImage: true,
}
