// Package lazyre compiles a package's constant regular expressions on
// first use instead of at program start.
//
// Every gridha process pays for the package initialisation of everything
// the binary links, and the fact agent (`gridha facts`, run on a host in
// every verify) needs none of these expressions: compiled at init, a
// counted repetition such as {1,255} alone cost the agent about a
// millisecond of host CPU and thousands of allocations.
package lazyre

import (
	"regexp"
	"sync"
)

// New returns a function that compiles expr on its first call (panicking,
// as regexp.MustCompile does, if expr is invalid) and returns the same
// compiled expression on every call. It is safe for concurrent use.
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
