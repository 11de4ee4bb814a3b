package roles

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/templates"
)

// StateServer is the `state-server` role: the file/DB server of the RB HA
// layout (slides 4, 5, 7, 12). It replaces the rb-state-server package:
// shared export, the snfs user and its keys, the L&B database and grants.
type StateServer struct{}

// NewStateServer returns the role.
func NewStateServer() *StateServer { return &StateServer{} }

// Name is the role's name.
func (StateServer) Name() string { return "state-server" }

// Summary is one line for --help.
func (StateServer) Summary() string {
	return "file/DB server of the RB HA layout: shared export, snfs user and keys, lbserver20 database and grants (replaces rb-state-server)"
}

// Plan builds the state server's steps.
func (r StateServer) Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	if inventory.IsPool(inv) {
		return poolPlan(inv, opts)
	}
	cfg := inv.Roles.StateServer
	rb := inv.Roles.RBNode
	servers := inv.HostsWithRole(r.Name())
	nodes := inv.HostsWithRole("rb-node")
	steps := map[string][]installer.Step{}
	for _, srv := range servers {
		if !opts.InLimit(srv.Name) {
			continue
		}
		s, err := r.hostSteps(inv, srv, nodes, cfg, rb, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", srv.Name, err)
		}
		steps[srv.Name] = s
	}
	return &installer.Plan{Phases: []installer.Phase{{Name: "state-server", Steps: steps}}}, nil
}

// servedNodes are the rb nodes srv serves (every node on a pool member),
// and those of their addresses that are DNS names.
func servedNodes(inv *inventory.Inventory, srv *inventory.Host, nodes []*inventory.Host) (mine []*inventory.Host, names []string) {
	rb := inv.Roles.RBNode
	for _, n := range nodes {
		// Only nodes served by this state server get a key and a grant.
		if rb.StateServer == "" || rb.StateServer == srv.Name || inventory.IsPool(inv) {
			mine = append(mine, n)
			if !isIP(n.Address) {
				names = append(names, n.Address)
			}
		}
	}
	return mine, names
}

func (r StateServer) hostSteps(inv *inventory.Inventory, srv *inventory.Host, nodes []*inventory.Host, cfg inventory.StateServer, rb inventory.RBNode, opts Options) ([]installer.Step, error) {
	mine, names := servedNodes(inv, srv, nodes)
	keys := make([]*NodeKey, len(mine))
	for i, n := range mine {
		k, err := LoadNodeKey(inv, n.Name, !opts.ReadOnly)
		if err != nil {
			if opts.ReadOnly {
				// verify/--check never writes, not even locally: the
				// missing key shows up as drift of the keys file.
				continue
			}
			return nil, err
		}
		keys[i] = k
	}
	user := cfg.SnfsUser
	var addrs []string
	for _, n := range mine {
		addrs = append(addrs, n.Address)
	}
	// The export tree is root's: sshd's ChrootDirectory wants every
	// component root-owned and not writable by others, and the folders
	// must be traversable by the nodes' service users (permission checks
	// happen on the node, default_permissions).
	var out []installer.Step
	if len(names) > 0 {
		out = append(out, &resolveNames{Server: srv.Name, Names: names})
	}
	out = append(out,
		snfsAccount(user, cfg.Export, cfg.SnfsHome, rb.SharedFS),
		keyLoginAllowed(user),
		&steps.Dir{Path: snfsKeysDir, Mode: 0o755, Owner: "root", Group: "root"},
		&nodeKeysFile{Server: srv.Name, Path: snfsKeysFile(user), Driver: rb.SharedFS, Nodes: mine, Keys: keys},
		// Keys the account could write itself (an older gridha kept them
		// there) are not read any more; remove them so nobody is misled.
		&steps.Absent{Path: path.Join(cfg.SnfsHome, ".ssh", "authorized_keys")},
		&sshdConfine{User: user, Export: cfg.Export, Driver: rb.SharedFS, Addrs: addrs},
		&steps.Dir{Path: cfg.Export, Mode: 0o755, Owner: "root", Group: "root"},
	)
	if rb.SharedFS == "sshfs" {
		out = append(out, exportParentSealed(cfg.Export))
	}
	for _, g := range rb.GroupNames() {
		out = append(out, &steps.Dir{Path: cfg.Export + "/" + g, Mode: 0o755, Owner: "root", Group: "root"})
		for _, d := range rb.StateDirs {
			// Create-only: once a node moved its state here, the folder
			// carries that state's own mode and owner, which must not be
			// reset.
			out = append(out, &steps.Dir{Path: cfg.Export + "/" + inventory.ShareDir(g, d), Mode: 0o755, Owner: "root", Group: "root", CreateOnly: true})
		}
	}
	if rb.SharedFS == "snfs" {
		// slide 7: export only to the server's own host name, never localhost.
		out = append(out, &exportsEntry{Path: cfg.Export, Client: srv.Hostname,
			Options: "rw,sync,no_subtree_check,no_root_squash,insecure"})
	}

	lb, err := lbSteps(srv, mine, names, cfg, false)
	if err != nil {
		return nil, err
	}
	return append(out, lb...), nil
}

