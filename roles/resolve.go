package roles

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// Node addresses given as DNS names (issue 12). sshd matches `from=` against
// the peer's IP (UseDNS no, the default) and MySQL matches account hosts
// against the client's IP unless it resolves names (skip_name_resolve is
// common): a name written there as given shuts the node out. gridha
// resolves each name on the state server (getent ahosts: the server's own
// resolver, /etc/hosts included, the view the server has of the peer) and
// writes every address it gets; a name that does not resolve there stops
// the step with an error saying what to do. IP addresses are used as given.

// isIP says whether an inventory address is an IP literal.
func isIP(a string) bool { return net.ParseIP(a) != nil }

// resolved are the addresses node names resolve to on a state server:
// name -> sorted addresses, set by resolveNames on the server.
var resolved = installer.NewValue[map[string][]string]("resolved-node-names")

// resolveNames resolves the nodes' DNS names on the state server and hands
// the addresses to later steps of the server (resolved).
type resolveNames struct {
	Server string
	Names  []string
}

func (r *resolveNames) ID() string { return "resolve node names " + strings.Join(r.Names, ", ") }

func (r *resolveNames) probeKey() string { return "resolve-names" }

func (r *resolveNames) Produces() []installer.ValueRef {
	return []installer.ValueRef{resolved.Of("")}
}

func (r *resolveNames) Probes() []installer.Probe {
	var b strings.Builder
	for _, n := range r.Names {
		// getent's lines as they are (the address is the first field;
		// ParseResolved keeps each once): one process per name, not three.
		fmt.Fprintf(&b, "echo '@@ %s'; getent ahosts %s\n", n, installer.ShellQuote(n))
	}
	b.WriteString("exit 0\n")
	return []installer.Probe{{Key: r.probeKey(), Script: b.String()}}
}

// ParseResolved reads the probe's output: name -> sorted addresses.
func ParseResolved(out string) map[string][]string {
	m := map[string][]string{}
	cur := ""
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if n, ok := strings.CutPrefix(l, "@@ "); ok {
			cur = n
			m[cur] = nil
			continue
		}
		// getent ahosts: "ADDRESS  STREAM name", "ADDRESS  DGRAM", ...
		if f := strings.Fields(l); cur != "" && len(f) > 0 && isIP(f[0]) {
			m[cur] = append(m[cur], f[0])
		}
	}
	for n := range m {
		sort.Strings(m[n])
		m[n] = slices.Compact(m[n])
	}
	return m
}

func (r *resolveNames) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	pr, ok := env.Facts.Get(r.probeKey())
	if !ok {
		return installer.Failed(fmt.Errorf("%s: %s: no fact gathered", env.Host, r.ID()))
	}
	got := ParseResolved(string(pr.Stdout))
	var bad, said []string
	addrs := map[string][]string{}
	for _, n := range r.Names {
		a := got[n]
		if len(a) == 0 {
			bad = append(bad, n)
			continue
		}
		addrs[n] = a
		said = append(said, n+" = "+strings.Join(a, " "))
	}
	resolved.Set(env, addrs)
	if len(bad) > 0 {
		return installer.Failed(fmt.Errorf("%s: node address %s does not resolve on the state server (getent ahosts): sshd's from= and MySQL's account hosts need IP addresses; give the node's IP as its address in the inventory, or make the name resolve on %s (DNS or /etc/hosts)",
			env.Host, strings.Join(bad, ", "), env.Host))
	}
	return installer.OK(strings.Join(said, "; "))
}

// nodeAddrs returns the addresses of a node as the state server sees it:
// the inventory's IP, or what its name resolved to (resolveNames ran
// earlier in the same phase).
func nodeAddrs(env *installer.Env, server string, n *inventory.Host) ([]string, error) {
	if isIP(n.Address) {
		return []string{n.Address}, nil
	}
	m, _ := resolved.Get(env, server)
	a, ok := m[n.Address]
	if !ok {
		return nil, fmt.Errorf("%s: the address of node %s (%s) was not resolved (see the step resolving node names)", env.Host, n.Name, n.Address)
	}
	return a, nil
}

// nodeKeysFile writes the account's keys file with each node's key
// restricted to the node's addresses (resolved at run time).
type nodeKeysFile struct {
	Server, Path string
	Driver       string
	Nodes        []*inventory.Host
	Keys         []*NodeKey // Keys[i] of Nodes[i]; nil: not generated yet (verify)
}

