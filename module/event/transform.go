// Package event turns Microsoft Defender XDR Streaming API records (Advanced Hunting rows sent to
// an Azure Event Hub) into the documents of Elastic's m365_defender.event data stream.
//
// An Event Hub message is {"records":[record, …]}; a record is
//
//	{"time": …, "tenantId": …, "operationName": "Publish", "category": "AdvancedHunting-<Table>",
//	 "properties": {<the table's columns>}}
//
// Each record is routed by its category to the mapping of its table family (alert, device, email,
// app and identity), which follows the integration's ingest pipelines: the columns under
// m365_defender.event.* with the integration's names and types, and the ECS fields derived from
// them. A table the mapping does not know still becomes a document, its columns kept under
// m365_defender.event.properties.
//
// This is the volume path (tens of thousands of records a second), so a message is read in one
// pass with a small JSON reader of its own and each column is converted once, straight to the
// value its field needs.
package event

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/elastic/beats/v7/libbeat/beat"
	"github.com/elastic/elastic-agent-libs/mapstr"

	"github.com/defenderbeat/defenderbeat/internal/graphalert"
	"github.com/defenderbeat/defenderbeat/internal/transform"
)

// A family maps the tables one of the integration's sub-pipelines handles.
type family struct {
	name    string
	columns columns
	// duplicates are the fields whose values the mapping copies to ECS fields; they are dropped
	// unless the preserve_duplicate_custom_fields tag is set.
	duplicates []field
	mapRecord  func(*record)
}

// Tables lists every Advanced Hunting table the mapping knows, by category, with its family.
var tables = map[string]*family{
	"AdvancedHunting-AlertEvidence":                alertFamily,
	"AdvancedHunting-AlertInfo":                    alertFamily,
	"AdvancedHunting-BehaviorEntities":             alertFamily,
	"AdvancedHunting-BehaviorInfo":                 alertFamily,
	"AdvancedHunting-CloudAppEvents":               identityFamily,
	"AdvancedHunting-CloudAuditEvents":             identityFamily,
	"AdvancedHunting-CloudProcessEvents":           deviceFamily,
	"AdvancedHunting-CloudStorageAggregatedEvents": identityFamily,
	"AdvancedHunting-DeviceEvents":                 deviceFamily,
	"AdvancedHunting-DeviceFileCertificateInfo":    deviceFamily,
	"AdvancedHunting-DeviceFileEvents":             deviceFamily,
	"AdvancedHunting-DeviceImageLoadEvents":        deviceFamily,
	"AdvancedHunting-DeviceInfo":                   deviceFamily,
	"AdvancedHunting-DeviceLogonEvents":            deviceFamily,
	"AdvancedHunting-DeviceNetworkEvents":          deviceFamily,
	"AdvancedHunting-DeviceNetworkInfo":            deviceFamily,
	"AdvancedHunting-DeviceProcessEvents":          deviceFamily,
	"AdvancedHunting-DeviceRegistryEvents":         deviceFamily,
	"AdvancedHunting-EmailAttachmentInfo":          emailFamily,
	"AdvancedHunting-EmailEvents":                  emailFamily,
	"AdvancedHunting-EmailPostDeliveryEvents":      emailFamily,
	"AdvancedHunting-EmailUrlInfo":                 emailFamily,
	"AdvancedHunting-IdentityDirectoryEvents":      identityFamily,
	"AdvancedHunting-IdentityInfo":                 identityFamily,
	"AdvancedHunting-IdentityLogonEvents":          identityFamily,
	"AdvancedHunting-IdentityQueryEvents":          identityFamily,
	"AdvancedHunting-MessageEvents":                emailFamily,
	"AdvancedHunting-MessagePostDeliveryEvents":    emailFamily,
	"AdvancedHunting-MessageUrlInfo":               emailFamily,
	"AdvancedHunting-UrlClickEvents":               emailFamily,
}

// Tables returns the categories the mapping knows.
func Tables() []string {
	names := make([]string, 0, len(tables))
	for name := range tables {
		names = append(names, name)
	}
	return names
}

