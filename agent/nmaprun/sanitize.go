package nmaprun

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits applied to strings taken from nmap output.
const (
	maxFieldLen        = 255  // names, versions, reasons, ...
	maxScriptOutputLen = 4096 // NSE script output
	maxScripts         = 64   // scripts kept per port and per host
	truncationMark     = "…"
)

// cleanField returns s as a single line of valid UTF-8 without control
// characters, trimmed and cut to at most maxFieldLen bytes.
func cleanField(s string) string {
	return truncate(strings.TrimSpace(clean(s, false)), maxFieldLen)
}

// cleanOutput is like cleanField but keeps newlines, tabs and the
// indentation of the first line, and allows up to maxScriptOutputLen bytes,
// for multi-line script output.
func cleanOutput(s string) string {
	s = strings.TrimRight(clean(s, true), " \t\n")
	return truncate(strings.TrimLeft(s, "\n"), maxScriptOutputLen)
}

// clean drops invalid UTF-8 and control characters (keeping '\n' and '\t'
// when multiline is set; other whitespace controls become spaces).
func clean(s string, multiline bool) string {
	ok := utf8.ValidString(s)
	for _, r := range s {
		if unicode.IsControl(r) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToValidUTF8(s, "") {
		switch {
		case multiline && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteByte(' ')
		case unicode.IsControl(r):
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// truncate cuts s to at most n bytes on a rune boundary, ending the result
// with an ellipsis when anything was cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len(truncationMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncationMark
}
