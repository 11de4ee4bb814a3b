package steps

import (
	"fmt"
	"strings"
)

// Assignment is one place where a file /bin/sh sources sets (or unsets) a
// variable, found the way the shell reads the file: quoting, backslash-
// newline continuations, several commands on a line, `export`/`readonly`
// arguments and assignments before special built-ins all count.
type Assignment struct {
	Name string
	// Value as the shell sees it, quotes removed; Literal is false when it
	// holds an expansion ($VAR, $(...), `...`) whose value is unknown here.
	Value   string
	Literal bool
	Unset   bool // `unset NAME`
	Line    int  // 1-based line of the assignment word
	// Sole: the command is only this assignment (optionally after
	// export/readonly) and nothing else shares its lines, so its lines
	// [Start, End) can be replaced or removed as a whole. Prefix is its
	// indentation and export keyword, kept when it is replaced.
	Sole       bool
	Start, End int
	Prefix     string
}

// Text is the source of a sole assignment's lines without the newline.
func (a Assignment) Text(content []byte) string {
	if !a.Sole {
		return ""
	}
	return strings.TrimRight(string(content[a.Start:a.End]), "\n")
}

type shWord struct {
	raw        string // unquoted-prefix detection
	value      string
	literal    bool
	start, end int
	line       int
}

type shCommand struct {
	words []shWord
	// terminated by a ';' (allowed after a sole assignment)
	semi bool
}

// shReserved are words after which a new command starts.
var shReserved = map[string]bool{"if": true, "then": true, "else": true, "elif": true, "fi": true, "do": true,
	"done": true, "while": true, "until": true, "{": true, "}": true, "!": true}

// shSpecial are POSIX special built-ins: assignments before them persist.
var shSpecial = map[string]bool{":": true, ".": true, "eval": true, "exec": true, "set": true, "shift": true,
	"times": true, "trap": true, "return": true, "exit": true, "break": true, "continue": true,
	"export": true, "readonly": true, "unset": true}

// parseShell splits content into simple commands of words. It does not
// evaluate anything; it is a lexer good enough to find assignments.
func parseShell(content []byte) ([]shCommand, error) {
	s := string(content)
	var cmds []shCommand
	var cur shCommand
	line := 1
	flush := func(semi bool) {
		if len(cur.words) > 0 {
			cur.semi = semi
			cmds = append(cmds, cur)
		}
		cur = shCommand{}
	}
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			if i+2 == len(s) {
				return nil, fmt.Errorf("line %d: the file ends with a continued line", line)
			}
			i += 2
			line++
			continue
		case c == ' ' || c == '\t': // not \r: sh reads it as part of a word
			i++
			continue
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
			continue
		case c == '\n':
			flush(false)
			line++
			i++
			continue
		case c == ';' || c == '&' || c == '|' || c == '(' || c == ')':
			flush(c == ';')
			i++
			continue
		}
		// A word.
		w := shWord{start: i, line: line, literal: true}
		var val, raw strings.Builder
		quotedYet := false
	word:
		for i < len(s) {
			c := s[i]
			switch c {
			case ' ', '\t', '\n', ';', '&', '|', '(', ')':
				break word
			case '\\':
				if i+1 < len(s) {
					if s[i+1] == '\n' {
						if i+2 == len(s) {
							return nil, fmt.Errorf("line %d: the file ends with a continued line", line)
						}
						line++
					} else {
						val.WriteByte(s[i+1])
					}
					quotedYet = true
					i += 2
					continue
				}
				return nil, fmt.Errorf("line %d: the file ends with a backslash", line)
			case '\'':
				quotedYet = true
				if strings.IndexByte(s[i+1:], '\'') < 0 {
					return nil, fmt.Errorf("line %d: unterminated single quote", line)
				}
				i++
				for i < len(s) && s[i] != '\'' {
					if s[i] == '\n' {
						line++
					}
					val.WriteByte(s[i])
					i++
				}
				i++
			case '"':
				quotedYet = true
				qline := line
				i++
				for i < len(s) && s[i] != '"' {
					switch {
					case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0:
						if s[i+1] == '\n' {
							line++
						} else {
							val.WriteByte(s[i+1])
						}
						i += 2
						continue
					case s[i] == '$' || s[i] == '`':
						w.literal = false
						start := i
						var ok bool
						if i, ok = skipExpansion(s, i, &line); !ok {
							return nil, fmt.Errorf("line %d: unterminated %c expansion", line, s[start])
						}
						continue
					case s[i] == '\n':
						line++
					}
					val.WriteByte(s[i])
					i++
				}
				if i >= len(s) {
					return nil, fmt.Errorf("line %d: unterminated double quote", qline)
				}
				i++
			case '$', '`':
				quotedYet = true
				w.literal = false
				start := i
				var ok bool
				if i, ok = skipExpansion(s, i, &line); !ok {
					return nil, fmt.Errorf("line %d: unterminated %c expansion", line, s[start])
				}
			default:
				if !quotedYet {
					raw.WriteByte(c)
				}
				val.WriteByte(c)
				i++
			}
		}
		w.end = min(i, len(s))
		w.raw = raw.String()
		w.value = val.String()
		if len(cur.words) == 0 && shReserved[w.value] && w.raw == w.value {
			continue // `then X=1`: X=1 is a command of its own
		}
		cur.words = append(cur.words, w)
	}
	flush(false)
	return cmds, nil
}

