package simulator

import (
	"bufio"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	sasVersion        = "2020-08-04"
	maxSASValidHours  = 6
	blobTimeLayout    = "Mon, 02 Jan 2006 15:04:05 GMT"
	exportContext     = "/api/$metadata#microsoft.windowsDefenderATP.api.ExportFilesResponse"
	badRowLine        = `{"Id": "broken`
	exportFlushBytes  = 32 << 10
	sasClockSkewAllow = 15 * time.Minute
)

// serveExport answers the export call with one SAS URL per file of the
// current generation. Calling it never triggers a generation, as with MDE.
func (s *Server) serveExport(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now()
	if !s.throttle(w, "export", exportLimits, now) {
		return
	}
	hours := 1
	if v := r.URL.Query().Get("sasValidHours"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxSASValidHours {
			writeMDEError(w, http.StatusBadRequest, "InvalidRequestBody", fmt.Sprintf("sasValidHours must be an integer between 1 and %d, got '%s'.", maxSASValidHours, v))
			return
		}
		hours = n
	}
	m := s.mde
	m.mu.Lock()
	gen := m.currentLocked(now)
	m.sasSerial++
	serial := m.sasSerial
	m.mu.Unlock()

	start := now.UTC().Truncate(time.Second)
	expiry := start.Add(time.Duration(hours) * time.Hour)
	files := make([]string, m.cfg.Files)
	for f := range files {
		p := m.filePath(gen, f)
		files[f] = baseURL(r) + p + "?" + m.sasQuery(p, start, expiry, serial)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": baseURL(r) + exportContext,
		"exportFiles":    files,
		"generatedTime":  gen.generated.UTC().Format(time.RFC3339),
	})
}

func (m *mdeState) filePath(gen mdeGeneration, file int) string {
	return fmt.Sprintf("%s%s/VaExport/json/OrgId=%s/part-%05d.json.gz", blobPathPrefix, generationPathStamp(gen.generated), m.tenant, file)
}

// parseFilePath is filePath's inverse; ok is false for any other path.
func (m *mdeState) parseFilePath(p string) (stamp string, file int, ok bool) {
	rest, ok := strings.CutPrefix(p, blobPathPrefix)
	if !ok {
		return "", 0, false
	}
	segs := strings.Split(rest, "/")
	if len(segs) != 6 || segs[2] != "VaExport" || segs[3] != "json" || !strings.EqualFold(segs[4], "OrgId="+m.tenant) {
		return "", 0, false
	}
	num, ok := strings.CutPrefix(segs[5], "part-")
	if num, ok = strings.CutSuffix(num, ".json.gz"); !ok || len(num) != 5 {
		return "", 0, false
	}
	file, err := strconv.Atoi(num)
	if err != nil || file < 0 || file >= m.cfg.Files {
		return "", 0, false
	}
	return segs[0] + "/" + segs[1], file, true
}

// sasQuery is a blob service SAS: read-only, for one blob, signed with a key
// only the simulator knows. si numbers the SAS so that a fault can revoke the
// ones issued so far while a re-requested export gets valid ones.
func (m *mdeState) sasQuery(path string, start, expiry time.Time, serial uint64) string {
	st, se, si := start.Format(time.RFC3339), expiry.Format(time.RFC3339), strconv.FormatUint(serial, 10)
	q := url.Values{}
	q.Set("sv", sasVersion)
	q.Set("st", st)
	q.Set("se", se)
	q.Set("sr", "b")
	q.Set("sp", "r")
	q.Set("si", si)
	q.Set("sig", m.sign(path, st, se, si))
	return q.Encode()
}

