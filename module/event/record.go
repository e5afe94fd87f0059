package event

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// prop is one property of a record: its name and its value.
type prop struct {
	key value
	val value
}

// record is one Advanced Hunting row on its way to a document. Records are reused (pooled), so
// a record keeps nothing after finish returns.
type record struct {
	raw      []byte // the record as it appeared in the message: the _id
	orig     string // raw, copied: event.original, and the text of most string values
	src      source
	category string
	tenant   value
	tenantID value
	opName   value
	time     value
	props    []prop

	opts transform.Options
	fam  *family

	vals []any   // m365_defender.event fields by field number
	set  []field // which vals are set, in the order they were set

	seenTop []bool // scratch of topLevelCount, by fieldDef.top; all false between uses

	ecs        mapstr.M
	kind       string
	categories []string
	types      []string
	related    [4][]string // hosts, user, ip, hash
	errs       []string
	timestamp  time.Time
}

const (
	relHosts = iota
	relUser
	relIP
	relHash
)

var relatedNames = [4]string{"hosts", "user", "ip", "hash"}

var recordPool = sync.Pool{New: func() any { return &record{vals: make([]any, len(fieldDefs))} }}

func getRecord() *record { return recordPool.Get().(*record) }

func putRecord(r *record) {
	for _, f := range r.set {
		r.vals[f] = nil
	}
	clear(r.props) // they point into the message, which must not outlive it here
	props := r.props[:0]
	set := r.set[:0]
	cats, types := r.categories[:0], r.types[:0]
	var rel [4][]string
	for i := range r.related {
		rel[i] = r.related[i][:0]
	}
	vals := r.vals
	*r = record{vals: vals, set: set, props: props, categories: cats, types: types, related: rel, seenTop: r.seenTop}
	recordPool.Put(r)
}

// --- m365_defender.event fields ---

func (r *record) val(f field) any { return r.vals[f] }

func (r *record) has(f field) bool { return r.vals[f] != nil }

// str returns a field's value when it is a string.
func (r *record) str(f field) string {
	s, _ := r.vals[f].(string)
	return s
}

func (r *record) setField(f field, v any) {
	if isEmpty(v) {
		r.del(f)
		return
	}
	if r.vals[f] == nil {
		r.set = append(r.set, f)
	}
	r.vals[f] = v
}

func (r *record) del(f field) { r.vals[f] = nil }

// --- ECS fields ---

// put sets an ECS field; empty values are skipped, as the pipeline's final clean-up drops them.
func (r *record) put(path string, v any) {
	if isEmpty(v) {
		return
	}
	m := r.ecs
	for {
		dot := strings.IndexByte(path, '.')
		if dot < 0 {
			m[path] = v
			return
		}
		key := path[:dot]
		child, ok := m[key].(mapstr.M)
		if !ok {
			child = mapstr.M{}
			m[key] = child
		}
		m, path = child, path[dot+1:]
	}
}

// putFrom copies a field to an ECS path.
func (r *record) putFrom(path string, f field) { r.put(path, r.vals[f]) }

func (r *record) category_(c string) { r.categories = appendUnique(r.categories, c) }

func (r *record) type_(t string) { r.types = append(r.types, t) }

func (r *record) relate(which int, v any) {
	if s := text(v); s != "" {
		r.related[which] = appendUnique(r.related[which], s)
	}
}

// relateColumns adds the values of columns to one related.* list, in order.
func (r *record) relateColumns(which int, columns ...field) {
	for _, f := range columns {
		r.relate(which, r.val(f))
	}
}

func (r *record) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case []string:
		return len(v) == 0
	case mapstr.M:
		return len(v) == 0
	}
	return false
}

// dropEmpty removes null and "" values, and the objects and arrays left empty, at any depth: the
// pipeline's final clean-up, for values that came as JSON objects or arrays.
func dropEmpty(v any) (any, bool) {
	// The original interface value is returned as it is: converting a string or a number back to
	// an interface would allocate again.
	switch x := v.(type) {
	case nil:
		return nil, false
	case string:
		return v, x != ""
	case mapstr.M:
		for k, el := range x {
			if kept, ok := dropEmpty(el); !ok {
				delete(x, k)
			} else if _, container := el.(mapstr.M); container || isList(el) {
				x[k] = kept
			}
		}
		return v, len(x) > 0
	case []any:
		out := x[:0]
		for _, el := range x {
			if kept, ok := dropEmpty(el); ok {
				out = append(out, kept)
			}
		}
		if len(out) == 0 {
			return nil, false
		}
		return out, true
	}
	return v, true
}

