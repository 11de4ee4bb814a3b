package sshx

import (
	"errors"
	"path"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// sshConfigAlgorithms are the ssh_config(5) keys that choose the
// connection's algorithms, and where each goes in ssh.Config. A site
// that chose its key exchanges, ciphers or MACs for OpenSSH gets the
// same choice from gridha.
var sshConfigAlgorithms = []struct {
	key      string
	defaults func(ssh.Algorithms) []string
	set      func(*target, []string)
}{
	{"KexAlgorithms", func(a ssh.Algorithms) []string { return a.KeyExchanges }, func(t *target, l []string) { t.kex = l }},
	{"Ciphers", func(a ssh.Algorithms) []string { return a.Ciphers }, func(t *target, l []string) { t.ciphers = l }},
	{"MACs", func(a ssh.Algorithms) []string { return a.MACs }, func(t *target, l []string) { t.macs = l }},
}

// algorithmList applies an ssh_config algorithm list as OpenSSH does:
// "a,b" replaces the defaults, "+a,b" appends to them, "-a,b*" removes
// from them (shell wildcards), "^a,b" puts a and b first. Names Go's SSH
// library does not implement (OpenSSH's sntrup761x25519-sha512, the umac
// MACs) are left out, because a list written for OpenSSH may hold them;
// a list that names none it implements is an error.
func algorithmList(spec string, defaults, known []string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	op := byte(0)
	if spec != "" && strings.IndexByte("+-^", spec[0]) >= 0 {
		op, spec = spec[0], spec[1:]
	}
	var names []string
	for _, n := range strings.Split(spec, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("no algorithm named")
	}
	supported := func(l []string) []string {
		var out []string
		for _, n := range l {
			if slices.Contains(known, n) && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		return out
	}
	var out []string
	switch op {
	case '-':
		for _, d := range defaults {
			if !slices.ContainsFunc(names, func(p string) bool { ok, _ := path.Match(p, d); return ok }) {
				out = append(out, d)
			}
		}
	case '+':
		out = supported(append(slices.Clone(defaults), names...))
	case '^':
		out = supported(append(slices.Clone(names), defaults...))
	default:
		out = supported(names)
	}
	if len(out) == 0 {
		return nil, errors.New("none of these is one gridha's SSH library implements: " + strings.Join(names, ","))
	}
	return out, nil
}

// allAlgorithms is every algorithm Go's SSH library implements, the
// insecure ones included (a site may name them, as OpenSSH allows).
func allAlgorithms(pick func(ssh.Algorithms) []string) []string {
	return append(slices.Clone(pick(ssh.SupportedAlgorithms())), pick(ssh.InsecureAlgorithms())...)
}
