package inventory

import (
	"strconv"
	"strings"

	"github.com/gridha/gridha/internal/nearest"
)

// Nearest returns the candidate closest to word by edit distance (case and
// '-'/'_' ignored), or "" when none is close enough to be a likely typo. The
// CLI uses it for role, host and command names too.
func Nearest(word string, candidates []string) string { return nearest.Word(word, candidates) }

// quoteValue shows a value from the file in a message, shortened.
func quoteValue(s string) string {
	r := []rune(s)
	if len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	q := strconv.Quote(s) // escapes line breaks and control characters
	return "'" + strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`) + "'"
}

// looksSecret reports whether a key names an inline secret (password,
// secret, key, token, passphrase), which the file must never hold.
func looksSecret(key string) bool {
	if strings.HasSuffix(key, "_file") || strings.HasSuffix(key, "_files") {
		return false
	}
	for _, part := range strings.FieldsFunc(strings.ToLower(key), func(r rune) bool { return r == '_' || r == '-' }) {
		switch part {
		case "password", "passwd", "pass", "secret", "key", "token", "passphrase", "psk":
			return true
		}
	}
	return false
}