func (k *nodeKeysFile) file(content []byte) steps.File {
	return steps.File{Path: k.Path, Content: content, Mode: 0o644, Owner: "root", Group: "root"}
}

func (k *nodeKeysFile) Consumes() []installer.ValueRef {
	return []installer.ValueRef{resolved.Of(k.Server)}
}

func (k *nodeKeysFile) ID() string                { return k.file(nil).ID() }
func (k *nodeKeysFile) Probes() []installer.Probe { return k.file(nil).Probes() }

func (k *nodeKeysFile) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	var entries []string
	for i, n := range k.Nodes {
		if k.Keys[i] == nil {
			continue
		}
		addrs, err := nodeAddrs(env, k.Server, n)
		if err != nil {
			return installer.Failed(err)
		}
		entries = append(entries, snfsAuthorizedEntry(strings.Join(addrs, ","), k.Keys[i], k.Driver))
	}
	r := k.file(keysFileContent(entries)).CheckApply(ctx, env, apply)
	if r.Status == installer.StatusDrift || r.Status == installer.StatusChanged {
		// Say which keys, not only "content differs".
		if ff, err := env.Facts.File(k.Path); err == nil && ff.Exists {
			missing, extra := steps.KeyDiff(ff.Content, entries)
			if len(missing) > 0 {
				r.Message += "; missing " + strings.Join(missing, ", ")
			}
			if len(extra) > 0 {
				r.Message += "; extra " + strings.Join(extra, ", ")
			}
		}
	}
	return r
}

// nodeMySQLUsers is the L&B account of every node address given as a name
// (one account per resolved address), and the list of every node address
// for MySQLUserHosts, which drops accounts from anywhere else.
type nodeMySQLUsers struct {
	Server string
	Nodes  []*inventory.Host // all nodes of the server
	User   steps.MySQLUser   // Host filled in per address
}

func (m *nodeMySQLUsers) names() []string {
	var out []string
	for _, n := range m.Nodes {
		if !isIP(n.Address) {
			out = append(out, n.Address)
		}
	}
	return out
}

func (m *nodeMySQLUsers) Consumes() []installer.ValueRef {
	return []installer.ValueRef{resolved.Of(m.Server)}
}

func (m *nodeMySQLUsers) ID() string {
	return "mysql user " + m.User.User + "@(" + strings.Join(m.names(), ", ") + ", resolved)"
}
func (m *nodeMySQLUsers) Probes() []installer.Probe { return nil }

func (m *nodeMySQLUsers) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	var msgs []string
	worst := installer.OK("")
	rank := map[installer.Status]int{installer.StatusOK: 0, installer.StatusChanged: 1, installer.StatusDrift: 2, installer.StatusMissing: 2, installer.StatusFailed: 3}
	for _, n := range m.Nodes {
		if isIP(n.Address) {
			continue
		}
		addrs, err := nodeAddrs(env, m.Server, n)
		if err != nil {
			return installer.Failed(err)
		}
		for _, a := range addrs {
			u := m.User
			u.Host = a
			r := u.CheckApply(ctx, env, apply)
			if r.Message != "" {
				msgs = append(msgs, n.Address+" "+a+": "+r.Message)
			}
			if rank[r.Status] > rank[worst.Status] {
				worst = r
			}
		}
	}
	worst.Message = strings.Join(msgs, "; ")
	if worst.Status == installer.StatusFailed && worst.Message == "" {
		worst.Message = worst.Error
	}
	return worst
}

// nodeUserHosts is steps.MySQLUserHosts with the nodes' addresses resolved.
type nodeUserHosts struct {
	Server string
	Nodes  []*inventory.Host
	Hosts  steps.MySQLUserHosts
}

func (h *nodeUserHosts) Consumes() []installer.ValueRef {
	return []installer.ValueRef{resolved.Of(h.Server)}
}

func (h *nodeUserHosts) ID() string                { return h.Hosts.ID() }
func (h *nodeUserHosts) Probes() []installer.Probe { return nil }
func (h *nodeUserHosts) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	s := h.Hosts
	s.Hosts = nil
	for _, n := range h.Nodes {
		a, err := nodeAddrs(env, h.Server, n)
		if err != nil {
			return installer.Failed(err)
		}
		s.Hosts = append(s.Hosts, a...)
	}
	return s.CheckApply(ctx, env, apply)
}
