package alert

import (
	"errors"
	"fmt"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/graphalert"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

var _ transform.Func = Transform

// Transform maps one Graph alerts_v2 alert to the document of the reference integration's alert
// data stream. An empty Graph page (`{"value": []}`), which the integration drops, yields
// nothing; a page with alerts in it is not one record and is an error.
//
// @metadata._id is graphalert.Fingerprint of the alert's id, lastUpdateDateTime, incidentId and
// providerAlertId, as the integration computes it: a re-sent alert gets the same _id, an updated
// one a new _id.
func Transform(raw []byte, opts transform.Options, emit transform.Emit) error {
	a, err := graphalert.DecodeObject(raw)
	if err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	if page, ok := a["value"]; ok {
		list, isList := page.([]any)
		switch {
		case isList && len(list) == 0:
			return nil
		case isList:
			return errors.New("record is a Graph page with alerts in it, not one alert")
		}
	}
	updated, ok := graphalert.ParseTime(a["lastUpdateDateTime"])
	if !ok {
		return fmt.Errorf("alert %v: lastUpdateDateTime missing or not an ISO 8601 time", a["id"])
	}

	keep := opts.PreserveDuplicateCustom()
	ecs := graphalert.NewBuilder()
	custom := rules.MapAlert(a, keep, ecs)

	event := mapstr.M{"kind": "alert"}
	if categories, types := graphalert.EvidenceCategories(a); len(categories) > 0 {
		event["category"] = categories
		event["type"] = types
	}
	if id, ok := a["id"].(string); ok && id != "" {
		event["id"] = id
	}
	if provider, ok := a["serviceSource"].(string); ok && provider != "" {
		event["provider"] = provider
	}
	if sev, ok := graphalert.Severity(a["severity"]); ok {
		event["severity"] = sev
	}
	if created, ok := graphalert.Date(a["createdDateTime"]); ok {
		event["created"] = created
	}
	start, hasStart := graphalert.ParseTime(a["firstActivityDateTime"])
	end, hasEnd := graphalert.ParseTime(a["lastActivityDateTime"])
	if hasStart {
		event["start"] = start.Format(graphalert.DateLayout)
	}
	if hasEnd {
		event["end"] = end.Format(graphalert.DateLayout)
	}
	if hasStart && hasEnd {
		// From the millisecond values, as the integration computes it.
		event["duration"] = int64(end.Truncate(time.Millisecond).Sub(start.Truncate(time.Millisecond)))
	}
	if parts, ok := graphalert.URLParts(a["alertWebUrl"]); ok {
		event["url"] = parts["original"]
	}
	if opts.PreserveOriginal() {
		event["original"] = string(raw)
	}

	fields := mapstr.M{
		"ecs":   mapstr.M{"version": transform.ECSVersion},
		"event": event,
	}
	if description, ok := a["description"].(string); ok && description != "" {
		fields["message"] = description
	}
	if tenant, ok := a["tenantId"].(string); ok && tenant != "" {
		_, _ = fields.Put("cloud.account.id", tenant)
	}
	if assignee, ok := a["assignedTo"].(string); ok && assignee != "" {
		_, _ = fields.Put("source.user.name", assignee)
		ecs.Add("related.user", assignee)
	}
	if family, ok := a["threatFamilyName"].(string); ok && family != "" {
		_, _ = fields.Put("threat.group.name", family)
	}
	ecs.PutInto(fields)
	if len(custom) > 0 {
		fields["m365_defender"] = mapstr.M{"alert": custom}
	}
	if len(opts.Tags) > 0 {
		fields["tags"] = append([]string(nil), opts.Tags...)
	}

	emit(beat.Event{
		Timestamp: updated.Truncate(time.Millisecond),
		Meta: mapstr.M{"_id": graphalert.Fingerprint(
			a["id"], a["lastUpdateDateTime"], a["incidentId"], a["providerAlertId"])},
		Fields: fields,
	})
	return nil
}
