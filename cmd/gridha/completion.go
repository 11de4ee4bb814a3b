package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
)

// completeCommand is what the completion scripts run at every <TAB>:
// `gridha __complete WORD... CURRENT` prints the candidates for CURRENT
// (the word being completed, "" for a new one), one per line. It is read
// before urfave/cli parses anything, since a half-typed flag (`--ch`) is
// not a flag urfave/cli would accept. No candidates: the shell completes
// file names.
const completeCommand = "__complete"

// hostKeyPolicies are the values of --host-key-policy.
func hostKeyPolicies() []string { return []string{sshx.PolicyStrict, sshx.PolicyAcceptNew} }

// completionShells are the shells `gridha completion` has a script for.
func completionShells() []string { return []string{"bash", "zsh"} }

// flagValues are the values a flag's completion offers, from the lists the
// flag is checked against; nil means none known (the shell offers files:
// --inventory).
func flagValues(d Deps, name string, words []string) []string {
	switch name {
	case flagOutput:
		return report.Formats
	case flagHostKey:
		return hostKeyPolicies()
	case flagLimit:
		var names []string
		for _, h := range completionHosts(d, words) {
			names = append(names, h.Name)
		}
		return names
	case "state-from":
		var names []string
		for _, h := range completionHosts(d, words) {
			for _, r := range h.Roles {
				if r == "rb-node" {
					names = append(names, h.Name)
				}
			}
		}
		return names
	}
	return nil
}

// completionHosts are the hosts of the inventory the words name (-i/
// --inventory, else $GRIDHA_INVENTORY, else ./gridha.yaml), read leniently:
// a half-edited inventory still completes its host names.
func completionHosts(d Deps, words []string) []inventory.NamedHost {
	path := d.Getenv("GRIDHA_INVENTORY")
	for i, w := range words {
		name, val, hasVal := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if !strings.HasPrefix(w, "-") || (name != flagInventory && name != "i") {
			continue
		}
		switch {
		case hasVal:
			path = val
		case i+1 < len(words) && words[i+1] == "=" && i+2 < len(words):
			path = words[i+2]
		case i+1 < len(words):
			path = words[i+1]
		}
	}
	if path == "" {
		path = "./gridha.yaml"
	}
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, rest)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return inventory.HostList(data)
}

// completeWords returns the candidates for the last of words (the words
// after the program name as the shell split them; bash splits
// `--output=js` into `--output`, `=`, `js`).
func completeWords(app *cli.App, d Deps, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur := words[len(words)-1]
	flags, subs := app.Flags, app.Commands
	var cmd *cli.Command
	var given []string // positional arguments of the command
	used := map[string]bool{}
	pending := "" // a flag waiting for its value
	dashdash := false
	for _, w := range words[:len(words)-1] {
		switch {
		case pending != "":
			if w != "=" {
				pending = ""
			}
		case dashdash || !strings.HasPrefix(w, "-") || w == "-":
			if c := findCommand(subs, w); c != nil && len(given) == 0 && !dashdash {
				cmd, flags, subs = c, c.Flags, c.Subcommands
				used = map[string]bool{}
			} else {
				given = append(given, w)
			}
		case w == "--":
			dashdash = true
		default:
			name, _, hasVal := strings.Cut(strings.TrimLeft(w, "-"), "=")
			f := findFlag(flags, name)
			if f == nil {
				continue
			}
			used[f.Names()[0]] = true
			if !hasVal && takesValue(flags, w) {
				pending = f.Names()[0]
			}
		}
	}
	if pending != "" {
		if cur == "=" {
			cur = ""
		}
		return valuesWithPrefix(d, pending, "", cur, words)
	}
	if strings.HasPrefix(cur, "-") && cur != "-" && !dashdash || cur == "-" {
		name, val, hasVal := strings.Cut(strings.TrimLeft(cur, "-"), "=")
		if hasVal {
			if f := findFlag(flags, name); f != nil && takesValue(flags, "--"+name) {
				return valuesWithPrefix(d, f.Names()[0], cur[:len(cur)-len(val)], val, words)
			}
			return nil
		}
		return flagCandidates(flags, used, cur)
	}
	var out []string
	if len(given) == 0 {
		for _, c := range subs {
			if !c.Hidden && strings.HasPrefix(c.Name, cur) {
				out = append(out, c.Name)
			}
		}
	}
	for _, a := range positionalValues(d, cmd, given) {
		if strings.HasPrefix(a, cur) {
			out = append(out, a)
		}
	}
	return out
}

// positionalValues are the arguments a command takes: roles for install,
// verify and plan (each once), a shell for completion.
func positionalValues(d Deps, cmd *cli.Command, given []string) []string {
	if cmd == nil {
		return nil
	}
	switch cmd.Name {
	case "install", "verify", "plan":
		var out []string
		for _, r := range d.Registry.Names() {
			if !slices.Contains(given, r) {
				out = append(out, r)
			}
		}
		return out
	case "completion":
		if len(given) == 0 {
			return completionShells()
		}
	}
	return nil
}

// valuesWithPrefix completes the value val of flag name; prefix is what
// goes before each candidate (`--output=` when the word was one). --limit
// takes a comma-separated list: the last item is completed, the ones
// before kept and not offered again.
func valuesWithPrefix(d Deps, name, prefix, val string, words []string) []string {
	vals := flagValues(d, name, words)
	var done []string
	if name == flagLimit {
		if i := strings.LastIndex(val, ","); i >= 0 {
			prefix += val[:i+1]
			done = strings.Split(val[:i], ",")
			val = val[i+1:]
		}
	}
	var out []string
	for _, v := range vals {
		if strings.HasPrefix(v, val) && !slices.Contains(done, v) {
			out = append(out, prefix+v)
		}
	}
	return out
}

// flagCandidates are the flags of a command (and --help) starting with cur,
// not given yet.
func flagCandidates(flags []cli.Flag, used map[string]bool, cur string) []string {
	var out []string
	for _, f := range flags {
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		if used[f.Names()[0]] {
			continue
		}
		for _, n := range f.Names() {
			w := "--" + n
			if len(n) == 1 {
				w = "-" + n
			}
			if strings.HasPrefix(w, cur) {
				out = append(out, w)
			}
		}
	}
	if strings.HasPrefix("--help", cur) {
		out = append(out, "--help")
	}
	sort.Strings(out)
	return out
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// runComplete prints the candidates for `gridha __complete WORD...`.
func runComplete(d Deps, words []string) int {
	for _, c := range completeWords(NewApp(d), d, words) {
		fmt.Fprintln(d.Stdout, c)
	}
	return 0
}

const bashCompletion = `# bash completion for gridha: source <(gridha completion bash), or install
# as /usr/share/bash-completion/completions/gridha (the packages do).
_gridha() {
  local IFS=$'\n'
  # Every word up to the cursor, the one being completed included ("" for
  # a new one): gridha knows its commands, flags and their values.
  COMPREPLY=($("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
  return 0
}
complete -o bashdefault -o default -F _gridha gridha
`

const zshCompletion = `#compdef gridha
# zsh completion for gridha: source <(gridha completion zsh), or install as
# _gridha in a folder of $fpath (the packages do).
_gridha() {
  local -a opts
  # Every word up to the cursor, the one being completed included.
  opts=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if [[ -n "${opts[1]}" ]]; then
    compadd -Q -- "${opts[@]}"
  else
    _files
  fi
}
if [[ "${funcstack[1]}" == "_gridha" ]]; then
  _gridha "$@"
else
  compdef _gridha gridha
fi
`
