package eventhubfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/go-amqp"
)

// handleRPC answers one $cbs or $management request. The reply goes to the receiver link whose
// target is the request's reply-to: the SDK builds that address with swapped ReplaceAll
// arguments ("$cbs$$cbs-reply-to-<uuid>"), so it must be matched, never parsed.
func (c *conn) handleRPC(l *link, payload []byte) {
	var req amqp.Message
	if err := req.UnmarshalBinary(payload); err != nil {
		c.srv.logf("undecodable %s request: %v", map[linkKind]string{kindCBSRequests: "$cbs", kindMgmtRequests: "$management"}[l.kind], err)
		return
	}
	if req.Properties == nil || req.Properties.ReplyTo == nil {
		return
	}
	var (
		status int32
		desc   string
		value  any
		delay  time.Duration
	)
	if l.kind == kindCBSRequests {
		status, desc = c.putToken(&req)
		delay = c.srv.faults.claimDelay()
	} else {
		status, desc, value = c.management(&req)
	}
	resp := &amqp.Message{
		Properties:            &amqp.MessageProperties{CorrelationID: req.Properties.MessageID},
		ApplicationProperties: map[string]any{"status-code": status, "status-description": desc},
		Value:                 value,
	}
	enc, err := resp.MarshalBinary()
	if err != nil {
		c.srv.logf("encoding reply: %v", err)
		return
	}
	replyTo := *req.Properties.ReplyTo
	if delay <= 0 {
		c.routeReply(replyTo, enc)
		return
	}
	c.after = append(c.after, func() {
		go func() {
			select {
			case <-time.After(delay):
			case <-c.done:
				return
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.closed {
				c.routeReply(replyTo, enc)
			}
		}()
	})
}

func (c *conn) routeReply(address string, enc []byte) {
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.kind == kindReplies && l.address == address && !l.detached {
				l.replyQueue = append(l.replyQueue, enc)
				c.flushReplies(l)
				return
			}
		}
	}
}

func (c *conn) flushReplies(l *link) {
	for len(l.replyQueue) > 0 && l.credit > 0 && !l.detached {
		c.send(c.appendTransfer(nil, l, l.replyQueue[0], 0))
		l.replyQueue = l.replyQueue[1:]
	}
}

func appString(m *amqp.Message, key string) string {
	s, _ := m.ApplicationProperties[key].(string)
	return s
}

// putToken handles a $cbs claim; the status codes are those the SDK distinguishes
// (internal/errors.go): 401/404 fatal, 408/500/503 retried.
func (c *conn) putToken(req *amqp.Message) (int32, string) {
	if appString(req, "operation") != "put-token" {
		return 400, "unsupported $cbs operation"
	}
	if code, refused := c.srv.faults.takeClaimRefusal(); refused {
		return code, "claim refused by fault injection"
	}
	audience := appString(req, "name")
	u, err := url.Parse(audience)
	if err != nil || audience == "" {
		return 400, "invalid audience"
	}
	if key := c.srv.cfg.SASKey; key != "" {
		token, _ := req.Value.(string)
		if err := verifySAS(token, audience, c.srv.cfg.SASKeyName, key, time.Now()); err != "" {
			return 401, err
		}
	}
	c.claims[strings.ToLower(strings.TrimPrefix(u.Path, "/"))] = true
	return 202, "Accepted"
}

// verifySAS checks a "SharedAccessSignature sr=&sig=&se=&skn=" token as the SDK's sas package
// signs it: HMAC-SHA256 over "<lower(url-escaped audience)>\n<expiry>". It returns a reason on
// failure; the reason never contains the key or the signature.
func verifySAS(token, audience, keyName, key string, now time.Time) string {
	rest, ok := strings.CutPrefix(token, "SharedAccessSignature ")
	if !ok {
		return "not a shared access signature"
	}
	q, err := url.ParseQuery(rest)
	if err != nil {
		return "malformed shared access signature"
	}
	sr, sig, se, skn := q.Get("sr"), q.Get("sig"), q.Get("se"), q.Get("skn")
	if skn != keyName {
		return "unknown key name"
	}
	if !strings.EqualFold(sr, audience) {
		return "token audience does not match the claim"
	}
	exp, err := strconv.ParseInt(se, 10, 64)
	if err != nil || now.Unix() >= exp {
		return "token expired"
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(strings.ToLower(url.QueryEscape(sr)) + "\n" + se))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return "invalid signature"
	}
	return ""
}

// management answers READ for hub and partition properties with the exact types the V2 SDK
// checks in mgmt.go (array-typed partition_ids, georeplication_factor, string offsets).
func (c *conn) management(req *amqp.Message) (int32, string, any) {
	if appString(req, "operation") != "READ" {
		return 400, "unsupported management operation", nil
	}
	name := appString(req, "name")
	h := c.srv.hub(name)
	if h == nil {
		return 404, "event hub not found", nil
	}
	if c.srv.cfg.SASKey != "" && !c.claims[strings.ToLower(h.name+"/$management")] {
		return 401, "no valid $cbs token for the management endpoint", nil
	}
	switch appString(req, "type") {
	case "com.microsoft:eventhub":
		return 200, "OK", map[string]any{
			"name":                  h.name,
			"type":                  "com.microsoft:eventhub",
			"created_at":            h.created,
			"partition_count":       int32(len(h.partitions)),
			"partition_ids":         h.partitionIDs(),
			"georeplication_factor": int32(1),
		}
	case "com.microsoft:partition":
		p := h.partition(appString(req, "partition"))
		if p == nil {
			return 404, "partition not found", nil
		}
		props := p.properties()
		props["type"] = "com.microsoft:partition"
		return 200, "OK", props
	}
	return 400, "unsupported management type", nil
}
