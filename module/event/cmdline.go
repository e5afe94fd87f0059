package event

import (
	"fmt"
	"strconv"
	"strings"
)

// splitCommandLine splits a command line into arguments by the Windows rules (the ones
// CommandLineToArgvW follows, with the pre-2008 handling of doubled quotes), which is how the
// integration fills process.args: quotes group words and are removed, backslashes only escape
// quotes.
func splitCommandLine(cmd string) []string {
	var args []string
	for len(cmd) > 0 {
		if cmd[0] == ' ' || cmd[0] == '\t' {
			cmd = cmd[1:]
			continue
		}
		var arg string
		arg, cmd = nextArg(cmd)
		args = append(args, arg)
	}
	return args
}

func nextArg(cmd string) (arg, rest string) {
	var b strings.Builder
	inQuote := false
	slashes := 0
	for ; len(cmd) > 0; cmd = cmd[1:] {
		c := cmd[0]
		switch {
		case c == ' ' || c == '\t':
			if !inQuote {
				writeSlashes(&b, slashes)
				return b.String(), cmd[1:]
			}
		case c == '"':
			writeSlashes(&b, slashes/2)
			if slashes%2 == 0 {
				if inQuote && len(cmd) > 1 && cmd[1] == '"' {
					b.WriteByte(c)
					cmd = cmd[1:]
				}
				inQuote = !inQuote
			} else {
				b.WriteByte(c)
			}
			slashes = 0
			continue
		case c == '\\':
			slashes++
			continue
		}
		writeSlashes(&b, slashes)
		slashes = 0
		b.WriteByte(c)
	}
	writeSlashes(&b, slashes)
	return b.String(), ""
}

func writeSlashes(b *strings.Builder, n int) {
	for ; n > 0; n-- {
		b.WriteByte('\\')
	}
}

// text renders a scalar the way the pipeline's templates do ({{{field}}}).
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