func (m *mdeState) sign(path, st, se, si string) string {
	mac := hmac.New(sha256.New, m.sasKey)
	io.WriteString(mac, "r\n"+st+"\n"+se+"\n/blob/tvmexportsim"+path+"\n"+si+"\n"+sasVersion+"\nb")
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// serveBlob serves an export file the way Azure Blob Storage does for a SAS
// URL; the file is generated while it is sent.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request) {
	now := s.cfg.Now().UTC()
	m := s.mde
	if r.Header.Get("Authorization") != "" {
		writeBlobError(w, now, http.StatusBadRequest, "InvalidAuthenticationInfo",
			"Authentication information is not given in the correct format. Check the value of Authorization header.", "")
		return
	}
	if r.Method != http.MethodGet {
		writeBlobError(w, now, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support specified Http Verb.", "")
		return
	}
	q := r.URL.Query()
	st, se, si, sig := q.Get("st"), q.Get("se"), q.Get("si"), q.Get("sig")
	if sig == "" {
		// A private container answers anonymous requests as if the blob did not exist.
		writeBlobError(w, now, http.StatusNotFound, "ResourceNotFound", "The specified resource does not exist.", "")
		return
	}
	if q.Get("sv") != sasVersion || q.Get("sr") != "b" || q.Get("sp") != "r" ||
		!hmac.Equal([]byte(sig), []byte(m.sign(r.URL.Path, st, se, si))) {
		writeBlobError(w, now, http.StatusForbidden, "AuthenticationFailed", authFailedMessage,
			"Signature did not match. String to sign used was r\n"+st+"\n"+se+"\n/blob/tvmexportsim"+r.URL.Path+"\n"+si)
		return
	}
	start, err1 := time.Parse(time.RFC3339, st)
	expiry, err2 := time.Parse(time.RFC3339, se)
	serial, err3 := strconv.ParseUint(si, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		writeBlobError(w, now, http.StatusForbidden, "AuthenticationFailed", authFailedMessage, "Signature fields not well formed.")
		return
	}
	m.mu.Lock()
	revoked := serial <= m.revoked[r.URL.Path]
	m.mu.Unlock()
	if revoked || !now.Before(expiry) || now.Before(start.Add(-sasClockSkewAllow)) {
		writeBlobError(w, now, http.StatusForbidden, "AuthenticationFailed", authFailedMessage, fmt.Sprintf(
			"Signature not valid in the specified time frame: Start [%s] - Expiry [%s] - Current [%s]",
			start.Format(blobTimeLayout), expiry.Format(blobTimeLayout), now.Format(blobTimeLayout)))
		return
	}
	stamp, file, ok := m.parseFilePath(r.URL.Path)
	var gen mdeGeneration
	if ok {
		gen, ok = m.generationAt(stamp)
	}
	if !ok {
		writeBlobError(w, now, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.", "")
		return
	}
	fault, hasFault := s.faults.take(r, s.tenantID, isDownloadFault)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Last-Modified", gen.generated.UTC().Format(blobTimeLayout))
	h.Set("ETag", fmt.Sprintf(`"0x8DC%013X"`, uint64(gen.generated.Unix())<<8|uint64(file)))
	h.Set("x-ms-blob-type", "BlockBlob")
	h.Set("x-ms-version", sasVersion)
	h.Set("x-ms-request-id", newRandomGUID())
	if hasFault && fault.Kind == FaultEmptyBody {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusOK)
	lo, hi := m.fileRows(file)
	plan := streamPlan{cutAfterBytes: -1, cutAfterRow: -1, badRow: -1}
	if hasFault {
		switch fault.Kind {
		case FaultSASExpireMidDownload:
			if fault.HugeBytes > 0 {
				plan.cutAfterBytes = fault.HugeBytes
			} else {
				plan.cutAfterRow = lo + (hi-lo)/2
			}
			plan.abort = true
		case FaultTruncatedGzip:
			plan.cutAfterRow = lo + (hi-lo)/2
		case FaultBadRow:
			plan.badRow = lo + (hi-lo)/2
		}
	}
	cut := m.streamFile(w, gen, lo, hi, plan)
	if cut && plan.abort {
		// Every SAS issued so far for this file now fails, as if it had expired.
		m.mu.Lock()
		m.revoked[r.URL.Path] = max(m.revoked[r.URL.Path], m.sasSerial)
		m.mu.Unlock()
		panic(http.ErrAbortHandler) // the client sees the connection cut mid-body
	}
}

// fileRows is the half-open range of generation rows in file f.
func (m *mdeState) fileRows(f int) (lo, hi int) {
	n, files := m.rows(), m.cfg.Files
	return int(int64(n) * int64(f) / int64(files)), int(int64(n) * int64(f+1) / int64(files))
}

type streamPlan struct {
	cutAfterBytes int  // stop once this many compressed bytes are out (-1: never)
	cutAfterRow   int  // stop before this row (-1: never)
	badRow        int  // replace this row by a line that is not JSON (-1: none)
	abort         bool // a cut drops the connection rather than ending the gzip stream early
}

type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// streamFile writes rows [lo, hi) as gzip'ed JSON lines. It reports whether
// the plan cut it short; a cut stream is flushed but has no gzip trailer.
func (m *mdeState) streamFile(w http.ResponseWriter, gen mdeGeneration, lo, hi int, plan streamPlan) (cut bool) {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := &countingWriter{w: bw}
	gz, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	row := newMDERow()
	buf := make([]byte, 0, exportFlushBytes+4096)
	flushRows := func() bool {
		if _, err := gz.Write(buf); err != nil {
			return false
		}
		buf = buf[:0]
		return true
	}
	for i := lo; i < hi; i++ {
		if i == plan.cutAfterRow || (plan.cutAfterBytes >= 0 && cw.n >= plan.cutAfterBytes) {
			if flushRows() && gz.Flush() == nil {
				_ = bw.Flush()
			}
			return true
		}
		if i == plan.badRow {
			buf = append(buf, badRowLine...)
		} else {
			m.exportRow(row, gen, i)
			buf = row.appendJSON(buf, true)
		}
		buf = append(buf, '\n')
		if len(buf) >= exportFlushBytes && !flushRows() {
			return false // the client hung up
		}
	}
	if plan.cutAfterBytes >= 0 {
		// The file is smaller than the cut: still cut before its trailer.
		if flushRows() && gz.Flush() == nil {
			_ = bw.Flush()
		}
		return true
	}
	if flushRows() && gz.Close() == nil {
		_ = bw.Flush()
	}
	return false
}

const authFailedMessage = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature."

// writeBlobError answers in Azure Storage's XML error format.
func writeBlobError(w http.ResponseWriter, now time.Time, status int, code, msg, detail string) {
	reqID := newRandomGUID()
	var b strings.Builder
	b.WriteString("\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>")
	b.WriteString(code)
	b.WriteString("</Code><Message>")
	xmlEscape(&b, msg+"\nRequestId:"+reqID+"\nTime:"+now.UTC().Format("2006-01-02T15:04:05.0000000Z"))
	b.WriteString("</Message>")
	if detail != "" {
		b.WriteString("<AuthenticationErrorDetail>")
		xmlEscape(&b, detail)
		b.WriteString("</AuthenticationErrorDetail>")
	}
	b.WriteString("</Error>")
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-ms-request-id", reqID)
	h.Set("x-ms-error-code", code)
	h.Set("Content-Length", strconv.Itoa(len(b.String())))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, b.String())
}

func xmlEscape(b *strings.Builder, s string) {
	for _, c := range s {
		switch c {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(c)
		}
	}
}

func writeBlobFaultError(w http.ResponseWriter, status int) {
	code, msg := "InternalError", "Server encountered an internal error. Please try again after some time."
	switch {
	case status == http.StatusForbidden:
		code, msg = "AuthorizationFailure", "This request is not authorized to perform this operation."
	case status == http.StatusNotFound:
		code, msg = "BlobNotFound", "The specified blob does not exist."
	case status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests:
		code, msg = "ServerBusy", "The server is busy."
	case status < 500:
		code, msg = "InvalidInput", "One of the request inputs is not valid."
	}
	writeBlobError(w, time.Now(), status, code, msg, "")
}

// writeMDEError answers in the Defender for Endpoint API's error format,
// whose target is a correlation id.
func writeMDEError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": code, "message": msg, "target": newRandomGUID(),
	}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeMDEFaultError(w http.ResponseWriter, status int) {
	code, msg := "InternalServerError", "An error occurred while processing the request."
	switch {
	case status == http.StatusUnauthorized:
		code, msg = "Unauthorized", "Unauthorized"
	case status == http.StatusForbidden:
		code, msg = "Forbidden", "The application does not have any of the required application permissions (Vulnerability.Read.All) to access the resource."
	case status == http.StatusTooManyRequests:
		code, msg = "TooManyRequests", "Reached quota limit either by number of requests or by CPU. Please wait and try again."
	case status == http.StatusServiceUnavailable:
		code, msg = "ServiceUnavailable", "The service is temporarily unavailable. Please retry later."
	case status < 500:
		code, msg = "BadRequest", http.StatusText(status)
	}
	writeMDEError(w, status, code, msg)
}

