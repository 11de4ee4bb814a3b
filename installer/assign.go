package installer

import (
	"iter"
	"strings"
)

// Assignments yields the key=value lines of a probe's output, in order
// (the value is everything after the first "="); other lines are passed
// over. Probes print what they found this way so that each parser is one
// switch on the key.
func Assignments(out string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for line := range strings.SplitSeq(out, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if ok && !yield(k, v) {
				return
			}
		}
	}
}
