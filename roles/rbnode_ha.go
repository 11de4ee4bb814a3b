package roles

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/hagd"
	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/templates"
)

// The HA half of rb-node (slides 9-13): gridha itself on the node, the hagd
// key and configuration, /etc/sysconfig/lcg-ha, the service script hagd
// runs, and the hagd init service enabled and running.
const (
	// HASysconfig is the service configuration read by the service script
	// (slide 12: /etc/sysconfig/lcg-ha).
	HASysconfig = "/etc/sysconfig/lcg-ha"
	// GridhaBinary is where gridha installs itself on a node; the hagd
	// service runs `gridha hagd run -c <config>` from it.
	GridhaBinary = inventory.GridhaBinary
	// HAGDInitScript is the hagd service (LSB init script).
	HAGDInitScript = "/etc/init.d/hagd"
	// HAServiceLog is where the service script logs every start and stop.
	HAServiceLog = "/var/log/lcg-ha-service.log"
	// HAGDLog is hagd's own log.
	HAGDLog = "/var/log/hagd.log"
	// HAGDPIDFile is the pid file of the hagd service.
	HAGDPIDFile = "/run/hagd.pid"
	// HAGDLogrotate rotates HAGDLog and HAServiceLog.
	HAGDLogrotate = "/etc/logrotate.d/hagd"
)

// HAGDKeyPath is where the node keeps hagd's shared key (beside hagd.conf).
func HAGDKeyPath(rb inventory.RBNode) string { return path.Join(path.Dir(rb.HAGD.Config), "hagd.key") }

// HAGDMySQLPasswordPath is where the node keeps the lease account's password.
func HAGDMySQLPasswordPath(rb inventory.RBNode) string {
	return path.Join(path.Dir(rb.HAGD.Config), "hagd-mysql.pw")
}

// errHAGDRotating: the key files are the rotation phases' business.
var errHAGDRotating = errors.New("hagd key rotation under way")

// hagdKeyPath is where the generated shared key is kept on the admin machine.
func hagdKeyPath(inv *inventory.Inventory) string {
	return filepath.Join(inv.SecretsDir, "hagd", "key")
}

// LoadHAGDKey returns the multigroup's shared hagd key: the content of
// roles.rb-node.hagd.key_file when set, else a key gridha generates once in
// the inventory's secrets folder (like the snfs keys, LoadNodeKey), so every
// node gets the same one. With create false a missing generated key is
// fs.ErrNotExist (verify and --check write nothing, not even locally).
func LoadHAGDKey(inv *inventory.Inventory, create bool) ([]byte, error) {
	rb := inv.Roles.RBNode
	if rb.HAGD.KeyFile.IsSet() {
		v, err := rb.HAGD.KeyFile.Read()
		if err != nil {
			return nil, fmt.Errorf("roles.rb-node.hagd.key_file: %w", err)
		}
		if len(v) < 16 {
			return nil, fmt.Errorf("roles.rb-node.hagd.key_file (%s): the key is shorter than 16 bytes", rb.HAGD.KeyFile)
		}
		return []byte(v), nil
	}
	key, err := generatedSecret(inv, hagdKeyPath(inv), "hagd key", 32, create)
	if err != nil {
		return nil, err
	}
	return []byte(key), nil
}

// generatedSecret returns the secret gridha keeps at p in the inventory's
// secrets folder, generating it once (n random bytes, hex, 0600 from the
// first byte) when it is missing and create is set; with create false a
// missing one is fs.ErrNotExist (verify and --check write nothing, not even
// locally). what names it in errors.
func generatedSecret(inv *inventory.Inventory, p, what string, n int, create bool) (string, error) {
	data, err := inventory.ReadPrivateFile(p)
	switch {
	case err == nil:
		v := strings.TrimSpace(string(data))
		if len(v) < 16 {
			return "", fmt.Errorf("%s %s is shorter than 16 characters: remove it to generate a new one", what, p)
		}
		return v, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s: %w", what, err)
	case !create:
		return "", fmt.Errorf("%s (%s): %w", what, p, fs.ErrNotExist)
	}
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	v := hex.EncodeToString(raw)
	if err := writeSecretFile(inv.SecretsDir, p, []byte(v+"\n")); err != nil {
		return "", fmt.Errorf("write %s: %w", what, err)
	}
	return v, nil
}

// lcgHA is the data of templates/lcg-ha.tmpl.
type lcgHA struct {
	Services, StateDirs, Groups                 []string
	Script, MountPoint, RequireMount, HomeGroup string
	Log, HagdConf                               string
}

