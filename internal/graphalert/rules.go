package graphalert

// Rules are what one dataset's pipeline does its own way when it maps an alert and its evidence.
// Everything else, which every dataset does alike, is the mapper's. The alert and incident
// datasets each declare their Rules beside their transform, so a change to how one of them maps
// a field is made there. Field names are those of the published documents: alert fields under
// m365_defender.<dataset>…, evidence fields as renamed under evidence, ECS fields by their path.
// An empty field name means the dataset does not publish that copy.
type Rules struct {
	// WebURL is the alert field that holds the parts of alertWebUrl.
	WebURL string
	// KeepODataType publishes the alert's own @odata.type as odata_type.
	KeepODataType bool
	// Duplicates are the alert fields also published as ECS fields, removed from the alert
	// unless the preserve_duplicate_custom_fields tag is set.
	Duplicates []string

	// IPAddress is the ECS field an evidence's ip_address goes to (it is a related.ip anyway).
	IPAddress string
	// SenderIP is the ECS field a message's sender_ip goes to (it is a related.ip anyway).
	SenderIP string
	// SenderAddress is the ECS field the p1 sender's address goes to besides email.from.address.
	SenderAddress string
	// MovedToECS are evidence fields published as ECS fields only: copied, then removed from the
	// evidence whatever the tags.
	MovedToECS []Move
	// DeviceHosts are the evidence fields that feed related.hosts from a device, in this order.
	DeviceHosts []string
	// HostFromDNSName makes a device's device_dns_name host.hostname, and in lower case host.name.
	HostFromDNSName bool
	// LoggedOnUserName makes the account names of a device's logged_on_users user.name (replaced
	// by the account names of user and mailbox evidence when there are any). Being ECS copies,
	// they are then removed from the evidence unless preserve_duplicate_custom_fields is set.
	LoggedOnUserName bool
	// AccountUsers are the evidence fields naming the account of a user, mailbox or process
	// that feed related.user, in this order (recipients, senders and logged-on users always do).
	AccountUsers []string
	// PrimaryAddress is the ECS field a mailbox's primary_address goes to, in the order found.
	PrimaryAddress string
	// UserID is the evidence field whose values over user and mailbox evidence, sorted, are
	// user.id.
	UserID string
	// UserEmail is the evidence field whose values over user and mailbox evidence, sorted, are
	// user.email; when there are any, they replace what PrimaryAddress put there.
	UserEmail string
	// FilePath is how file.path is built from a file's file_details.
	FilePath FilePathRule

	// ProcessExecutable makes the image files' paths and names process.executable and
	// process.parent.executable (a plain value when there is one).
	ProcessExecutable bool
	// ProcessEntityID is how process.entity_id and process.parent.entity_id are built.
	ProcessEntityID EntityIDRule
	// ProcessNameFromImage puts the image files' names in process.name, before the first word of
	// every command line (which every dataset puts there).
	ProcessNameFromImage bool
}

// Move names an evidence field and the ECS field it moves to.
type Move struct {
	From, To string
}

// FilePathRule says how file.path is built.
type FilePathRule int

const (
	// FilePathAsGiven is file_details.path as Graph gives it (a directory).
	FilePathAsGiven FilePathRule = iota
	// FilePathJoined is file_details.path and file_details.name joined by a backslash whatever
	// the platform; a missing part is left empty, and there is no file.path when both are.
	FilePathJoined
)

// EntityIDRule says how process entity ids are built.
type EntityIDRule int

const (
	// EntityIDFromPID uses the process id itself, in text form.
	EntityIDFromPID EntityIDRule = iota
	// EntityIDFingerprint uses the Fingerprint of "pid|start|device" (process id, its creation
	// time and mde_device_id), for processes that have all three.
	EntityIDFingerprint
)
