package incident

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/graphalert"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

var _ transform.Func = Transform

// Transform maps one Graph incident to the documents of the reference integration's incident
// data stream: one per embedded alert when `alerts` is an array (Graph's $expand=alerts), one
// with that alert when it is a single object (the integration's split form, and its test files),
// one without alert data when it is absent or empty. Alerts are decoded and emitted one at a time,
// so an incident with hundreds of alerts never has all its documents in memory.
//
// @metadata._id is graphalert.Fingerprint of the incident id, its lastUpdateDateTime and the
// embedded alert's id: re-sent documents keep their _id, any update gives a new one.
//
// With the preserve_original_event tag, event.original is the record with `alerts` holding the
// document's own alert, byte for byte from the input — what the integration's input would have
// sent for that alert.
func Transform(raw []byte, opts transform.Options, emit transform.Emit) error {
	rec, err := split(raw)
	if err != nil {
		return err
	}
	if page, ok := rec.fields["value"]; ok && rec.alerts == nil {
		var list []json.RawMessage
		if json.Unmarshal(page, &list) == nil {
			if len(list) == 0 {
				return nil // an empty Graph page, dropped as the integration does
			}
			return errors.New("record is a Graph page with incidents in it, not one incident")
		}
	}
	inc, err := decodeFields(rec.fields)
	if err != nil {
		return err
	}
	updated, ok := graphalert.ParseTime(inc["lastUpdateDateTime"])
	if !ok {
		return fmt.Errorf("incident %v: lastUpdateDateTime missing or not an ISO 8601 time", inc["id"])
	}
	d := documenter{raw: raw, rec: rec, inc: inc, opts: opts, timestamp: updated.Truncate(time.Millisecond), emit: emit}

	alerts := bytes.TrimSpace(rec.alerts)
	switch {
	case len(alerts) == 0 || string(alerts) == "null":
		return d.emitOne(nil, nil)
	case alerts[0] == '{':
		a, err := graphalert.DecodeObject(alerts)
		if err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		if len(a) == 0 {
			return d.emitOne(nil, nil)
		}
		return d.emitOne(a, rec.alerts)
	case alerts[0] == '[':
		return d.emitEach(alerts)
	default:
		return errors.New("alerts is neither an object nor an array")
	}
}

// record is an incident split at its top level, its alerts kept undecoded.
type record struct {
	fields map[string]json.RawMessage
	alerts json.RawMessage
	// alertsStart and alertsEnd delimit the alerts value in the raw record.
	alertsStart, alertsEnd int
}

func split(raw []byte) (record, error) {
	rec := record{fields: map[string]json.RawMessage{}}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return rec, errors.New("incident: not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return rec, fmt.Errorf("invalid JSON: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return rec, fmt.Errorf("invalid JSON: %w", err)
		}
		if key == "alerts" {
			rec.alerts = v
			rec.alertsEnd = int(dec.InputOffset())
			rec.alertsStart = rec.alertsEnd - len(v)
			continue
		}
		rec.fields[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return rec, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return rec, errors.New("invalid JSON: data after the incident")
	}
	return rec, nil
}

func decodeFields(fields map[string]json.RawMessage) (map[string]any, error) {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		var val any
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("invalid JSON in %s: %w", k, err)
		}
		out[k] = val
	}
	return out, nil
}

type documenter struct {
	raw       []byte
	rec       record
	inc       map[string]any
	opts      transform.Options
	timestamp time.Time
	emit      transform.Emit
}

func (d documenter) emitEach(array []byte) error {
	dec := json.NewDecoder(bytes.NewReader(array))
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("alerts: %w", err)
	}
	emitted := 0
	for dec.More() {
		var item json.RawMessage
		if err := dec.Decode(&item); err != nil {
			return fmt.Errorf("alerts: %w", err)
		}
		a, err := graphalert.DecodeObject(item)
		if err != nil {
			return fmt.Errorf("alerts[%d]: %w", emitted, err)
		}
		if err := d.emitOne(a, item); err != nil {
			return err
		}
		emitted++
	}
	if emitted == 0 {
		return d.emitOne(nil, nil)
	}
	return nil
}

// original is the record as the integration's input would have sent it for one alert.
func (d documenter) original(alertRaw []byte) string {
	if alertRaw == nil || d.rec.alerts == nil || bytes.Equal(alertRaw, d.rec.alerts) {
		return string(d.raw)
	}
	var b strings.Builder
	b.Grow(d.rec.alertsStart + len(alertRaw) + len(d.raw) - d.rec.alertsEnd)
	b.Write(d.raw[:d.rec.alertsStart])
	b.Write(alertRaw)
	b.Write(d.raw[d.rec.alertsEnd:])
	return b.String()
}