// hagdInit is the data of templates/hagd.init.tmpl.
type hagdInit struct {
	Binary, Config, PIDFile, LogFile string
	StopWaitTenths                   int
}

// hagdInitData is what the hagd init script is rendered from, on an rb
// node (install rb-node) or in the packages.
func hagdInitData(binary, config string, stopWaitTenths int) hagdInit {
	return hagdInit{Binary: binary, Config: config, PIDFile: HAGDPIDFile, LogFile: HAGDLog, StopWaitTenths: stopWaitTenths}
}

// hagdLogrotateData is the data of templates/hagd.logrotate.tmpl.
func hagdLogrotateData() struct{ HagdLog, ServiceLog string } {
	return struct{ HagdLog, ServiceLog string }{HAGDLog, HAServiceLog}
}

// lcgHAService is the data of templates/lcg-ha-service.tmpl.
type lcgHAService struct{ Sysconfig string }

// haSteps are the HA half of the rb-node role for node (lcg-ha, hagd.conf,
// the service script, hagd enabled and running). They run in the last phase
// of the plan, after the node's state is on the shared storage.
func (RBNode) haSteps(inv *inventory.Inventory, node *inventory.Host, opts Options) ([]installer.Step, error) {
	rb := inv.Roles.RBNode
	h := rb.HAGD
	// The inventory validated every setting used here (inventory/rbnode.go):
	// each node has a rank in at least one group, each group a service IP
	// and interface, and paths that go into the service script are plain
	// words.
	ranks := rb.Nodes[node.Name]
	var groups []hagd.Group
	var groupLines []string
	serviceIPs := map[string]string{}
	for _, g := range slices.Sorted(maps.Keys(ranks)) {
		grp := rb.Groups[g]
		groups = append(groups, hagd.Group{Name: g, Rank: ranks[g]})
		groupLines = append(groupLines, g+"="+grp.ServiceIP+"@"+grp.Iface)
		serviceIPs[g] = grp.ServiceIP + "@" + grp.Iface
	}

	pwPath := HAGDMySQLPasswordPath(rb)
	lease := func(ct *hagd.ConfigTemplate) ([]installer.Step, error) {
		if ct.Lease != "" && ct.Lease != "mysql" {
			return nil, nil
		}
		// The lease row lives in the L&B database, with the L&B account
		// every node already has (its password is in /etc/sysconfig/edg
		// too): no second account to manage. On a pool that database is
		// the Galera cluster, reached at the pool's service IP (the
		// account's grants hold on every member).
		ct.Lease = "mysql"
		my := inv.Roles.StateServer.MySQL
		var addr string
		if inventory.IsPool(inv) {
			addr = lbServerName(inv, nil)
		} else {
			addr = my.BindAddress
			if addr == "" || addr == "0.0.0.0" || addr == "::" {
				addr = rbStateServer(inv).Address
			}
		}
		ct.MySQLHost = mysqlHostPort(addr, my.Port)
		ct.MySQLUser, ct.MySQLDB, ct.MySQLPasswordFile = my.User, my.Database, pwPath
		pw, err := my.PasswordFile.Read()
		if err != nil {
			return nil, fmt.Errorf("roles.state-server.mysql.password_file: %w", err)
		}
		return []installer.Step{installer.Notify(steps.File{Path: pwPath, Content: []byte(pw + "\n"), Mode: 0o600, Owner: "root", Group: "root", Secret: true}, notifyHAGD)}, nil
	}

	// /etc/sysconfig/lcg-ha and the service script hagd calls.
	sysconf, err := templates.Render("lcg-ha.tmpl", lcgHA{
		Script: h.Script, Services: rb.Services, StateDirs: rb.StateDirs, Groups: groupLines,
		MountPoint: rb.MountPoint, RequireMount: "yes", HomeGroup: rb.PrimaryGroup(node.Name),
		Log: HAServiceLog, HagdConf: h.Config,
	})
	if err != nil {
		return nil, err
	}
	script, err := templates.Render("lcg-ha-service.tmpl", lcgHAService{Sysconfig: HASysconfig})
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, d := range []string{path.Dir(h.Config), path.Dir(h.Script), path.Dir(HASysconfig)} {
		if d == path.Dir(rb.SysconfigEDG) || slices.Contains(dirs, d) {
			continue // the storage half's prepare phase creates SysconfigEDG's
		}
		dirs = append(dirs, d)
	}
	return hagdHostSteps(inv, hagdHost{
		Node: node, Groups: groups, ServiceIPs: serviceIPs, Script: h.Script, Dirs: dirs,
		ScriptSteps: []installer.Step{
			steps.File{Path: HASysconfig, Content: sysconf, Mode: 0o644, Owner: "root", Group: "root"},
			steps.File{Path: h.Script, Content: script, Mode: 0o755, Owner: "root", Group: "root"},
		},
		Lease: lease, What: "roles.rb-node.hagd",
	}, opts)
}