// lbSteps are the L&B database (slide 8) and the nodes' accounts on srv,
// reached through the SSH connection. On a pool member (pool) MySQL's
// option file and listening address are the Galera node's business.
func lbSteps(srv *inventory.Host, mine []*inventory.Host, names []string, cfg inventory.StateServer, pool bool) ([]installer.Step, error) {
	var out []installer.Step
	admin, err := stateServerAdmin(cfg)
	if err != nil {
		return nil, err
	}
	password, err := cfg.MySQL.PasswordFile.Read()
	if err != nil {
		return nil, fmt.Errorf("roles.state-server.mysql.password_file: %w", err)
	}
	if !pool {
		bind := cfg.MySQL.BindAddress
		if bind == "" {
			bind = srv.Address
		}
		cnf, err := templates.Render("mysql-gridha.cnf.tmpl", mysqlCnf{BindAddress: bind, Port: cfg.MySQL.Port})
		if err != nil {
			return nil, err
		}
		out = append(out,
			&steps.File{Path: cfg.MySQL.Config, Content: cnf, Mode: 0o644, Owner: "root", Group: "root"},
			&steps.MySQLListen{Admin: admin, Address: bind, Port: cfg.MySQL.Port, Service: cfg.MySQL.Service},
		)
	}
	out = append(out, &steps.MySQLDatabase{Admin: admin, Name: cfg.MySQL.Database})
	for _, n := range mine {
		if isIP(n.Address) {
			out = append(out, &steps.MySQLUser{Admin: admin, User: cfg.MySQL.User, Host: n.Address,
				Password: password, Database: cfg.MySQL.Database})
		}
	}
	if len(names) > 0 {
		// One account per address each name resolves to on the server.
		out = append(out, &nodeMySQLUsers{Server: srv.Name, Nodes: mine,
			User: steps.MySQLUser{Admin: admin, User: cfg.MySQL.User, Password: password, Database: cfg.MySQL.Database}})
	}
	out = append(out, &nodeUserHosts{Server: srv.Name, Nodes: mine, Hosts: steps.MySQLUserHosts{Admin: admin, User: cfg.MySQL.User}})
	return out, nil
}

type mysqlCnf struct {
	BindAddress string
	Port        int
}

// snfsAuthorizedEntry restricts a node's key: only from its address, no
// pty, no forwarding (restrict); with the snfs driver only the remote end
// of sec_rpc's RPC proxy. With the sshfs driver the Match block forces
// internal-sftp in a chroot whatever the key says; command= says it again.
func snfsAuthorizedEntry(addrs string, k *NodeKey, driver string) string {
	opts := `restrict,from="` + addrs + `"`
	if driver == "snfs" {
		opts += `,command="` + snfsRPCCommand + `"`
	} else {
		opts += `,command="internal-sftp"`
	}
	return opts + " " + k.AuthorizedKey
}

// keysFileContent is the authorized keys file holding exactly keys.
func keysFileContent(keys []string) []byte {
	var b strings.Builder
	b.WriteString("# rb nodes' keys (written by gridha install state-server; root-owned, outside what the account can write)\n")
	for _, k := range keys {
		b.WriteString(k + "\n")
	}
	return []byte(b.String())
}

// exportsEntry keeps one /etc/exports line for Path, exporting it to Client
// only, and re-exports (exportfs -ra) only when the line changed.
type exportsEntry struct {
	Path, Client, Options string
}

