package nmaprun

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanField(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct {
		name, in, want string
	}{
		{"plain", "OpenSSH", "OpenSSH"},
		{"trimmed", "  nginx \n", "nginx"},
		{"invalid utf8 dropped", "Apache\xff\xfe httpd", "Apache httpd"},
		{"controls dropped", "a\x00b\x1bc\x7fd", "abcd"},
		{"newlines become spaces", "line1\nline2\r\tx", "line1 line2  x"},
		{"long cut on rune boundary", long, strings.Repeat("é", 126) + "…"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := cleanField(tt.in)
			if got != tt.want {
				t.Fatalf("cleanField(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if !utf8.ValidString(got) || len(got) > maxFieldLen {
				t.Fatalf("cleanField(%q) = %q: invalid or too long (%d)", tt.in, got, len(got))
			}
		})
	}
}

func TestCleanOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"keeps layout", "\n  OS: Linux\n  Name:\tfiles\n", "  OS: Linux\n  Name:\tfiles"},
		{"drops controls", "ok\x00\x07\r\n", "ok"},
		{"invalid utf8", "caf\xc3", "caf"},
		{"long", strings.Repeat("x", 5000), strings.Repeat("x", maxScriptOutputLen-len(truncationMark)) + truncationMark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := cleanOutput(tt.in); got != tt.want {
				t.Fatalf("cleanOutput(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"short", []string{"abc", "def"}, "abcdef"},
		{"overflow across writes", []string{"0123456", "789"}, "...23456789"},
		{"single huge write", []string{"xx", "0123456789abcdef"}, "...89abcdef"},
		{"exactly full", []string{"01234567"}, "01234567"},
		{"empty", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newTailBuffer(8)
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := b.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