// throttle applies the API's per-tenant call limits; false means a 429 was written.
func (s *Server) throttle(w http.ResponseWriter, api string, limits []CallLimit, now time.Time) bool {
	if s.mde.cfg.DisableThrottling {
		return true
	}
	ok, wait := s.mde.limits.allow(api, limits, now)
	if ok {
		return true
	}
	setRetryAfter(w, wait)
	writeMDEError(w, http.StatusTooManyRequests, "TooManyRequests", "Reached quota limit either by number of requests or by CPU. Please wait and try again.")
	return false
}

// authorizeMDE checks the bearer token like MDE: 401 in MDE's error format
// when it is missing, unknown, expired or minted for another resource.
func (s *Server) authorizeMDE(w http.ResponseWriter, r *http.Request) bool {
	authz := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(strings.TrimSpace(authz), " ")
	tok = strings.TrimSpace(tok)
	msg := ""
	if authz == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		msg = "Authorization header is missing or is not a bearer token."
	} else if info, ok := s.tokens.lookup(tok); !ok || info.revoked || !s.cfg.Now().Before(info.expires) {
		msg = "The access token has expired or is not valid."
	} else if !s.isMDEAudience(info.audience) {
		msg = "The access token audience is not valid for this API (expected " + strings.TrimSuffix(mdeScope, "/.default") + ")."
	}
	if msg == "" {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeMDEError(w, http.StatusUnauthorized, "Unauthorized", msg)
	return false
}