// mysqlHostPort is hagd's mysql_host for addr and port (0 or 3306: none).
func mysqlHostPort(addr string, port int) string {
	switch {
	case port == 0 || port == 3306:
		return addr
	case strings.Contains(addr, ":"):
		return "[" + addr + "]:" + strconv.Itoa(port)
	}
	return addr + ":" + strconv.Itoa(port)
}

// hagdHost is what differs between the hosts gridha runs hagd on: rb
// nodes (their RB groups) and state pool members (the pool's DB group,
// statepool_ha.go). Everything else — the gridha binary, the shared key,
// hagd.conf from the same template and settings (roles.rb-node.hagd), the
// init script, the restart on change, the supervisor check — is the same.
type hagdHost struct {
	Node        *inventory.Host
	Groups      []hagd.Group
	ServiceIPs  map[string]string // group -> address/prefix@iface
	Script      string            // the service script hagd calls
	Dirs        []string          // folders to create (root 0755)
	ScriptSteps []installer.Step  // the service script and what it reads (no restart on change)
	// Lease fills the lease settings of ct and returns the steps of the
	// files they need (the password file).
	Lease func(ct *hagd.ConfigTemplate) ([]installer.Step, error)
	What  string // the inventory setting named in errors
}

// hagdHostSteps are the steps that make a host run hagd for hh's groups.
func hagdHostSteps(inv *inventory.Inventory, hh hagdHost, opts Options) ([]installer.Step, error) {
	rb := inv.Roles.RBNode
	h := rb.HAGD
	node := hh.Node
	var out []installer.Step
	keyPath := HAGDKeyPath(rb)

	// gratuitous ARP (iputils' arping -U) for the service IP.
	out = append(out, steps.Exec{
		Name:  "iputils-arping installed",
		Probe: `case "$(arping -V 2>&1)" in *iputils*) exit 0;; esac; exit 1`,
		Check: func(r installer.ProbeResult) (bool, string) {
			return r.ExitCode == 0, "no iputils arping (needed for gratuitous ARP)"
		},
		Apply: `if command -v apt-get >/dev/null 2>&1; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q iputils-arping
elif command -v dnf >/dev/null 2>&1; then dnf install -y -q iputils
elif command -v yum >/dev/null 2>&1; then yum install -y -q iputils
else echo "no apt-get, dnf or yum: install iputils' arping by hand" >&2; exit 1; fi`,
	})
	for _, d := range hh.Dirs {
		out = append(out, steps.Dir{Path: d, Mode: 0o755, Owner: "root", Group: "root"})
	}

	// gridha itself: the hagd daemon is `gridha hagd run`.
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("gridha's own binary: %w", err)
	}
	if s, err := filepath.EvalSymlinks(self); err == nil {
		self = s
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("gridha installs itself on the nodes as hagd: run it from a Linux build (this one is %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	out = append(out, archMatches(),
		installer.Notify(steps.Copy{Path: GridhaBinary, Source: self, Mode: 0o755, Owner: "root", Group: "root"}, notifyHAGD))

	// The shared key: the same on every node, 0600.
	key, err := LoadHAGDKey(inv, !opts.ReadOnly)
	if _, serr := os.Stat(PendingHAGDKeyPath(inv)); serr == nil && err == nil {
		// A key rotation is under way: its phases (rbnode_hagdkey.go)
		// own the key files; hagd re-reads them, no restart.
		key, err = nil, errHAGDRotating
	}
	switch {
	case errors.Is(err, errHAGDRotating):
	case err == nil:
		out = append(out, installer.Notify(steps.File{Path: keyPath, Content: append(key, '\n'), Mode: 0o600, Owner: "root", Group: "root", Secret: true}, notifyHAGD),
			// Outside a rotation no other key is accepted (one left by
			// a rotation abandoned by hand would stay valid for ever).
			steps.Absent{Path: HAGDAcceptKeyPath(rb)})
	case opts.ReadOnly && errors.Is(err, fs.ErrNotExist):
		// verify/--check generate nothing: the missing key is reported.
		out = append(out, installer.Notify(steps.Pending{Name: "file " + keyPath, Why: "no hagd key generated yet (gridha install rb-node generates " + hagdKeyPath(inv) + ")"}, notifyHAGD))
	default:
		return nil, err
	}

	ct := hagd.ConfigTemplate{
		ID: node.Name, Port: h.Port, Groups: hh.Groups, Script: hh.Script, KeyFile: keyPath,
		Ifaces: h.Iface, Log: HAGDLog, Timeout: h.Timeout, StopTimeout: h.StopTimeout,
		DT1: h.DT1, DT2: h.DT2, Heartbeat: h.Heartbeat, StatusInterval: h.StatusInterval, Backoff: h.Backoff,
		Lease: h.Lease, LeaseTTL: h.LeaseTTL, LeaseRenew: h.LeaseRenew, LeaseTimeout: h.LeaseTimeout,
		// hagd, not the service script, owns the service IP: it adds it
		// with a kernel lifetime bound to the lease.
		ServiceIPs: hh.ServiceIPs, Preempt: h.Preempt,
	}
	ct.Debug = h.Debug
	ls, err := hh.Lease(&ct)
	if err != nil {
		return nil, err
	}
	out = append(out, ls...)
	conf, err := ct.Render()
	if err != nil {
		return nil, fmt.Errorf("%s (hagd.conf of %s): %w", hh.What, node.Name, err)
	}
	out = append(out, installer.Notify(steps.File{Path: h.Config, Content: conf, Mode: 0o644, Owner: "root", Group: "root"}, notifyHAGD))

	// hagd stops its groups before it exits: the init script waits for
	// every stop (h.StopTimeout is filled by the inventory from hagd's rule).
	wait := hagd.ExitWait(h.StopTimeout, len(hh.Groups))
	initScript, err := templates.Render("hagd.init.tmpl", hagdInitData(GridhaBinary, h.Config, int(wait/(100*time.Millisecond))))
	if err != nil {
		return nil, err
	}
	rotate, err := templates.Render("hagd.logrotate.tmpl", hagdLogrotateData())
	if err != nil {
		return nil, err
	}
	out = append(out,
		steps.Dir{Path: path.Dir(HAGDLogrotate), Mode: 0o755, Owner: "root", Group: "root"},
		steps.File{Path: HAGDLogrotate, Content: rotate, Mode: 0o644, Owner: "root", Group: "root"})
	out = append(out, hh.ScriptSteps...)
	out = append(out,
		installer.Notify(steps.File{Path: HAGDInitScript, Content: initScript, Mode: 0o755, Owner: "root", Group: "root"}, notifyHAGD),
		// hagd reads its binary, key, password and configuration only at
		// start (the service script and what it reads at every call: no
		// restart for them). Restarting a master stops its services;
		// another node may take its groups over.
		steps.Restart{Service: "hagd", On: notifyHAGD},
		steps.Service{Name: "hagd", Boot: steps.BootEnabled, State: steps.StateRunning},
		hagdSupervised(h),
	)
	return out, nil
}

