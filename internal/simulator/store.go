package simulator

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// record is one Graph entity as served. Records are immutable once stored:
// updates replace the whole record, so a response can keep using the bodies
// it collected after the store lock is released.
type record struct {
	id         string
	props      stringProps // the filterable string properties; the rest lives only in body
	body       []byte
	masked     []byte // body as seen without "Prefer: include-unknown-enum-members"; nil when identical
	updated    time.Time
	created    time.Time
	incidentID string
	// title and category let incidents be derived from alerts without decoding them.
	title, category string
	// embedded holds the alerts an incident was stored with (PutIncident with
	// an "alerts" array); such incidents serve exactly these on $expand.
	embedded    [][]byte
	hasEmbedded bool
}

func (r *record) payload(includeUnknownEnums bool) []byte {
	if !includeUnknownEnums && r.masked != nil {
		return r.masked
	}
	return r.body
}

// stringProps keeps the string-valued filterable properties so filtering
// never decodes bodies (large tenants are kept as JSON only).
type stringProps struct {
	values [len(stringPropNames)]string
	isSet  [len(stringPropNames)]bool
}

var stringPropNames = [...]string{"assignedTo", "classification", "determination", "severity", "serviceSource", "status"}

func stringPropIndex(name string) int {
	for i, n := range stringPropNames {
		if n == name {
			return i
		}
	}
	return -1
}

// prop returns a string property and whether it is a string at all (null or
// missing is not).
func (r *record) prop(name string) (string, bool) {
	i := stringPropIndex(name)
	if i < 0 {
		return "", false
	}
	return r.props.values[i], r.props.isSet[i]
}

func (r *record) str(name string) string {
	v, _ := r.prop(name)
	return v
}

// decode returns a fresh copy of the record's fields.
func (r *record) decode() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil || m == nil {
		m = map[string]any{"id": r.id}
	}
	return m
}

type entityKind int

const (
	kindAlert entityKind = iota
	kindIncident
)

