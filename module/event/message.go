package event

// A Sanitizer repairs one kind of malformed JSON Azure is known to put in Event Hub messages. It
// is only applied to a message that is not valid JSON, and returns the repaired bytes (it may
// modify and return its argument).
type Sanitizer func(msg []byte) []byte

// SanitizerNames maps the names of the sanitizers, as Filebeat's azure-eventhub input names them,
// to the sanitizers. (Its older sanitize_options spells them in capitals: NEW_LINES,
// SINGLE_QUOTES; look names up in lower case.)
var SanitizerNames = map[string]Sanitizer{
	"new_lines":     SanitizeNewLines,
	"single_quotes": SanitizeSingleQuotes,
}

// SanitizeNewLines removes raw line breaks, which some Azure services leave inside JSON
// strings. Outside strings a line break is only white space, so removing every one is safe.
func SanitizeNewLines(msg []byte) []byte {
	out := msg[:0]
	for _, c := range msg {
		if c != '\n' && c != '\r' {
			out = append(out, c)
		}
	}
	return out
}

// SanitizeSingleQuotes turns single quotes outside double-quoted strings into double quotes, for
// services that write {'key': 'value'}. A single quote inside a double-quoted string is text and
// stays.
func SanitizeSingleQuotes(msg []byte) []byte {
	inString, escaped := false, false
	for i, c := range msg {
		switch {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = inString
		case c == '"':
			inString = !inString
		case c == '\'' && !inString:
			msg[i] = '"'
		}
	}
	return msg
}
