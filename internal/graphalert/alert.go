// Package graphalert maps a Microsoft Graph security alert (alerts_v2, also embedded in incidents
// by $expand=alerts) and its evidence to the fields of Elastic's m365_defender integration. The
// alert and incident datasets both use it; the integration's two pipelines differ in places (which
// ECS field an address goes to, how entity ids are built, which copies are removed), so each
// dataset declares its Rules and the mapper follows them.
//
// Where the integration would mark a whole document as a pipeline error because one value has the
// wrong type (a non-numeric processId, an invalid IP), the value is dropped instead and the rest
// of the document kept. Every "@odata.type" key becomes "odata_type", at any depth.
package graphalert

import (
	"sort"
	"strings"

	"github.com/elastic/elastic-agent-libs/mapstr"
)

type alertProperty struct {
	from, to string
	conv     conversion
	url      bool
}

// alertProperties are the alert properties the integration keeps, in snake_case. Any other
// property (productName, alertPolicyId, additionalData, systemTags…) is not published by it.
var alertProperties = []alertProperty{
	{from: "actorDisplayName", to: "actor_display_name"},
	{from: "assignedTo", to: "assigned_to"},
	{from: "category", to: "category"},
	{from: "classification", to: "classification"},
	{from: "comments", to: "comments"},
	{from: "createdDateTime", to: "created_datetime", conv: asDate},
	{from: "description", to: "description"},
	{from: "detectionSource", to: "detection_source"},
	{from: "detectorId", to: "detector_id"},
	{from: "determination", to: "determination"},
	{from: "firstActivityDateTime", to: "first_activity_datetime", conv: asDate},
	{from: "id", to: "id"},
	{from: "incidentId", to: "incident_id"},
	{from: "incidentWebUrl", to: "incident_web_url", url: true},
	{from: "lastActivityDateTime", to: "last_activity_datetime", conv: asDate},
	{from: "lastUpdateDateTime", to: "last_update_datetime", conv: asDate},
	{from: "mitreTechniques", to: "mitre_techniques"},
	{from: "providerAlertId", to: "provider_alert_id"},
	{from: "recommendedActions", to: "recommended_actions"},
	{from: "resolvedDateTime", to: "resolved_datetime", conv: asDate},
	{from: "serviceSource", to: "service_source"},
	{from: "severity", to: "severity"},
	{from: "status", to: "status"},
	{from: "tenantId", to: "tenant_id"},
	{from: "threatDisplayName", to: "threat_display_name"},
	{from: "threatFamilyName", to: "threat_family_name"},
	{from: "title", to: "title"},
}

// MapAlert maps one Graph alert, already decoded (see DecodeObject), to the fields the dataset
// publishes for it (under m365_defender.alert or m365_defender.incident.alert), and adds the
// multi-valued ECS fields it implies (evidence, threat.*, related.*) to ecs. Single-valued ECS
// fields (event.id, event.provider, message…) are the caller's: which ones differ by dataset.
func (r *Rules) MapAlert(a map[string]any, keepDuplicates bool, ecs *Builder) mapstr.M {
	out := mapstr.M{}
	for _, p := range alertProperties {
		raw, ok := a[p.from]
		if !ok {
			continue
		}
		if p.url {
			if parts, ok := URLParts(raw); ok {
				out[p.to] = parts
			}
			continue
		}
		v, ok := Clean(raw)
		if !ok {
			continue
		}
		if v, ok = convert(v, p.conv); ok {
			out[p.to] = v
		}
	}
	if r.WebURL != "" {
		if parts, ok := URLParts(a["alertWebUrl"]); ok {
			out[r.WebURL] = parts
		}
	}
	if r.KeepODataType {
		if v, ok := Clean(a["@odata.type"]); ok {
			out["odata_type"] = v
		}
	}

	ecs.AddText("threat.tactic.name", a["category"])
	if techniques, ok := out["mitre_techniques"].([]any); ok {
		for _, t := range techniques {
			ecs.AddText("threat.technique.subtechnique.id", t)
		}
	} else {
		ecs.AddText("threat.technique.subtechnique.id", out["mitre_techniques"])
	}
	if comments, ok := out["comments"].([]any); ok {
		for _, c := range comments {
			if m, ok := c.(mapstr.M); ok {
				ecs.AddText("related.user", m["createdByDisplayName"])
			}
		}
	}

	if list, ok := a["evidence"].([]any); ok {
		if evidence := r.mapEvidence(list, keepDuplicates, ecs); len(evidence) > 0 {
			out["evidence"] = evidence
		}
	}

	if !keepDuplicates {
		for _, f := range r.Duplicates {
			delete(out, f)
		}
	}
	return out
}

