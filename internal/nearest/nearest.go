// Package nearest finds the likely intended word behind a typo: the
// inventory's keys, role, host and command names, hagd.conf's keys.
package nearest

import "strings"

// Word returns the candidate closest to word by edit distance (case and
// '-'/'_' ignored), or "" when none is close enough to be a likely typo.
// Of equally close candidates the first wins: callers pass them in a fixed
// order, so the suggestion does not change from run to run.
func Word(word string, candidates []string) string {
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
