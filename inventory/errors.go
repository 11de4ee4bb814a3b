package inventory

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one mistake in the inventory, printed as
// "file:line:col: field.path: what is wrong".
type Error struct {
	Pos   Pos
	Field string // dotted path, e.g. hosts.rb1.port or roles.dns.zones[0].name; may be empty
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	// One mistake, one line: values and names from the file may hold
	// line breaks or other control characters.
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return '?'
		}
		return r
	}, b.String())
}

// String prints file:line:col (file:line when the column is unknown, file
// alone when the line is unknown).
func (p Pos) String() string {
	switch {
	case p.Line <= 0:
		return p.File
	case p.Column <= 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// ErrorList is every mistake found in one inventory, in file order. Its
// Error() prints one mistake per line.
type ErrorList []*Error

func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxErrors is how many mistakes an ErrorList shows; a file that is not an
// inventory at all should not print a screenful per line.
const maxErrors = 50

// sortAndCap orders the list by position and keeps the first maxErrors.
func (l ErrorList) sortAndCap() ErrorList {
	l.sort()
	if len(l) > maxErrors {
		more := len(l) - maxErrors
		l = append(l[:maxErrors:maxErrors], &Error{Pos: Pos{File: l[0].Pos.File}, Msg: fmt.Sprintf("and %d more mistakes", more)})
	}
	return l
}

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		// Same place (e.g. several checks of one absent key, reported from a
		// map walked in random order): a stable order for people and tests.
		if l[i].Field != l[j].Field {
			return l[i].Field < l[j].Field
		}
		return l[i].Msg < l[j].Msg
	})
}

// Checker collects the mistakes a settings struct finds in its Validate
// method. Field paths are relative to the struct being validated
// ("mysql.database", "groups.g1.rank", "zones[0]"); the Checker resolves
// them to the position of that key's value in the file, or, when the key is
// absent, to the nearest enclosing key that is present.
type Checker struct {
	d      *decoder
	prefix string
	inv    *Inventory
}

// Errorf records a mistake in field (relative to the struct; "" for the
// struct itself).
func (c *Checker) Errorf(field, format string, args ...any) {
	c.ErrorfAt(c.Pos(field), field, format, args...)
}

// ErrorfAt records a mistake in field at pos: for a mistake whose clearest
// place is elsewhere in the file, such as a required key missing from a
// section the file does not have, shown at the host that needs it
// (Host.Pos).
func (c *Checker) ErrorfAt(pos Pos, field, format string, args ...any) {
	full := joinPath(c.prefix, field)
	for p := full; ; p = parentPath(p) {
		if c.d.bad[p] {
			return // already reported when decoding: do not pile on
		}
		if p == "" {
			break
		}
	}
	c.d.errs = append(c.d.errs, &Error{Pos: pos, Field: full, Msg: fmt.Sprintf(format, args...)})
}

// Has reports whether field was written in the file (as opposed to left out
// and filled by SetDefaults).
func (c *Checker) Has(field string) bool {
	_, ok := c.d.pos[joinPath(c.prefix, field)]
	return ok
}

// Pos is where field is in the file: its value when written, otherwise the
// nearest enclosing key that is.
func (c *Checker) Pos(field string) Pos {
	return c.d.resolve(c.prefix, field)
}

// Path is the full dotted path of field, as printed in errors.
func (c *Checker) Path(field string) string { return joinPath(c.prefix, field) }

// Inventory is the inventory being loaded: Path, Dir, SecretsDir, Defaults
// and Hosts are filled (and valid as far as found) when role settings are
// validated, so a role can check, for example, that a host it names exists.
// Roles is not filled yet.
func (c *Checker) Inventory() *Inventory { return c.inv }

// Sub returns a Checker for a nested struct at field.
func (c *Checker) Sub(field string) *Checker {
	return &Checker{d: c.d, prefix: joinPath(c.prefix, field), inv: c.inv}
}

func joinPath(prefix, field string) string {
	switch {
	case field == "":
		return prefix
	case prefix == "":
		return field
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

// parentPath drops the last element of a path: a.b[2] → a.b, a.b → a.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}