// skipExpansion returns the index after the expansion starting at s[i]
// ($NAME, ${...}, $(...), `...`), counting newlines in it.
// ok is false when it is not closed.
func skipExpansion(s string, i int, line *int) (next int, ok bool) {
	count := func(a, b int) {
		*line += strings.Count(s[a:min(b, len(s))], "\n")
	}
	if s[i] == '`' {
		j := strings.IndexByte(s[i+1:], '`')
		if j < 0 {
			return len(s), false
		}
		count(i, i+2+j)
		return i + 2 + j, true
	}
	if i+1 >= len(s) {
		return i + 1, true
	}
	open, close := byte(0), byte(0)
	switch s[i+1] {
	case '{':
		open, close = '{', '}'
	case '(':
		open, close = '(', ')'
	default:
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i+1 && j < len(s) && strings.IndexByte("?#$!@*-", s[j]) >= 0 {
			j++
		}
		return j, true
	}
	depth := 0
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				count(i, j+1)
				return j + 1, true
			}
		}
	}
	return len(s), false
}

// assignmentName returns NAME of a word NAME=..., whose name part is
// unquoted as the shell requires.
func assignmentName(w shWord) (string, bool) {
	eq := strings.IndexByte(w.raw, '=')
	if eq <= 0 || !validKey(w.raw[:eq]) {
		return "", false
	}
	return w.raw[:eq], true
}

// ShellAssignments lists every assignment (and unset) of key in content,
// in file order: the last one is the value a shell sourcing the file ends
// up with. A file the shell could not parse (an unterminated quote) is an
// error naming the line.
func ShellAssignments(content []byte, key string) ([]Assignment, error) {
	var out []Assignment
	s := string(content)
	cmds, err := parseShell(content)
	if err != nil {
		return nil, err
	}
	for _, cmd := range cmds {
		ws := cmd.words
		n := 0
		for n < len(ws) {
			if _, ok := assignmentName(ws[n]); !ok {
				break
			}
			n++
		}
		var found []Assignment
		cmdWord := ""
		if n < len(ws) {
			cmdWord = ws[n].value
		}
		// Assignments before an ordinary command only set its
		// environment; before none or a special built-in they persist.
		if n == len(ws) || shSpecial[cmdWord] {
			for _, w := range ws[:n] {
				if name, _ := assignmentName(w); name == key {
					found = append(found, assign(w, key))
				}
			}
		}
		switch cmdWord {
		case "export", "readonly", "local", "typeset", "declare":
			for _, w := range ws[n+1:] {
				// export "KEY=v" assigns too: the argument is split
				// after quote removal.
				if name, _, ok := strings.Cut(w.value, "="); ok && name == key {
					found = append(found, assign(w, key))
				}
			}
		case "unset":
			for _, w := range ws[n+1:] {
				if w.value == key {
					found = append(found, Assignment{Name: key, Unset: true, Line: w.line})
				}
			}
		}
		for _, a := range found {
			// Sole: [KEY=v] or [export|readonly KEY=v] alone on its lines.
			single := len(ws) == 1 || len(ws) == 2 && n == 0 && (cmdWord == "export" || cmdWord == "readonly" || cmdWord == "unset")
			if single {
				first, last := ws[0], ws[len(ws)-1]
				ls := strings.LastIndexByte(s[:first.start], '\n') + 1
				le := strings.IndexByte(s[last.end:], '\n')
				if le < 0 {
					le = len(s)
				} else {
					le += last.end
				}
				before := s[ls:first.start]
				after := strings.TrimLeft(s[last.end:le], " \t")
				after = strings.TrimLeft(strings.TrimPrefix(after, ";"), " \t")
				if strings.Trim(before, " \t") == "" && (after == "" || after[0] == '#') {
					a.Sole = true
					a.Start = ls
					a.End = le
					if le < len(s) {
						a.End = le + 1
					}
					a.Prefix = s[ls:ws[len(ws)-1].start]
				}
			}
			out = append(out, a)
		}
	}
	return out, nil
}

func assign(w shWord, key string) Assignment {
	return Assignment{Name: key, Value: w.value[len(key)+1:], Literal: w.literal, Line: w.line}
}