const exportsFile = "/etc/exports"

func (e *exportsEntry) ID() string { return "export " + e.Path + " to " + e.Client }

func (e *exportsEntry) Probes() []installer.Probe {
	return []installer.Probe{installer.FileProbe(exportsFile)}
}

func (e *exportsEntry) line() string { return e.Path + " " + e.Client + "(" + e.Options + ")" }

func (e *exportsEntry) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := env.Facts.File(exportsFile)
	if err != nil {
		return installer.Failed(err)
	}
	var kept []string
	var found []string
	for _, l := range strings.Split(strings.TrimRight(string(ff.Content), "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == e.Path {
			found = append(found, l)
			continue
		}
		if l != "" || len(kept) > 0 {
			kept = append(kept, l)
		}
	}
	want := e.line()
	if len(found) == 1 && found[0] == want {
		return installer.OK("exported to " + e.Client + " only")
	}
	if !apply {
		if len(found) == 0 {
			return installer.MissingProps(exportsFile+" has no line for "+e.Path, installer.Prop("exports", want, "no line"))
		}
		r := installer.DriftProps(exportsFile+" line for "+e.Path+" differs", installer.Prop("exports", want, strings.Join(found, "; ")))
		r.Expected, r.Found = want, strings.Join(found, "\n")
		return r
	}
	content := strings.Join(append(kept, want), "\n") + "\n"
	mode := fs.FileMode(0o644)
	if ff.Exists {
		mode = ff.Mode
	}
	if err := env.Conn.WriteFile(ctx, exportsFile, []byte(content), mode, "root", "root"); err != nil {
		return installer.Failed(err)
	}
	res, err := env.Conn.Run(ctx, "if command -v exportfs >/dev/null 2>&1; then exportfs -ra; else echo 'exportfs not installed (nfs-kernel-server): export takes effect when it is'; fi", nil)
	if err != nil {
		return installer.Failed(err)
	}
	if err := res.Err("exportfs -ra"); err != nil {
		return installer.Failed(err)
	}
	return installer.Changed(strings.TrimSpace("exported " + e.Path + " to " + e.Client + " " + string(res.Stdout)))
}

// accountProbeKey and accountProbe are the one probe of the nodes' account
// that snfsAccount and keyLoginAllowed share (the fact batch runs it once
// for both): its passwd entry ("pw=" line) and whether its password field
// is locked ("shadow=locked" or "shadow=open"; no line: no shadow entry).
// Only that of the field leaves the host, not the field itself, and no cut
// or pipe runs: two getent in all, where each step's own probe ran three
// getent and two cut on every verify.
func accountProbeKey(user string) string { return "account:" + user }

func accountProbe(user string) string {
	q := installer.ShellQuote(user)
	return `if e=$(getent passwd ` + q + `); then printf 'pw=%s\n' "$e"; fi
if s=$(getent shadow ` + q + `); then case ${s#*:} in '!'*) echo shadow=locked;; *) echo shadow=open;; esac; fi`
}

// parseAccountProbe reads accountProbe's output: the passwd entry's fields
// (nil: no account) and "locked", "open" or "" (no shadow entry).
func parseAccountProbe(out []byte) (passwd []string, shadow string) {
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "pw="); ok && passwd == nil {
			passwd = strings.Split(v, ":")
		} else if v, ok := strings.CutPrefix(l, "shadow="); ok && shadow == "" {
			shadow = v
		}
	}
	return passwd, shadow
}

// keyLoginAllowed unlocks a service account's password field ("!" from
// useradd becomes "*": still no password, but sshd without PAM refuses key
// logins to a locked account).
func keyLoginAllowed(user string) installer.Step {
	return &steps.Exec{
		Name:     user + " accepts key logins",
		ProbeKey: accountProbeKey(user),
		Probe:    accountProbe(user),
		Check: func(r installer.ProbeResult) (bool, string) {
			_, shadow := parseAccountProbe(r.Stdout)
			if shadow == "" {
				// Facts are gathered before the phase: a user created by
				// the step before this one is not seen yet.
				return false, "no such account yet"
			}
			if shadow == "locked" {
				return false, "account locked (password field starts with !): sshd refuses its keys"
			}
			return true, ""
		},
		Apply: "usermod -p '*' " + installer.ShellQuote(user),
	}
}