func isList(v any) bool {
	_, ok := v.([]any)
	return ok
}

// --- the mapping of one record ---

// mapProperties converts every column the family knows into its field; the rest of the record
// stays in event.original, as with the integration.
func (r *record) mapProperties() {
	for i := range r.props {
		p := &r.props[i]
		c, ok := r.fam.columns[string(p.key.raw[1:len(p.key.raw)-1])]
		if !ok && !p.key.plain {
			c, ok = r.fam.columns[r.src.text(p.key)]
		}
		if !ok {
			continue
		}
		v, ok, problem := r.convert(p.val, c.conv)
		if problem != "" {
			r.fail("m365_defender.event.%s: expected %s, got %s", fieldDefs[c.f].path, problem, clip(p.val.raw))
		}
		if ok {
			if c.conv == asIs || c.conv == jsonText {
				v, ok = dropEmpty(v)
			}
			if ok {
				r.setField(c.f, v)
			}
		}
	}
}

func clip(raw []byte) string {
	if len(raw) > 64 {
		return string(raw[:64]) + "…"
	}
	return string(raw)
}

// prop returns a property's raw value by name (null when absent).
func (r *record) prop(name string) value {
	for i := range r.props {
		if keyIs(r.props[i].key, name) {
			return r.props[i].val
		}
	}
	return value{}
}

// envelope maps the parts every record has, as the integration's default pipeline does.
func (r *record) envelope() {
	r.setField(fCategory, r.category)
	if v, ok, _ := r.convert(r.opName, asIs); ok {
		r.setField(fOperationName, v)
	}
	if v, ok, _ := r.convert(r.tenant, asIs); ok {
		r.setField(fTenantName, v)
	}
	if v, ok, _ := r.convert(r.tenantID, asIs); ok {
		r.setField(fTenantID, v)
	}
	if v, ok, problem := r.convert(r.time, toDate); ok {
		r.setField(fTime, v)
	} else if problem != "" {
		r.fail("m365_defender.event.time: expected %s, got %s", problem, clip(r.time.raw))
	}
	if ts := r.prop("Timestamp"); !ts.isNull() {
		if t, ok := parseTime(r.src.text(ts)); ok && ts.kind == kindString {
			r.timestamp = t.Truncate(time.Millisecond)
			r.setField(fTimestamp, formatTime(t))
		} else {
			r.fail("m365_defender.event.timestamp: expected an ISO 8601 date, got %s", clip(ts.raw))
		}
	}
	if r.timestamp.IsZero() {
		// A row without Timestamp still needs a time to be indexed in a data stream: the time
		// the Streaming API published it is the closest there is.
		if t, ok := parseTime(r.src.text(r.time)); ok && r.time.kind == kindString {
			r.timestamp = t.Truncate(time.Millisecond)
		}
	}
}

