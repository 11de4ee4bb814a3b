package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// Man pages are generated from the command tree (the text --help shows),
// never written by hand: gridha(1), and gridha-COMMAND(1) for each visible
// command with its subcommands. urfave/cli's App.ToMan renders one page
// whose every options section is titled GLOBAL OPTIONS; the pages here are
// markdown of our own, rendered to roff by the same go-md2man.

// manPages returns the pages by file name ("gridha.1", "gridha-install.1").
// version and date go into the page footer.
func manPages(app *cli.App, version, date string) (map[string][]byte, error) {
	if len(date) >= 10 {
		date = date[:10]
	}
	var cmds []*cli.Command
	for _, c := range app.Commands {
		// urfave/cli adds "help" when the app runs: --help is documented.
		if !c.Hidden && c.Name != "help" {
			cmds = append(cmds, c)
		}
	}
	pages := map[string][]byte{}
	var b strings.Builder
	th := func(name string) {
		fmt.Fprintf(&b, "%% %s 1 %q %q %q\n\n", strings.ToUpper(name), date, "gridha "+version, "gridha manual")
	}

	th("gridha")
	fmt.Fprintf(&b, "# NAME\n\ngridha - %s\n\n", mdEscape(app.Usage))
	b.WriteString("# SYNOPSIS\n\n**gridha** [*OPTIONS*] *COMMAND* [*OPTIONS*] [*ARGUMENTS*]\n\n")
	fmt.Fprintf(&b, "# DESCRIPTION\n\n%s\n", mdText(app.Description))
	b.WriteString("# OPTIONS\n\n" + mdFlags(app.Flags))
	b.WriteString("# COMMANDS\n\n")
	var also []string
	for _, c := range cmds {
		fmt.Fprintf(&b, "**%s** %s\n: %s (see **gridha-%s**(1))\n\n", c.Name, mdEscape(c.ArgsUsage), mdEscape(c.Usage), c.Name)
		also = append(also, fmt.Sprintf("**gridha-%s**(1)", c.Name))
	}
	b.WriteString("# ENVIRONMENT\n\n" +
		"**GRIDHA_INVENTORY**\n: the inventory when **--inventory** is not given\n\n" +
		"**NO_COLOR**, **GRIDHA_NO_COLOR**\n: no colours in the text report\n\n")
	b.WriteString("# FILES\n\n" +
		"*/etc/gridha/gridha.yaml*\n: the example inventory the packages install (copy it, e.g. to *./gridha.yaml*)\n\n" +
		"*/usr/share/doc/gridha/examples/*\n: commented inventories: a minimal pair, an HA multigroup, BDII and DNS\n\n")
	fmt.Fprintf(&b, "# SEE ALSO\n\n%s\n", strings.Join(also, ", "))
	pages["gridha.1"] = md2man.Render([]byte(b.String()))

	for _, c := range cmds {
		b.Reset()
		name := "gridha-" + c.Name
		th(name)
		fmt.Fprintf(&b, "# NAME\n\n%s - %s\n\n", name, mdEscape(c.Usage))
		b.WriteString("# SYNOPSIS\n\n")
		if len(c.Subcommands) > 0 {
			for _, s := range c.Subcommands {
				if !s.Hidden {
					fmt.Fprintf(&b, "**gridha %s %s** [*OPTIONS*] %s\n\n", c.Name, s.Name, mdEscape(s.ArgsUsage))
				}
			}
		} else {
			fmt.Fprintf(&b, "**gridha %s** [*OPTIONS*] %s\n\n", c.Name, mdEscape(c.ArgsUsage))
		}
		if c.Description != "" {
			fmt.Fprintf(&b, "# DESCRIPTION\n\n%s\n", mdText(c.Description))
		}
		if len(c.VisibleFlags()) > 0 {
			b.WriteString("# OPTIONS\n\n" + mdFlags(c.Flags))
		}
		if len(c.Subcommands) > 0 {
			b.WriteString("# COMMANDS\n\n")
			for _, s := range c.Subcommands {
				if s.Hidden {
					continue
				}
				fmt.Fprintf(&b, "### %s %s\n\n%s\n\n", s.Name, mdEscape(s.ArgsUsage), mdEscape(s.Usage))
				if s.Description != "" {
					b.WriteString(mdText(s.Description) + "\n")
				}
				if len(s.VisibleFlags()) > 0 {
					b.WriteString(mdFlags(s.Flags))
				}
			}
		}
		b.WriteString("# SEE ALSO\n\n**gridha**(1)\n")
		pages[name+".1"] = md2man.Render([]byte(b.String()))
	}
	return pages, nil
}

// mdFlags is a definition list of the visible flags, as --help shows them.
func mdFlags(flags []cli.Flag) string {
	var b strings.Builder
	for _, f := range flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		placeholder, usage := unquoteUsage(df.GetUsage())
		var names []string
		for _, n := range f.Names() {
			if len(n) == 1 {
				names = append(names, "**-"+n+"**")
			} else {
				names = append(names, "**--"+n+"**")
			}
		}
		head := strings.Join(names, ", ")
		if df.TakesValue() {
			if placeholder == "" {
				placeholder = "value"
			}
			head += " *" + mdEscape(placeholder) + "*"
		}
		text := mdEscape(usage)
		if !df.TakesValue() {
			// A switch: its default is off.
		} else if v := df.GetDefaultText(); v != "" {
			text += " (default: " + mdEscape(v) + ")"
		} else if v := df.GetValue(); v != "" {
			text += " (default: " + mdEscape(v) + ")"
		}
		if env := df.GetEnvVars(); len(env) > 0 {
			text += " (environment: " + mdEscape(strings.Join(env, ", ")) + ")"
		}
		fmt.Fprintf(&b, "%s\n: %s\n\n", head, text)
	}
	return b.String()
}

// mdText turns a --help description into markdown: paragraphs stay
// paragraphs, indented lines (examples, lists, tables) stay as written in a
// preformatted block.
func mdText(s string) string {
	var b strings.Builder
	for _, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		lines := strings.Split(para, "\n")
		for i := 0; i < len(lines); {
			j := i
			indented := strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t")
			for j < len(lines) && (strings.HasPrefix(lines[j], " ") || strings.HasPrefix(lines[j], "\t")) == indented {
				j++
			}
			if indented {
				b.WriteString("```\n")
				for _, l := range dedent(lines[i:j]) {
					b.WriteString(l + "\n")
				}
				b.WriteString("```\n\n")
			} else {
				var esc []string
				for _, l := range lines[i:j] {
					esc = append(esc, mdEscape(l))
				}
				b.WriteString(strings.Join(esc, "\n") + "\n\n")
			}
			i = j
		}
	}
	return b.String()
}

func dedent(lines []string) []string {
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if common < 0 || n < common {
			common = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) >= common && common > 0 {
			l = l[common:]
		}
		out[i] = l
	}
	return out
}

// mdEscape makes text literal in markdown: no emphasis, code, links,
// HTML, headings or list items.
func mdEscape(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '#', '|':
			b.WriteByte('\\')
		case '-', '+', '=':
			if i == 0 {
				b.WriteByte('\\')
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// manPageNames lists the pages manPages makes, sorted.
func manPageNames(pages map[string][]byte) []string {
	names := make([]string, 0, len(pages))
	for n := range pages {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// unquoteUsage splits a flag's usage as urfave/cli does: the first
// `quoted` word is the value's placeholder, shown without its quotes.
func unquoteUsage(usage string) (placeholder, text string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	placeholder = usage[i+1 : i+1+j]
	return placeholder, usage[:i] + placeholder + usage[i+2+j:]
}