// hagdSupervised checks that hagd runs, with its supervising parent (gridha
// hagd run without --no-supervise): without it, a daemon that dies is not
// restarted and its service IP waits for its kernel lifetime. verify reads
// hagd's status file (hagd/statusfile.go) with the shell's own read: asking
// the control socket meant starting the 20 MB gridha binary, the largest
// cost of a verify on the node. The file proves the daemon alive by its
// freshness: hagd rewrites it every heartbeat interval, with the host's
// uptime; one older than ΔT1 (what the other nodes take for a dead node) is
// a dead or hung hagd. install waits for the hagd it just (re)started to
// report itself supervised on its control socket, and fails if it does not.
func hagdSupervised(h inventory.HAGDSettings) steps.Exec {
	probe := `case "$(` + GridhaBinary + " hagd status -c " + h.Config + ` --json 2>/dev/null)" in *'"supervised": true'*) true;; *) false;; esac`
	maxAge := h.DT1
	if maxAge == 0 {
		maxAge = hagd.DefaultDT1
	}
	return steps.Exec{
		Name:  "hagd supervised",
		Probe: hagdStatusProbe(hagd.DefaultStatusFile),
		Check: func(r installer.ProbeResult) (bool, string) {
			return checkHAGDStatus(string(r.Stdout), hagd.DefaultStatusFile, maxAge)
		},
		Apply: "i=0; while [ $i -lt 50 ]; do " + probe + " && exit 0; i=$((i+1)); sleep 0.2; done\n" +
			"echo 'hagd does not report itself supervised after 10 s: /etc/init.d/hagd restart' >&2; exit 1",
	}
}