// mapEvidence normalises the evidence list and collects the ECS fields it implies.
func (r *Rules) mapEvidence(list []any, keepDuplicates bool, ecs *Builder) []any {
	items := make([]mapstr.M, 0, len(list))
	for _, raw := range list {
		cleaned, ok := Clean(raw)
		if !ok {
			continue
		}
		ev, ok := cleaned.(mapstr.M)
		if !ok {
			continue
		}
		normalizeEvidence(ev)
		items = append(items, ev)
	}

	x := extractor{rules: r, ecs: ecs}
	for _, ev := range items {
		x.item(ev)
	}
	x.finish(items)

	out := make([]any, 0, len(items))
	for _, ev := range items {
		for _, m := range r.MovedToECS {
			remove(ev, m.From)
		}
		if !keepDuplicates {
			for _, f := range ecsDuplicates {
				remove(ev, f)
			}
			if r.LoggedOnUserName {
				if users, ok := ev["logged_on_users"].([]any); ok {
					for _, u := range users {
						if m, ok := u.(mapstr.M); ok {
							delete(m, "account_name")
						}
					}
				}
			}
		}
		if cleaned, ok := Clean(ev); ok {
			out = append(out, cleaned)
		}
	}
	return out
}

// extractor derives ECS fields from evidence items, keeping the order in which the integration
// appends values.
type extractor struct {
	rules *Rules
	ecs   *Builder

	fromP2     []string // email.from.address of p2 senders, appended after every p1 sender
	imageNames []any    // process.name from image files, before those from command lines
}

// copyTo adds the text form of v to the ECS field at path, unless the rules leave path empty.
func (x *extractor) copyTo(path string, v any) {
	if path != "" {
		x.ecs.AddText(path, v)
	}
}

func (x *extractor) item(ev mapstr.M) {
	b, r := x.ecs, x.rules

	b.AddText("email.delivery_timestamp", ev["received_datetime"])
	b.AddText("email.direction", ev["antispam_direction"])
	b.AddText("email.subject", ev["subject"])
	b.AddText("related.user", ev["recipient_email_address"])
	b.AddText("email.to.address", ev["recipient_email_address"])
	for _, m := range r.MovedToECS {
		b.AddText(m.To, value(ev, m.From))
	}
	for i, sender := range []string{"p1_sender", "p2_sender"} {
		b.AddText("related.user", value(ev, sender+".display_name"))
		b.AddText("related.hosts", value(ev, sender+".domain_name"))
		address := str(ev, sender+".email_address")
		if i == 0 {
			b.AddText("email.from.address", address)
			x.copyTo(r.SenderAddress, address)
		} else if address != "" {
			x.fromP2 = append(x.fromP2, address)
		}
		b.AddText("related.user", address)
	}
	x.copyTo(r.SenderIP, ev["sender_ip"])
	b.AddText("related.ip", ev["sender_ip"])
	b.AddText("cloud.instance.id", ev["instance_id"])
	b.AddText("cloud.instance.name", ev["instance_name"])

	b.AddText("host.os.name", ev["os_platform"])
	b.AddText("host.os.version", ev["version"])
	b.AddText("device.id", ev["azure_ad_device_id"])
	for _, f := range r.DeviceHosts {
		b.AddText("related.hosts", value(ev, f))
	}
	if r.HostFromDNSName {
		if name, ok := text(ev["device_dns_name"]); ok {
			b.Add("host.name", strings.ToLower(name))
			b.Add("host.hostname", name)
		}
	}
	if users, ok := ev["logged_on_users"].([]any); ok {
		for _, u := range users {
			m, ok := u.(mapstr.M)
			if !ok {
				continue
			}
			if r.LoggedOnUserName {
				b.AddText("user.name", m["account_name"])
			}
			b.AddText("related.user", m["account_name"])
			b.AddText("related.hosts", m["domain_name"])
		}
	}
	b.AddText("event.action", ev["detection_status"])

	for _, h := range []string{"sha1", "sha256"} {
		b.AddText("file.hash."+h, value(ev, "file_details."+h))
		b.AddText("related.hash", value(ev, "file_details."+h))
	}
	b.AddText("file.name", value(ev, "file_details.name"))
	switch r.FilePath {
	case FilePathAsGiven:
		b.AddText("file.path", value(ev, "file_details.path"))
	case FilePathJoined:
		x.joinedFilePath(ev)
	}

	x.copyTo(r.IPAddress, ev["ip_address"])
	b.AddText("related.ip", ev["ip_address"])

	b.AddText("related.hosts", value(ev, "user_account.domain_name"))
	x.copyTo(r.PrimaryAddress, ev["primary_address"])
	for _, f := range r.AccountUsers {
		b.AddText("related.user", value(ev, f))
	}

	b.AddText("process.command_line", value(ev, "process.command_line"))
	for _, h := range []string{"sha1", "sha256"} {
		b.AddText("process.hash."+h, value(ev, "image_file."+h))
		b.AddText("related.hash", value(ev, "image_file."+h))
	}
	for _, h := range []string{"sha1", "sha256"} {
		b.AddText("process.parent.hash."+h, value(ev, "parent_process.image_file."+h))
		b.AddText("related.hash", value(ev, "parent_process.image_file."+h))
	}
	b.AddText("process.parent.start", value(ev, "parent_process.creation_datetime"))
	b.AddText("process.start", value(ev, "process.creation_datetime"))
	if r.ProcessNameFromImage {
		if name, ok := text(value(ev, "image_file.name")); ok {
			x.imageNames = append(x.imageNames, name)
		}
	}

	b.AddText("registry.hive", ev["registry_hive"])
	b.AddText("registry.key", ev["registry_key"])
	b.AddText("registry.data.type", ev["registry_value_type"])
	b.AddText("registry.value", ev["registry_value"])
	b.AddText("group.id", ev["security_group_id"])
}