// familyOf finds a category's family; Defender's spelling is exact, but case is forgiven.
func familyOf(category string) *family {
	if f, ok := tables[category]; ok {
		return f
	}
	for name, f := range tables {
		if strings.EqualFold(name, category) {
			return f
		}
	}
	return nil
}

// unknownFamily keeps the columns of a table the mapping does not know.
var unknownFamily = &family{name: "unknown", columns: columns{}}

// Summary counts what one message held.
type Summary struct {
	Records   int  // records in the message, usable or not
	Documents int  // documents emitted, error documents included
	Unknown   int  // records of tables the mapping does not know (still documents)
	Malformed int  // records that became error documents
	Sanitized bool // the message was only readable after the sanitizers repaired it
}

// Decoder turns Event Hub messages into documents. The zero Decoder applies no sanitizers.
type Decoder struct {
	// Sanitizers repair a message that is not valid JSON, in order (see SanitizerNames).
	Sanitizers []Sanitizer
}

var _ transform.Func = Transform

// Transform processes one Event Hub message, or a single record, with no sanitizers: the
// processing behind `defenderbeat transform --dataset event`.
func Transform(raw []byte, opts transform.Options, emit transform.Emit) error {
	_, err := Decoder{}.Decode(raw, opts, emit)
	return err
}

// Decode emits one document per record of msg, {"records":[…]} or a single record. A record
// that cannot be used (not an object, no category, properties not an object) becomes an error
// document and the others still flow. An error is returned, and nothing emitted, only when the
// message as a whole is unreadable; the caller then publishes transform.ErrorEvent for it.
//
// Error documents have no timestamp: the publisher gives them the time of publishing. With an
// error the Summary is zero.
func (d Decoder) Decode(msg []byte, opts transform.Options, emit transform.Emit) (Summary, error) {
	// A message is read twice: once to check that it is JSON, which takes a few per cent of
	// mapping it, then to map its records, each document handed on as soon as it is built. So an
	// unreadable message yields no partial output, and a reader blocked on a full queue holds one
	// document rather than a whole message's (hundreds of KB, for each partition it reads).
	if _, err := parseDocument(msg); err == nil {
		p := parser{opts: opts, emit: emit}
		if err := p.parse(msg); err != nil {
			return Summary{}, err // before any record: the check above rules out the rest
		}
		return p.sum, nil
	}
	return d.decodeWhole(msg, opts, emit)
}

// decodeWhole handles a message that is not valid JSON as it is: it keeps every document until
// the message has been read through, tries the sanitizers, and emits nothing if it still fails.
func (d Decoder) decodeWhole(msg []byte, opts transform.Options, emit transform.Emit) (Summary, error) {
	p := parser{opts: opts}
	err := p.parse(msg)
	if err != nil && errors.Is(err, errSyntax) && len(d.Sanitizers) > 0 {
		repaired := append([]byte(nil), msg...)
		for _, s := range d.Sanitizers {
			repaired = s(repaired)
		}
		p = parser{opts: opts}
		if err2 := p.parse(repaired); err2 == nil {
			err = nil
			p.sum.Sanitized = true
		}
	}
	if err != nil {
		return Summary{}, err
	}
	for _, ev := range p.out {
		emit(ev)
	}
	return p.sum, nil
}

// parser reads one message. With emit, each document is emitted as soon as it is built (the
// message is known to be valid JSON); without, documents are kept in out until the whole
// message has been read.
type parser struct {
	b    []byte
	opts transform.Options
	emit transform.Emit
	out  []beat.Event
	sum  Summary
}

func (p *parser) put(ev beat.Event) {
	p.sum.Documents++
	if p.emit != nil {
		p.emit(ev)
		return
	}
	p.out = append(p.out, ev)
}

