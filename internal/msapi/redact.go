package msapi

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

const redacted = "REDACTED"

// Query parameters that carry credentials: SAS signatures on export URLs, OAuth codes, keys.
var sensitiveQuery = []string{"sig", "signature", "code", "token", "access_token", "refresh_token", "client_secret", "client_assertion", "assertion", "password", "key", "secret", "sas"}

// Form fields of token requests and JSON fields of token responses.
var sensitiveForm = []string{"client_secret", "client_assertion", "assertion", "password", "refresh_token", "code", "access_token", "id_token"}

// Request and response headers whose value is a credential. Managed identity endpoints take one:
// X-IDENTITY-HEADER (App Service) and secret (Service Fabric, Azure Machine Learning).
var sensitiveHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "ocp-apim-subscription-key", "x-identity-header", "secret"}

// Credentials inside free text that quotes a URL (net/http errors, JSON answers listing SAS URLs,
// Location headers): a sensitive query parameter, its separator possibly JSON-escaped, and the
// password of a URL's user info.
var (
	sensitiveQueryInText = regexp.MustCompile(`(?i)(?:[?&;]|\\u0026)(?:` + strings.Join(sensitiveQuery, "|") + `)=[^&;\s"'<>\\]+`)
	userPasswordInText   = regexp.MustCompile(`(?i)(\b[a-z][a-z0-9+.-]*://[^/?#\s"'<>@:]*:)[^/?#\s"'<>@]+@`)
)

var tokenJSONField = regexp.MustCompile(`("(?:access_token|refresh_token|id_token|client_secret|client_assertion)"\s*:\s*")[^"]*(")`)

// redactURL renders a URL for logs and errors without user info passwords or credential
// query parameters.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), redacted)
		}
	}
	if c.RawQuery != "" {
		q := c.Query()
		for k := range q {
			if slices.Contains(sensitiveQuery, strings.ToLower(k)) {
				q[k] = []string{redacted}
			}
		}
		c.RawQuery = encodeQuery(q)
	}
	return c.String()
}

func redactURLString(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return redactURL(u)
}

func redactHeaders(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(k)
		b.WriteString(": ")
		if slices.Contains(sensitiveHeaders, strings.ToLower(k)) {
			b.WriteString(redacted)
		} else {
			b.WriteString(redactText(strings.Join(h[k], ", ")))
		}
	}
	return b.String()
}

func redactForm(body []byte) string {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return "<unparsable form>"
	}
	for k := range form {
		if slices.Contains(sensitiveForm, strings.ToLower(k)) {
			form[k] = []string{redacted}
		}
	}
	return encodeQuery(form)
}

func redactTokenJSON(body []byte) string {
	return tokenJSONField.ReplaceAllString(string(body), "${1}"+redacted+"${2}")
}

// redactText redacts the credentials of every URL quoted in text.
func redactText(text string) string {
	text = sensitiveQueryInText.ReplaceAllStringFunc(text, func(param string) string {
		name, value, _ := strings.Cut(param, "=")
		if strings.HasPrefix(value, redacted) {
			// Already redacted (redactURL): leave the text, and so an error's chain, unchanged.
			return param
		}
		return name + "=" + redacted
	})
	return userPasswordInText.ReplaceAllString(text, "${1}"+redacted+"@")
}

// scrubber removes configured secrets, and the credentials of any URL, from text that may
// echo them (server error bodies, library errors, traced bodies), as a last line of defence
// behind the field-level redaction.
type scrubber struct{ secrets []string }

func newScrubber(secrets ...string) scrubber {
	var s scrubber
	for _, v := range secrets {
		// Very short values would blank out ordinary words.
		if len(v) >= 4 {
			s.secrets = append(s.secrets, v, url.QueryEscape(v))
		}
	}
	return s
}

func (s scrubber) scrub(text string) string {
	for _, v := range s.secrets {
		text = strings.ReplaceAll(text, v, redacted)
	}
	return redactText(text)
}

// scrubErr drops the error chain when the message had to be scrubbed: the wrapped errors still
// hold the secret and a caller printing one of them would leak it.
func (s scrubber) scrubErr(err error) error {
	if err == nil {
		return nil
	}
	msg := s.scrub(err.Error())
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

func redactErr(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr != nil || u.User == nil {
		return err
	}
	pw, ok := u.User.Password()
	if !ok {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, redacted))
}

// encodeQuery is url.Values.Encode with two concessions to Microsoft's APIs: OData system query
// options keep their literal '$' and spaces are %20, not '+'.
func encodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		ek := strings.ReplaceAll(url.QueryEscape(k), "%24", "$")
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(ek)
			b.WriteByte('=')
			b.WriteString(strings.ReplaceAll(url.QueryEscape(v), "+", "%20"))
		}
	}
	return b.String()
}
