package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst lets flags follow the role names, as admins used to Ansible
// type them (`gridha install base --check`): urfave/cli stops reading flags
// at the first argument, so the arguments of install and verify are
// reordered, flags (with their values) first. "--" ends the flags as usual.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	i, cmd := commandAt(app, args)
	if cmd == nil {
		return args
	}
	flags, positional, ok := splitArgs(cmd, args[i+1:])
	if !ok {
		return args // "-i" without its value: let urfave/cli say so
	}
	out := append([]string{}, args[:i+1]...)
	out = append(out, flags...)
	return append(out, positional...)
}

// commandAt finds the command after the global flags of args: its index
// and, when it is install, verify, plan or check (the commands that take
// flags after their arguments), the command.
func commandAt(app *cli.App, args []string) (int, *cli.Command) {
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "-" {
		if args[i] == "--" {
			return i, nil
		}
		if takesValue(app.Flags, args[i]) {
			i++
		}
		i++
	}
	if i >= len(args) {
		return i, nil
	}
	for _, c := range app.Commands {
		if c.HasName(args[i]) && (c.Name == "install" || c.Name == "verify" || c.Name == "plan" || c.Name == "check") {
			return i, c
		}
	}
	return i, nil
}

// splitArgs separates a command's arguments into flags (with their values)
// and positional arguments; "--" ends the flags. ok is false when the
// last flag lacks its value.
func splitArgs(cmd *cli.Command, rest []string) (flags, positional []string, ok bool) {
	for k := 0; k < len(rest); k++ {
		a := rest[k]
		switch {
		case a == "--":
			positional = append(positional, rest[k+1:]...)
			k = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			if takesValue(cmd.Flags, a) {
				if k+1 >= len(rest) {
					return nil, nil, false
				}
				k++
				flags = append(flags, rest[k])
			}
		default:
			positional = append(positional, a)
		}
	}
	return flags, positional, true
}

// takesValue reports whether arg ("-i", "--limit", not "--limit=x") is a
// flag that reads the next argument as its value.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}