func (p *parser) parse(msg []byte) error {
	p.b = msg
	i := skipSpace(msg, 0)
	if i >= len(msg) {
		return errors.New("message is empty")
	}
	var end int
	var err error
	switch msg[i] {
	case '{':
		end, err = p.object(i, true)
	case '[':
		end, err = p.recordList(i)
	default:
		_, _, err = scanValue(msg, i, 0)
		if err == nil {
			err = errors.New("message is not a JSON object")
		}
	}
	if err != nil {
		return fmt.Errorf("message is not valid JSON: %w", err)
	}
	if end = skipSpace(msg, end); end != len(msg) {
		return fmt.Errorf("message is not valid JSON: %w", syntaxErr(end, "data after the JSON value"))
	}
	return nil
}

func (p *parser) recordList(i int) (int, error) {
	return eachElementAt(p.b, i, func(at int) (int, error) {
		if at < len(p.b) && p.b[at] == '{' {
			return p.object(at, false)
		}
		v, end, err := scanValue(p.b, at, 1)
		if err != nil {
			return end, err
		}
		p.sum.Records++
		p.malformed(v.raw, fmt.Errorf("record is %s, not a JSON object", v.kind))
		return end, nil
	})
}

// object reads a record, or at the top of a message the {"records": […]} object.
func (p *parser) object(start int, top bool) (int, error) {
	r := getRecord()
	defer putRecord(r)
	var problem error
	hasCategory, isMessage := false, false
	end, err := eachMemberAt(p.b, start, func(key value, at int) (int, error) {
		if top && keyIs(key, "records") && at < len(p.b) && p.b[at] == '[' {
			isMessage = true
			return p.recordList(at)
		}
		if keyIs(key, "properties") {
			if at >= len(p.b) || p.b[at] != '{' {
				v, end, err := scanValue(p.b, at, 1)
				if err == nil && !v.isNull() {
					problem = fmt.Errorf("properties is %s, not a JSON object", v.kind)
				}
				return end, err
			}
			r.props = r.props[:0]
			return eachMemberAt(p.b, at, func(k value, vat int) (int, error) {
				v, end, err := scanValue(p.b, vat, 2)
				if err == nil {
					r.props = append(r.props, prop{key: k, val: v})
				}
				return end, err
			})
		}
		v, end, err := scanValue(p.b, at, 1)
		if err != nil {
			return end, err
		}
		switch {
		case keyIs(key, "category"):
			if c := v.text(); c != "" {
				r.category, hasCategory = c, true
			}
		case keyIs(key, "time"):
			r.time = v
		case keyIs(key, "tenantId"):
			r.tenantID = v
		case keyIs(key, "Tenant"):
			r.tenant = v
		case keyIs(key, "operationName"):
			r.opName = v
		}
		return end, nil
	})
	if err != nil || isMessage {
		return end, err
	}
	raw := p.b[start:end]
	p.sum.Records++
	switch {
	case problem != nil:
		p.malformed(raw, problem)
	case !hasCategory:
		p.malformed(raw, errors.New("record has no category (the Advanced Hunting table it comes from)"))
	default:
		r.raw = raw
		r.orig = string(raw)
		r.src = source{owner: r.orig, base: start}
		r.opts = p.opts
		p.put(p.build(r))
	}
	return end, nil
}

// build maps a complete record.
func (p *parser) build(r *record) beat.Event {
	r.ecs = make(mapstr.M, 24)
	r.fam = familyOf(r.category)
	r.envelope()
	if r.fam == nil {
		p.sum.Unknown++
		r.fam = unknownFamily
		r.kind = "event"
		if len(r.props) > 0 {
			props := mapstr.M{}
			for _, pr := range r.props {
				if v, ok := dropEmpty(r.src.generic(pr.val)); ok {
					props[r.src.text(pr.key)] = v
				}
			}
			r.setField(fProperties, props)
		}
		return r.finish()
	}
	r.mapProperties()
	r.fam.mapRecord(r)
	return r.finish()
}

func (p *parser) malformed(raw []byte, err error) {
	p.sum.Malformed++
	p.put(transform.ErrorEvent(raw, err, p.opts, time.Time{}))
}

// fingerprint hashes like Elasticsearch's fingerprint processor, as the integration does to
// build process entity ids.
func fingerprint(s string) string { return graphalert.Fingerprint(s) }
