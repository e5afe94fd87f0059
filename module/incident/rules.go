package incident

import "github.com/defenderbeat/defenderbeat/internal/graphalert"

// rules are how the integration's incident pipeline maps an embedded alert (under
// m365_defender.incident.alert) and its evidence where it differs from the alert pipeline.
var rules = graphalert.Rules{
	WebURL:     "alert_web_url",
	Duplicates: []string{"service_source", "category", "mitre_techniques"},

	IPAddress:        "source.ip",
	DeviceHosts:      []string{"device_dns_name"},
	HostFromDNSName:  true,
	LoggedOnUserName: true,
	AccountUsers: []string{
		"user_account.azure_ad_user_id", "user_account.user_principal_name",
		"primary_address", "user_account.display_name",
		"user_account.account_name", "user_account.user_sid",
	},
	PrimaryAddress: "user.email",
	UserID:         "user_account.user_principal_name",
	FilePath:       graphalert.FilePathJoined,

	ProcessExecutable: true,
	ProcessEntityID:   graphalert.EntityIDFingerprint,
}