// joinedFilePath is file.path for FilePathJoined: directory and name joined with a backslash
// whatever the platform, and nothing, rather than a lone separator, when both are missing.
func (x *extractor) joinedFilePath(ev mapstr.M) {
	dir, hasDir := text(value(ev, "file_details.path"))
	name, hasName := text(value(ev, "file_details.name"))
	if !hasDir && !hasName {
		return
	}
	x.ecs.Add("file.path", dir+`\`+name)
}

// finish adds the fields the integration computes over all evidence at once.
func (x *extractor) finish(items []mapstr.M) {
	b, r := x.ecs, x.rules
	for _, addr := range x.fromP2 {
		b.Add("email.from.address", addr)
	}

	var cloudAzure bool
	var groupName, hostID, userDomain, userID, userName, userEmail, procUserID, procUserName sortedSet
	var fileSize, pid, parentPID sortedSet
	var entityID, parentEntityID sortedSet
	var executable, parentExecutable sortedSet
	for _, ev := range items {
		if cp, ok := text(value(ev, "vm_metadata.cloud_provider")); ok && strings.EqualFold(cp, "azure") {
			cloudAzure = true
		}
		if r.ProcessExecutable {
			addExecutable(&executable, value(ev, "image_file"))
			addExecutable(&parentExecutable, value(ev, "parent_process.image_file"))
		}
		switch ev["odata_type"] {
		case typeSecurityGroup:
			groupName.addText(ev["display_name"])
		case typeDevice:
			hostID.addText(ev["mde_device_id"])
		case typeMailbox, typeUser:
			userDomain.addText(value(ev, "user_account.domain_name"))
			userName.addText(value(ev, "user_account.account_name"))
			if r.UserID != "" {
				userID.addText(value(ev, r.UserID))
			}
			if r.UserEmail != "" {
				userEmail.addText(value(ev, r.UserEmail))
			}
		case typeProcess:
			procUserID.addText(value(ev, "user_account.azure_ad_user_id"))
			procUserName.addText(value(ev, "user_account.account_name"))
			pid.addLong(value(ev, "process.id"))
			parentPID.addLong(value(ev, "parent_process.id"))
			if r.ProcessEntityID == EntityIDFingerprint {
				device, hasDevice := text(ev["mde_device_id"])
				if id, ok := entityKey(ev, "process", device, hasDevice); ok {
					entityID.addText(id)
				}
				if id, ok := entityKey(ev, "parent_process", device, hasDevice); ok {
					parentEntityID.addText(id)
				}
			}
		case typeFile:
			fileSize.addLong(value(ev, "file_details.size"))
		}
	}
	if cloudAzure {
		b.Add("cloud.provider", "azure")
	}
	replaceIfAny(b, "group.name", groupName)
	replaceIfAny(b, "host.id", hostID)
	replaceIfAny(b, "user.domain", userDomain)
	replaceIfAny(b, "user.id", userID)
	replaceIfAny(b, "user.name", userName)
	replaceIfAny(b, "user.email", userEmail)
	replaceIfAny(b, "process.user.id", procUserID)
	replaceIfAny(b, "process.user.name", procUserName)
	replaceIfAny(b, "file.size", fileSize)
	replaceIfAny(b, "process.pid", pid)
	replaceIfAny(b, "process.parent.pid", parentPID)

	switch r.ProcessEntityID {
	case EntityIDFromPID:
		for _, p := range b.Values("process.pid") {
			b.AddText("process.entity_id", p)
		}
		for _, p := range b.Values("process.parent.pid") {
			b.AddText("process.parent.entity_id", p)
		}
	case EntityIDFingerprint:
		for _, k := range entityID.values() {
			b.Add("process.entity_id", Fingerprint(k))
		}
		for _, k := range parentEntityID.values() {
			b.Add("process.parent.entity_id", Fingerprint(k))
		}
	}
	if r.ProcessExecutable {
		replaceIfAny(b, "process.executable", executable)
		replaceIfAny(b, "process.parent.executable", parentExecutable)
		b.SingleWhenOne("process.executable")
		b.SingleWhenOne("process.parent.executable")
	}

	x.processNames()
}

// entityKey is the "pid|start|device" string EntityIDFingerprint fingerprints into an entity id.
func entityKey(ev mapstr.M, prefix, device string, hasDevice bool) (string, bool) {
	id, hasID := text(value(ev, prefix+".id"))
	start, hasStart := text(value(ev, prefix+".creation_datetime"))
	if !hasID || !hasStart || !hasDevice {
		return "", false
	}
	return id + "|" + start + "|" + device, true
}

func addExecutable(set *sortedSet, image any) {
	m, ok := image.(mapstr.M)
	if !ok {
		return
	}
	name, hasName := text(m["name"])
	if !hasName {
		return
	}
	dir, hasDir := text(m["path"])
	if !hasDir {
		set.addText(name)
		return
	}
	sep := "/"
	if strings.Contains(dir, `\`) {
		sep = `\`
	}
	if !strings.HasSuffix(dir, sep) {
		dir += sep
	}
	set.addText(dir + name)
}

// processNames sets process.name from image file names (Rules.ProcessNameFromImage) and from the
// first word of every command line (integration 4.0.1). A single name is a plain value, as in the
// integration; several keep the order in which they were found.
func (x *extractor) processNames() {
	b := x.ecs
	names := append([]any(nil), x.imageNames...)
	for _, cmd := range b.Values("process.command_line") {
		if name, ok := commandName(cmd); ok {
			names = append(names, name)
		}
	}
	b.Replace("process.name", names)
	b.SingleWhenOne("process.name")
}

func commandName(cmd any) (string, bool) {
	s, ok := cmd.(string)
	if !ok {
		return "", false
	}
	s = strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
	first, _, _ := strings.Cut(s, " ")
	if i := strings.LastIndex(first, "/"); i >= 0 {
		first = first[i+1:]
	}
	first = strings.ReplaceAll(first, `"`, "")
	return first, first != ""
}

func replaceIfAny(b *Builder, path string, s sortedSet) {
	if s.empty() {
		return
	}
	b.Replace(path, s.values())
}

// EvidenceCategories returns event.category and event.type as the alert pipeline derives them
// from evidence types and the determination (both sorted). Unknown evidence types and
// determinations add nothing.
func EvidenceCategories(a map[string]any) (categories, types []string) {
	cats := map[string]bool{}
	typs := map[string]bool{}
	if list, ok := a["evidence"].([]any); ok {
		for _, raw := range list {
			ev, ok := raw.(map[string]any)
			if !ok {
				continue
			}
			t, _ := ev["@odata.type"].(string)
			cat, ok := evidenceCategory[t]
			if !ok {
				continue
			}
			cats[cat] = true
			// The integration decides the type from the categories seen so far, not from this
			// evidence alone.
			switch {
			case cats["registry"]:
				typs["access"] = true
			case cats["threat"]:
				typs["indicator"] = true
			default:
				typs["info"] = true
			}
		}
	}
	if cat, _, ok := DeterminationCategory(a["determination"]); ok {
		cats[cat] = true
		if cats["threat"] {
			typs["indicator"] = true
		} else {
			typs["info"] = true
		}
	}
	return sortedKeys(cats), sortedKeys(typs)
}

// DeterminationCategory maps a determination (case-insensitive) to event.category and event.type.
func DeterminationCategory(v any) (category, typ string, ok bool) {
	s, isString := v.(string)
	if !isString {
		return "", "", false
	}
	switch strings.ToLower(s) {
	case "malware", "malicioususeractivity":
		return "malware", "info", true
	case "phishing":
		return "email", "info", true
	case "apt":
		return "threat", "indicator", true
	}
	return "", "", false
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
