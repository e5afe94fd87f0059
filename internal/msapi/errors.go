package msapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// APIError is a non-success answer from a Microsoft API (after retries). Its text never holds
// credentials: the URL is redacted and the body is reduced to the service's error code and
// message.
type APIError struct {
	StatusCode      int
	Code            string // Graph/MDE error.code, e.g. Authorization_RequestDenied
	Message         string // error.message
	RequestID       string // request-id header or innerError.request-id
	ClientRequestID string // client-request-id we sent, echoed by Graph
	Target          string // MDE puts its correlation id in error.target
	Date            string
	Method          string
	URL             string // redacted
	RetryAfter      time.Duration
	// Download is set for export-file downloads (no bearer token; SAS in the URL).
	Download bool
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: HTTP %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	var ids []string
	if e.RequestID != "" {
		ids = append(ids, "request-id: "+e.RequestID)
	}
	if e.ClientRequestID != "" {
		ids = append(ids, "client-request-id: "+e.ClientRequestID)
	}
	if e.Target != "" {
		ids = append(ids, "target: "+e.Target)
	}
	if e.Date != "" {
		ids = append(ids, "date: "+e.Date)
	}
	if len(ids) > 0 {
		b.WriteString(" (" + strings.Join(ids, ", ") + ")")
	}
	return b.String()
}

