package steps

import (
	"strings"
	"unicode/utf8"

	udiff "github.com/aymanbagabas/go-udiff"
)

// maxDiffBytes bounds the size of a diff put into a result.
const maxDiffBytes = 64 << 10

// unifiedDiff renders the change from old to new of path as a unified diff
// ("" when equal). Binary content gets a one-line note instead.
func unifiedDiff(path string, old, new []byte) string {
	if string(old) == string(new) {
		return ""
	}
	if !utf8.Valid(old) || !utf8.Valid(new) || strings.ContainsRune(string(old), 0) || strings.ContainsRune(string(new), 0) {
		return "Binary content of " + path + " differs\n"
	}
	d := udiff.Unified(path+" (on host)", path+" (wanted)", string(old), string(new))
	if len(d) > maxDiffBytes {
		d = d[:maxDiffBytes] + "\n... diff truncated\n"
	}
	return d
}