func (d documenter) emitOne(a map[string]any, alertRaw []byte) error {
	inc := d.inc
	keep := d.opts.PreserveDuplicateCustom()
	ecs := graphalert.NewBuilder()

	custom := mapstr.M{}
	event := mapstr.M{"kind": "alert"}
	fields := mapstr.M{"ecs": mapstr.M{"version": transform.ECSVersion}, "event": event}

	if category, typ, ok := graphalert.DeterminationCategory(inc["determination"]); ok {
		event["category"] = []string{category}
		event["type"] = []string{typ}
	}
	copyClean(custom, "odata_type", inc["@odata.type"])
	if v, ok := graphalert.Date(inc["lastUpdateDateTime"]); ok {
		custom["last_update_datetime"] = v
	}
	if name, ok := inc["displayName"].(string); ok && name != "" {
		custom["display_name"] = name
		fields["message"] = name
	} else {
		copyClean(custom, "display_name", inc["displayName"])
	}
	if tenant := copyClean(custom, "tenant_id", inc["tenantId"]); tenant != "" {
		_, _ = fields.Put("cloud.account.id", tenant)
	}
	if v, ok := graphalert.Date(inc["createdDateTime"]); ok {
		custom["created_datetime"] = v
		event["created"] = v
	}
	if id := copyClean(custom, "id", inc["id"]); id != "" {
		event["id"] = id
	}
	if sev, ok := inc["severity"].(string); ok && sev != "" {
		custom["severity"] = strings.ToLower(sev)
		if n, ok := graphalert.Severity(sev); ok {
			event["severity"] = n
		}
	}
	if parts, ok := graphalert.URLParts(inc["incidentWebUrl"]); ok {
		custom["web_url"] = parts
		event["url"] = parts["original"]
	}
	if assignee := copyClean(custom, "assigned_to", inc["assignedTo"]); assignee != "" {
		putAssignee(fields, ecs, assignee)
	}

	if a != nil {
		if provider, ok := a["serviceSource"].(string); ok && provider != "" {
			event["provider"] = provider
		}
		// A single value, like the alert dataset's: the pipeline sets it from the one alert.
		if family, ok := a["threatFamilyName"].(string); ok && family != "" {
			_, _ = fields.Put("threat.group.name", family)
		}
		if alert := rules.MapAlert(a, keep, ecs); len(alert) > 0 {
			custom["alert"] = alert
		}
	}

	copyClean(custom, "classification", inc["classification"])
	copyClean(custom, "comments", inc["comments"])
	if comments, ok := custom["comments"].([]any); ok {
		for _, c := range comments {
			if m, ok := c.(mapstr.M); ok {
				ecs.AddText("related.user", m["createdByDisplayName"])
				ecs.AddText("related.user", m["createdBy"])
			}
		}
	}
	copyClean(custom, "determination", inc["determination"])
	copyClean(custom, "redirect_incident_id", inc["redirectIncidentId"])
	copyClean(custom, "status", inc["status"])
	copyClean(custom, "tags", inc["tags"])

	if !keep {
		for _, f := range []string{"last_update_datetime", "tenant_id", "created_datetime", "id", "web_url", "assigned_to"} {
			delete(custom, f)
		}
	}
	if d.opts.PreserveOriginal() {
		event["original"] = d.original(alertRaw)
	}

	ecs.PutInto(fields)
	if len(custom) > 0 {
		fields["m365_defender"] = mapstr.M{"incident": custom}
	}
	if len(d.opts.Tags) > 0 {
		fields["tags"] = append([]string(nil), d.opts.Tags...)
	}
	var alertID any
	if a != nil {
		alertID = a["id"]
	}
	d.emit(beat.Event{
		Timestamp: d.timestamp,
		Meta:      mapstr.M{"_id": graphalert.Fingerprint(inc["id"], inc["lastUpdateDateTime"], alertID)},
		Fields:    fields,
	})
	return nil
}

// copyClean stores v (cleaned) under key when anything is left, and returns its text form ("" for
// objects and arrays, which is enough for callers that only test presence).
func copyClean(m mapstr.M, key string, v any) string {
	c, ok := graphalert.Clean(v)
	if !ok {
		return ""
	}
	m[key] = c
	switch val := c.(type) {
	case string:
		return val
	case []any, mapstr.M:
		return "present"
	default:
		return fmt.Sprint(val)
	}
}

// assigneeAddress is the integration's grok `%{USERNAME}@%{HOSTNAME}`.
var assigneeAddress = regexp.MustCompile(`^([a-zA-Z0-9._-]+)@([0-9A-Za-z][0-9A-Za-z-]{0,62}(?:\.[0-9A-Za-z][0-9A-Za-z-]{0,62})*\.?)$`)

// putAssignee splits an assignee address into source.user.{name,domain,email}; anything else is
// the user name.
func putAssignee(fields mapstr.M, ecs *graphalert.Builder, assignee string) {
	name := assignee
	if m := assigneeAddress.FindStringSubmatch(assignee); m != nil {
		name = m[1]
		_, _ = fields.Put("source.user.domain", m[2])
	}
	_, _ = fields.Put("source.user.name", name)
	ecs.Add("related.user", name)
	if strings.Index(assignee, "@") > 0 {
		_, _ = fields.Put("source.user.email", assignee)
		ecs.Add("related.user", assignee)
	}
}