// finish builds the event: the common post-processing of the integration's default pipeline,
// the removal of duplicated custom fields, tags, event.original and the _id.
func (r *record) finish() beat.Event {
	r.processIdentity()
	if id := r.str(fDeviceID); id != "" {
		// Defender's response actions find the device by cloud.instance.id.
		r.put("cloud.instance.id", id)
		r.put("device.id", id)
	}
	r.putFrom("application.name", fApplication)

	if !r.opts.PreserveDuplicateCustom() {
		for _, f := range r.fam.duplicates {
			r.vals[f] = nil
		}
	}

	event, _ := r.ecs["event"].(mapstr.M)
	if event == nil {
		event = mapstr.M{}
		r.ecs["event"] = event
	}
	if r.opts.PreserveOriginal() || len(r.errs) > 0 {
		// As the integration: the record is kept only when asked for, or when part of it could
		// not be mapped, so that nothing of it is lost.
		event["original"] = r.orig
	}
	if r.kind != "" {
		event["kind"] = r.kind
	}
	if len(r.categories) > 0 {
		event["category"] = append([]string(nil), r.categories...)
	}
	if len(r.types) > 0 {
		event["type"] = append([]string(nil), r.types...)
	}
	if len(r.errs) > 0 {
		event["kind"] = "pipeline_error"
		r.ecs["error"] = mapstr.M{"message": append([]string(nil), r.errs...)}
	}
	var related mapstr.M
	for i, list := range r.related {
		if len(list) == 0 {
			continue
		}
		if related == nil {
			related = mapstr.M{}
		}
		related[relatedNames[i]] = append([]string(nil), list...)
	}
	if related != nil {
		r.ecs["related"] = related
	}
	r.ecs["ecs"] = mapstr.M{"version": transform.ECSVersion}
	if custom := r.custom(); len(custom) > 0 {
		r.ecs["m365_defender"] = mapstr.M{"event": custom}
	}
	if len(r.opts.Tags) > 0 {
		r.ecs["tags"] = append([]string(nil), r.opts.Tags...)
	}
	return beat.Event{
		Timestamp: r.timestamp,
		Meta:      mapstr.M{"_id": recordID(r.raw)},
		Fields:    r.ecs,
	}
}

// custom nests the m365_defender.event fields.
func (r *record) custom() mapstr.M {
	// Sized for its top-level keys: a map sized for every set field would be several times
	// larger than the nesting leaves it, and the profile shows that allocation.
	out := make(mapstr.M, r.topLevelCount())
	for _, f := range r.set {
		v := r.vals[f]
		if v == nil {
			continue
		}
		m := out
		segs := fieldDefs[f].segs
		for _, seg := range segs[:len(segs)-1] {
			child, ok := m[seg].(mapstr.M)
			if !ok {
				child = mapstr.M{}
				m[seg] = child
			}
			m = child
		}
		m[segs[len(segs)-1]] = v
	}
	return out
}

// topLevelCount is how many distinct first path segments the set fields have.
func (r *record) topLevelCount() int {
	if len(r.seenTop) < len(topKeys) {
		r.seenTop = make([]bool, len(topKeys))
	}
	n := 0
	for _, f := range r.set {
		if r.vals[f] == nil {
			continue
		}
		if t := fieldDefs[f].top; !r.seenTop[t] {
			r.seenTop[t] = true
			n++
		}
	}
	for _, f := range r.set {
		r.seenTop[fieldDefs[f].top] = false
	}
	return n
}

// processIdentity derives process.name and the entity ids the way the integration's default
// pipeline does after every family: the entity id is the fingerprint of pid, start and device
// id, the one the other m365_defender data streams compute, so the same process correlates
// across them; without a start or a device it is the pid.
func (r *record) processIdentity() {
	proc, _ := r.ecs["process"].(mapstr.M)
	if proc == nil {
		return
	}
	device := r.str(fDeviceID)
	entity := func(m mapstr.M) {
		pid, ok := m["pid"]
		if !ok {
			return
		}
		start, _ := m["start"].(string)
		if start != "" && device != "" {
			m["entity_id"] = fingerprint(text(pid) + "|" + start + "|" + device)
			return
		}
		m["entity_id"] = text(pid)
	}
	entity(proc)
	if parent, ok := proc["parent"].(mapstr.M); ok {
		entity(parent)
	}
	if _, ok := proc["name"]; ok {
		return
	}
	if exe, ok := proc["executable"].(string); ok && exe != "" {
		proc["name"] = exe
		return
	}
	if cmd, ok := proc["command_line"].(string); ok {
		if name := commandName(cmd); name != "" {
			proc["name"] = name
		}
	}
}

// commandName is the program a command line starts: its first space-separated token, without
// directories or quotes.
func commandName(cmd string) string {
	cmd = strings.TrimSpace(cmd)
	if i := strings.IndexByte(cmd, ' '); i >= 0 {
		cmd = cmd[:i]
	}
	if i := strings.LastIndexByte(cmd, '/'); i >= 0 {
		cmd = cmd[i+1:]
	}
	return strings.ReplaceAll(cmd, `"`, "")
}

// recordID identifies a record by its bytes: a record delivered twice (a rebalance, a restart
// before the checkpoint) is indexed once.
func recordID(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:16])
}