// odataError is the error shape of Graph ({"error":{code,message,innerError}}) and of the
// Defender for Endpoint API ({"error":{code,message,target}}).
type odataError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		Target     string `json:"target"`
		InnerError struct {
			Date            string `json:"date"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

const maxErrorText = 512

func newAPIError(resp *http.Response, body []byte, sc scrubber, download bool) *APIError {
	e := &APIError{
		StatusCode:      resp.StatusCode,
		RequestID:       resp.Header.Get("request-id"),
		ClientRequestID: resp.Header.Get("client-request-id"),
		Date:            resp.Header.Get("Date"),
		Download:        download,
	}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		e.URL = redactURL(resp.Request.URL)
		if e.ClientRequestID == "" {
			// Ours, sent with the request; Microsoft support can trace it even when not echoed.
			e.ClientRequestID = resp.Request.Header.Get("client-request-id")
		}
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("x-ms-request-id")
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if d, err := time.ParseDuration(strings.TrimSpace(s) + "s"); err == nil {
			e.RetryAfter = d
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = time.Until(t)
		}
	}
	var oe odataError
	if json.Unmarshal(body, &oe) == nil && (oe.Error.Code != "" || oe.Error.Message != "") {
		e.Code = sc.scrub(oe.Error.Code)
		e.Message = truncate(sc.scrub(oe.Error.Message), maxErrorText)
		e.Target = sc.scrub(oe.Error.Target)
		if e.RequestID == "" {
			e.RequestID = oe.Error.InnerError.RequestID
		}
		if e.ClientRequestID == "" {
			e.ClientRequestID = oe.Error.InnerError.ClientRequestID
		}
		if oe.Error.InnerError.Date != "" {
			e.Date = oe.Error.InnerError.Date
		}
	} else if text := strings.TrimSpace(string(body)); text != "" {
		// Blob storage answers in XML; keep the beginning, it names the problem.
		e.Message = truncate(sc.scrub(strings.Join(strings.Fields(text), " ")), maxErrorText)
	}
	return e
}

// TokenError is a failed token acquisition, reduced to what Entra ID says (error code, AADSTS
// code and the first line of its description) so that it never carries the secret.
type TokenError struct {
	AuthType      string
	StatusCode    int    // 0 when no HTTP answer was received
	ErrorCode     string // OAuth error, e.g. invalid_client
	AADSTS        string // e.g. AADSTS7000215
	Description   string
	TraceID       string
	CorrelationID string
}

func (e *TokenError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "acquiring a token (auth_type %s) failed", e.AuthType)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.ErrorCode != "" {
		b.WriteString(": " + e.ErrorCode)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	var ids []string
	if e.TraceID != "" {
		ids = append(ids, "trace_id: "+e.TraceID)
	}
	if e.CorrelationID != "" {
		ids = append(ids, "correlation_id: "+e.CorrelationID)
	}
	if len(ids) > 0 {
		b.WriteString(" (" + strings.Join(ids, ", ") + ")")
	}
	return b.String()
}

var aadstsPattern = regexp.MustCompile(`AADSTS\d+`)

type entraError struct {
	Error         string `json:"error"`
	Description   string `json:"error_description"`
	ErrorCodes    []int  `json:"error_codes"`
	TraceID       string `json:"trace_id"`
	CorrelationID string `json:"correlation_id"`
	// Managed identity endpoints answer {"error":{"code","message"}} or {"message"}.
	Message string `json:"message"`
}

// newTokenError translates an azidentity/MSAL failure. The original error is deliberately not
// wrapped: its text embeds the whole response and request URL.
func newTokenError(authType string, err error, sc scrubber) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	te := &TokenError{AuthType: authType}
	var resp *http.Response
	var afe *azidentity.AuthenticationFailedError
	var ce msalerrors.CallErr
	switch {
	case errors.As(err, &ce):
		resp = ce.Resp
	case errors.As(err, &afe):
		resp = afe.RawResponse
	}
	if resp != nil {
		te.StatusCode = resp.StatusCode
		body := readAndRestore(resp)
		var ee entraError
		if json.Unmarshal(body, &ee) == nil {
			te.ErrorCode = ee.Error
			te.Description = firstLine(ee.Description)
			if te.Description == "" {
				te.Description = firstLine(ee.Message)
			}
			te.TraceID, te.CorrelationID = ee.TraceID, ee.CorrelationID
		} else {
			te.Description = firstLine(strings.TrimSpace(string(body)))
		}
	}
	if te.Description == "" && te.ErrorCode == "" {
		te.Description = firstLine(err.Error())
	}
	te.ErrorCode = sc.scrub(te.ErrorCode)
	te.Description = truncate(sc.scrub(te.Description), maxErrorText)
	te.AADSTS = aadstsPattern.FindString(te.Description)
	return te
}

func readAndRestore(resp *http.Response) []byte {
	if resp.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return b
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ForeignHostError refuses a URL (typically an @odata.nextLink) whose scheme or host differs
// from request_url: the bearer token must never reach another host.
type ForeignHostError struct {
	URL  string // redacted
	Base string
}

func (e *ForeignHostError) Error() string {
	return fmt.Sprintf("refusing to follow %s: it is not on the API host %s (the access token is only sent to request_url's scheme and host)", e.URL, e.Base)
}

// ErrBodyTooLarge is wrapped by errors for responses beyond max_response_bytes.
var ErrBodyTooLarge = errors.New("response body exceeds max_response_bytes")

type bodyTooLargeError struct{ limit int64 }

func (e *bodyTooLargeError) Error() string {
	return fmt.Sprintf("%v (%d bytes): raise max_response_bytes or lower batch_size", ErrBodyTooLarge, e.limit)
}
func (e *bodyTooLargeError) Unwrap() error { return ErrBodyTooLarge }

// NonRetriable tells azcore's retry policy that the same request would only fail again.
func (e *bodyTooLargeError) NonRetriable() {}

// IdleTimeoutError aborts an attempt that waited on the network for the idle timeout without
// receiving anything: no answer to the request, or a body that stopped arriving.
type IdleTimeoutError struct{ Idle time.Duration }

func (e *IdleTimeoutError) Error() string {
	return fmt.Sprintf("connection stalled: no data received for %v", e.Idle)
}
func (e *IdleTimeoutError) Timeout() bool { return true }

// DownloadHostError refuses an export file URL (or a redirect) to a host outside download_hosts:
// the URLs come from an API answer, and nothing but Azure Storage should be fetched on its word.
type DownloadHostError struct {
	Host    string
	Allowed []string
}

func (e *DownloadHostError) Error() string {
	return fmt.Sprintf("refusing to download from %s: export files are only read from %s (download_hosts)", e.Host, strings.Join(e.Allowed, ", "))
}

// NonRetriable tells azcore's retry policy that the same request would only be refused again.
func (e *DownloadHostError) NonRetriable() {}

// IsAuth reports whether err is an authentication or authorization failure: a failed token
// request, or HTTP 401/403 from the API.
func IsAuth(err error) bool {
	var te *TokenError
	if errors.As(err, &te) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.StatusCode == http.StatusUnauthorized || ae.StatusCode == http.StatusForbidden
	}
	// Azure Storage and Event Hubs clients report through the SDK's own error types: a refused
	// key, SAS or role, or an Entra sign-in that failed.
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden
	}
	var fe *azidentity.AuthenticationFailedError
	return errors.As(err, &fe)
}

// IsThrottled reports whether err is HTTP 429 that retries did not overcome.
func IsThrottled(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests
}

var aadstsHints = map[string]string{
	"AADSTS700016":  "the application (client_id) was not found in the tenant: check client_id and tenant_id, that the app registration lives in that tenant, and that cloud matches the tenant's cloud",
	"AADSTS7000215": "invalid client secret: use the secret's Value (not its Secret ID) and check it belongs to this client_id",
	"AADSTS7000222": "the client secret has expired: create a new secret in the app registration and update client_secret",
	"AADSTS90002":   "tenant not found: check tenant_id, or set cloud (or login_url) if the tenant is in a US Government cloud",
	"AADSTS900382":  "cross-cloud request: the tenant belongs to another cloud; set cloud to gcc-high or dod for login.microsoftonline.us tenants, or global/gcc otherwise",
	"AADSTS90038":   "the tenant belongs to another national cloud: set cloud (gcc-high/dod use login.microsoftonline.us)",
	"AADSTS900023":  "tenant_id is neither a tenant GUID nor a verified domain of the tenant",
	"AADSTS500011":  "the resource named by token_scopes is not available in this tenant or cloud: check token_scopes and cloud",
	"AADSTS70011":   "invalid scope: token_scopes must name the API with /.default (application permissions), e.g. https://graph.microsoft.com/.default",
	"AADSTS901002":  "the v2 token endpoint does not accept resource=: remove it from oauth_endpoint_params and use token_scopes",
	"AADSTS700027":  "the client certificate is not registered on the app registration (upload its public certificate) or the assertion is invalid",
	"AADSTS700024":  "the federated token (federated_token_file) is expired or not yet valid: check that the projected token is being refreshed",
	"AADSTS70021":   "no matching federated identity credential on the app registration: check its issuer, subject and audience",
	"AADSTS700213":  "no matching federated identity credential on the app registration: check its issuer, subject and audience",
	"AADSTS7000112": "the application is disabled in the tenant",
	"AADSTS700082":  "the refresh token has expired",
}

// Explain turns an error from this package into a hint for the person configuring the input.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		te  *TokenError
		ae  *APIError
		fhe *ForeignHostError
		ite *IdleTimeoutError
		dhe *DownloadHostError
		uae x509.UnknownAuthorityError
		hne x509.HostnameError
	)
	switch {
	case errors.As(err, &te):
		if hint, ok := aadstsHints[te.AADSTS]; ok {
			return fmt.Sprintf("%s (%s)", hint, te.AADSTS)
		}
		switch te.AuthType {
		case AuthManagedIdentity:
			return "managed identity token request failed: check that the host has a managed identity (and managed_identity_client_id for a user-assigned one)"
		case AuthWorkloadIdentity:
			return "workload identity token request failed: check federated_token_file, client_id, tenant_id and the app's federated credential"
		}
		return "token request failed: check tenant_id, client_id and the credential, and that cloud (or login_url) matches the tenant's cloud"
	case errors.As(err, &fhe):
		return "the API pointed to another host; the request was not sent. If Microsoft moved the API, set request_url to that host"
	case errors.As(err, &ae):
		return explainAPIError(ae)
	case errors.Is(err, ErrBodyTooLarge):
		return "the response is larger than max_response_bytes: raise it or lower batch_size"
	case errors.As(err, &dhe):
		return "an export file URL points outside the cloud's blob storage; nothing was downloaded. If the files really are served from that host, add it to download_hosts"
	case errors.As(err, &ite):
		return "the connection stalled: nothing arrived for the idle timeout (http_client_timeout for API calls, download_idle_timeout for export files); check proxy_url and the network"
	case errors.As(err, &uae), errors.As(err, &hne):
		return "the server's TLS certificate is not trusted for this host: add its CA to ssl.certificate_authorities"
	case errors.Is(err, context.DeadlineExceeded):
		return "the request timed out: raise http_client_timeout or check proxy_url and network"
	}
	return err.Error()
}

func explainAPIError(e *APIError) string {
	switch {
	case e.Download && (e.StatusCode == http.StatusForbidden || e.StatusCode == http.StatusNotFound):
		return "the export file's SAS URL is expired or no longer valid: a new export is requested at the next run"
	case e.StatusCode == http.StatusUnauthorized:
		return "the API rejected the access token (401): wrong tenant_id or client_id, a wrong or expired secret, or a token for another cloud or audience (check cloud and token_scopes)"
	case e.StatusCode == http.StatusForbidden:
		return fmt.Sprintf("missing permission (403): grant the application permission %s to the app registration and have an administrator grant admin consent", permissionFor(e.URL))
	case e.StatusCode == http.StatusTooManyRequests:
		return "throttled by Microsoft (429) beyond the retries: raise interval or lower how often the input polls"
	case e.StatusCode == http.StatusBadRequest:
		return "the API rejected the request (400): check batch_size limits and request_url"
	case e.StatusCode == http.StatusNotFound:
		return "not found (404): check request_url and cloud"
	case e.StatusCode >= 500:
		return "Microsoft's service failed (5xx) beyond the retries; the input tries again shortly, keeping its cursor"
	}
	return e.Error()
}

func permissionFor(rawURL string) string {
	u := strings.ToLower(rawURL)
	switch {
	case strings.Contains(u, "/security/alerts_v2"):
		return "SecurityAlert.Read.All (Microsoft Graph)"
	case strings.Contains(u, "/security/incidents"):
		return "SecurityIncident.Read.All (Microsoft Graph)"
	case strings.Contains(u, "vulnerabilit"):
		return "Vulnerability.Read.All (WindowsDefenderATP)"
	case strings.Contains(u, "/api/machines"):
		return "Machine.Read.All (WindowsDefenderATP)"
	}
	return "required by this API"
}
