package inventory

import (
	"strconv"
	"strings"
)

// Nearest returns the candidate closest to word by edit distance (case and
// '-'/'_' ignored), or "" when none is close enough to be a likely typo. The
// CLI uses it for role, host and command names too.
func Nearest(word string, candidates []string) string { return nearest(word, candidates) }

func nearest(word string, candidates []string) string {
	w := normKey(word)
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(w, normKey(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len([]rune(word))/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

func normKey(s string) string {
	return strings.ReplaceAll(strings.ToLower(s), "-", "_")
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		// Not a typo of any key we know; avoid quadratic work on junk.
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

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