// hagdStatusProbe prints the host's uptime (now=) and hagd's status file
// (status=, one line per line), with no process but the batch's shell.
func hagdStatusProbe(file string) string {
	q := installer.ShellQuote(file)
	return `if read -r u _ < /proc/uptime; then printf 'now=%s\n' "$u"; fi
if [ -f ` + q + ` ]; then while IFS= read -r l || [ -n "$l" ]; do printf 'status=%s\n' "$l"; done < ` + q + `; fi
exit 0`
}

// checkHAGDStatus reads hagdStatusProbe's output: ok when the status file
// was written at most maxAge ago by a supervised hagd that is not stopping.
func checkHAGDStatus(out, file string, maxAge time.Duration) (bool, string) {
	restart := ": /etc/init.d/hagd restart"
	var now, status string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "now="); ok {
			now = v
		} else if v, ok := strings.CutPrefix(l, "status="); ok {
			status += v
		}
	}
	if status == "" {
		return false, "hagd is not running (no " + file + ")" + restart
	}
	var st hagd.StatusFileStatus
	if err := json.Unmarshal([]byte(status), &st); err != nil {
		return false, fmt.Sprintf("hagd's status file %s is not hagd's: %v%s", file, err, restart)
	}
	n, err1 := strconv.ParseFloat(now, 64)
	c, err2 := strconv.ParseFloat(st.Clock, 64)
	if err1 != nil || err2 != nil {
		return false, fmt.Sprintf("cannot tell when hagd last wrote %s (uptime %q, written at %q)%s", file, now, st.Clock, restart)
	}
	age := time.Duration((n - c) * float64(time.Second))
	switch {
	case age > maxAge || age < -time.Second:
		return false, fmt.Sprintf("hagd (pid %d) last wrote its status %.1f s ago, more than ΔT1 (%s): it is dead or hung%s", st.PID, age.Seconds(), maxAge, restart)
	case st.Shutdown:
		return false, fmt.Sprintf("hagd (pid %d) is stopping", st.PID)
	case !st.Supervised:
		return false, "hagd is not under its supervisor (if it dies nothing restarts it)" + restart
	}
	return true, ""
}

// hagdOwnsRunning is the storage half's RB service step (disabled at boot,
// stopped before state moves) made safe for re-runs: while hagd runs on the
// node, hagd owns the services' running state (the master runs them), so
// only their boot state is checked. Without it a second `install rb-node`
// would stop the master's services (hagd would then fail the group over).
func hagdOwnsRunning(svc steps.Service) installer.Step { return &hagdOwned{svc: svc} }

type hagdOwned struct{ svc steps.Service }

func (h *hagdOwned) ID() string { return h.svc.ID() }

func (h *hagdOwned) Probes() []installer.Probe {
	return append(h.svc.Probes(), installer.ServiceProbe("hagd"))
}

func (h *hagdOwned) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	svc := h.svc
	owned := false
	if st, err := env.Facts.Service("hagd"); err == nil && st.Installed && st.Running {
		svc.State, owned = "", true
	}
	r := (&optionalService{svc: svc}).CheckApply(ctx, env, apply)
	if owned && r.Status == installer.StatusOK && r.Message == "" {
		r.Message = "disabled at boot; hagd runs here and decides whether it runs"
	}
	return r
}

// unameArch maps `uname -m` to Go's GOARCH.
var unameArch = map[string]string{
	"x86_64": "amd64", "amd64": "amd64", "i386": "386", "i486": "386", "i586": "386", "i686": "386",
	"aarch64": "arm64", "arm64": "arm64", "armv6l": "arm", "armv7l": "arm", "ppc64le": "ppc64le",
	"s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64", "mips64": "mips64",
}

// archMatches refuses to install this gridha binary on a node of another
// architecture (it could not run hagd there).
func archMatches() installer.Step {
	return steps.Exec{
		Name: "node architecture is gridha's (" + runtime.GOARCH + ")",
		// The kernel's own answer (Linux 6.1+) without a process; uname
		// where it has none.
		Probe: "if [ -r /proc/sys/kernel/arch ] && read -r m < /proc/sys/kernel/arch; then echo \"$m\"; else uname -m; fi",
		Check: func(r installer.ProbeResult) (bool, string) {
			m := strings.TrimSpace(string(r.Stdout))
			return unameArch[m] == runtime.GOARCH, "the node is " + m + ": install from a gridha built for it (GOARCH=" + unameArch[m] + ")"
		},
	}
}