// newRecord takes ownership of raw and keeps only its JSON.
func newRecord(kind entityKind, raw map[string]any) (*record, error) {
	id := scalarString(raw["id"])
	if id == "" {
		return nil, fmt.Errorf("record has no id")
	}
	rec := &record{id: id}
	for i, name := range stringPropNames {
		if v, ok := raw[name].(string); ok {
			rec.props.values[i], rec.props.isSet[i] = v, true
		}
	}
	rec.updated, _ = parseGraphTime(scalarString(raw["lastUpdateDateTime"]))
	rec.created, _ = parseGraphTime(scalarString(raw["createdDateTime"]))
	if kind == kindAlert {
		rec.incidentID = scalarString(raw["incidentId"])
		rec.title, _ = raw["title"].(string)
		rec.category, _ = raw["category"].(string)
	}
	if kind == kindIncident {
		if alerts, ok := raw["alerts"]; ok {
			rec.hasEmbedded = true
			delete(raw, "alerts")
			list, _ := alerts.([]any)
			for _, a := range list {
				b, err := json.Marshal(a)
				if err != nil {
					return nil, err
				}
				rec.embedded = append(rec.embedded, b)
			}
		}
	}
	var err error
	if rec.body, err = json.Marshal(raw); err != nil {
		return nil, err
	}
	if masked, changed := maskEvolvableEnums(kind, raw); changed {
		if rec.masked, err = json.Marshal(masked); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// cloneRaw copies a caller's map so later changes on either side stay apart.
func cloneRaw(raw map[string]any) (map[string]any, error) {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func scalarString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case json.Number:
		return t.String()
	}
	return ""
}

// Graph replaces members added to an evolvable enum after unknownFutureValue
// with "unknownFutureValue" unless the client opts in with
// "Prefer: include-unknown-enum-members".
var evolvableEnumMembers = map[string]map[string]bool{
	"serviceSource": set("microsoftDefenderForCloud", "microsoftSentinel", "microsoftInsiderRiskManagement"),
	"detectionSource": set("microsoftDefenderForCloud", "microsoftDefenderForIoT", "microsoftDefenderForServers",
		"microsoftDefenderForStorage", "microsoftDefenderForDNS", "microsoftDefenderForDatabases",
		"microsoftDefenderForContainers", "microsoftDefenderForNetwork", "microsoftDefenderForAppService",
		"microsoftDefenderForKeyVault", "microsoftDefenderForResourceManager", "microsoftDefenderForApiManagement",
		"nrtAlerts", "scheduledAlerts", "microsoftDefenderThreatIntelligenceAnalytics", "builtInMl",
		"microsoftInsiderRiskManagement", "microsoftSentinel"),
	"determination": set("multiStagedAttack", "compromisedAccount", "phishing", "maliciousUserActivity",
		"notMalicious", "notEnoughDataToValidate", "confirmedUserActivity", "lineOfBusinessApplication"),
}

var evolvableIncidentStatus = set("awaitingAction")

func set(values ...string) map[string]bool {
	m := make(map[string]bool, len(values))
	for _, v := range values {
		m[v] = true
	}
	return m
}

func maskEvolvableEnums(kind entityKind, raw map[string]any) (map[string]any, bool) {
	var out map[string]any
	replace := func(key string) {
		if out == nil {
			out = make(map[string]any, len(raw))
			for k, v := range raw {
				out[k] = v
			}
		}
		out[key] = "unknownFutureValue"
	}
	for key, members := range evolvableEnumMembers {
		if kind == kindIncident && key != "determination" {
			continue
		}
		if v, ok := raw[key].(string); ok && members[v] {
			replace(key)
		}
	}
	if kind == kindIncident {
		if v, ok := raw["status"].(string); ok && evolvableIncidentStatus[v] {
			replace("status")
		}
	}
	return out, out != nil
}

type store struct {
	mu         sync.RWMutex
	alerts     map[string]*record
	incidents  map[string]*record
	byIncident map[string]map[string]*record
}

func newStore() *store {
	return &store{
		alerts:     map[string]*record{},
		incidents:  map[string]*record{},
		byIncident: map[string]map[string]*record{},
	}
}

// putAlert must be called with mu held for writing.
func (st *store) putAlertLocked(rec *record) {
	if old, ok := st.alerts[rec.id]; ok && old.incidentID != "" {
		if m := st.byIncident[old.incidentID]; m != nil {
			delete(m, old.id)
			if len(m) == 0 {
				delete(st.byIncident, old.incidentID)
			}
		}
	}
	st.alerts[rec.id] = rec
	if rec.incidentID != "" {
		m := st.byIncident[rec.incidentID]
		if m == nil {
			m = map[string]*record{}
			st.byIncident[rec.incidentID] = m
		}
		m[rec.id] = rec
	}
}

func (st *store) putIncidentLocked(rec *record) {
	st.incidents[rec.id] = rec
}

func (st *store) reset() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.alerts = map[string]*record{}
	st.incidents = map[string]*record{}
	st.byIncident = map[string]map[string]*record{}
}

// alertsOfLocked returns an incident's alerts in id order.
func (st *store) alertsOfLocked(incidentID string) []*record {
	m := st.byIncident[incidentID]
	out := make([]*record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].id, out[j].id) })
	return out
}

// idLess orders numeric ids (incidents) numerically and everything else as text.
func idLess(a, b string) bool {
	na, errA := strconv.ParseInt(a, 10, 64)
	nb, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return na < nb
	}
	return a < b
}

func snapshot(m map[string]*record) []map[string]any {
	recs := make([]*record, 0, len(m))
	for _, r := range m {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return idLess(recs[i].id, recs[j].id) })
	out := make([]map[string]any, 0, len(recs))
	for _, r := range recs {
		var v map[string]any
		if err := json.Unmarshal(r.body, &v); err == nil {
			out = append(out, v)
		}
	}
	return out
}
