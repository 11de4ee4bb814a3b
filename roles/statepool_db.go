package roles

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/templates"
)

// The database half of the state pool (slide 5, issue 13): on every pool
// member a MariaDB Galera node (synchronous, multi-primary, quorum) holding
// lbserver20 and the hagd leases. See README-statepool.md.

// Paths and names on a pool member (Debian's MariaDB layout).
const (
	// GaleraDataDir is MariaDB's datadir (grastate.dat lives there).
	GaleraDataDir = "/var/lib/mysql"
	// GaleraProvider is galera-4's wsrep provider library.
	GaleraProvider = "/usr/lib/galera/libgalera_smm.so"
	// GaleraLogDir holds MariaDB's error log on a pool member.
	GaleraLogDir = "/var/log/mysql"
	// GaleraErrorLog is mariadbd's error log (without systemd nothing
	// else keeps what it says).
	GaleraErrorLog = GaleraLogDir + "/error.log"
	// GaleraPIDFile is mariadbd's pid file.
	GaleraPIDFile = "/run/mysqld/mysqld.pid"
	// GaleraSSTUser is the account mariabackup uses on a donor.
	GaleraSSTUser = "gridha_sst"
	// GarbdConfig is Debian's settings file of the garb service (the
	// Galera arbitrator), read by its init script and systemd unit.
	GarbdConfig = "/etc/default/garb"
	// GarbdLogDir holds garbd's log (garbd runs as nobody).
	GarbdLogDir = "/var/log/garbd"
	// GarbdLog is garbd's log file.
	GarbdLog = GarbdLogDir + "/garbd.log"
	// GarbdWorkDir is where garbd keeps its view state (gvwstate.dat).
	GarbdWorkDir = "/var/lib/garbd"
	// galeraStartLog receives what mariadbd prints before its error log is
	// open (gridha starts it itself where there is no systemd).
	galeraStartLog = GaleraLogDir + "/gridha-start.log"
	// GaleraTLSDir holds the member's copy of its pool certificate, key
	// and the pool CA for Galera's replication (socket.ssl), IST and SST:
	// mariadbd (user mysql) and garbd (user nobody) cannot read the root-only
	// key GlusterFS uses.
	GaleraTLSDir = "/etc/mysql/gridha-tls"
	// GarbdTLSDir is the same on the arbiter (which has no MariaDB).
	GarbdTLSDir = "/etc/gridha/garbd-tls"
)

// galeraTLSFiles are the CA, certificate and key in a TLS folder.
func galeraTLSFiles(dir string) (ca, cert, key string) {
	return dir + "/ca.pem", dir + "/cert.pem", dir + "/key.pem"
}

// galeraSSLOptions are the wsrep provider options that make Galera's
// group communication (replication, IST) TLS with the pool CA: a host
// without a certificate of gridha's CA cannot join the cluster (and so
// cannot ask for the database by SST).
func galeraSSLOptions(dir string) string {
	ca, cert, key := galeraTLSFiles(dir)
	return "socket.ssl_cert=" + cert + ";socket.ssl_key=" + key + ";socket.ssl_ca=" + ca
}

// galeraTLSSteps install the TLS files Galera reads on a member (owner:
// the account the Galera process runs as), or say none was made yet.
func galeraTLSSteps(inv *inventory.Inventory, h *inventory.Host, dir, owner, group string, opts Options) ([]installer.Step, error) {
	ca, cert, key := galeraTLSFiles(dir)
	t, err := LoadPoolTLS(inv, h, !opts.ReadOnly)
	if err != nil {
		if opts.ReadOnly && errors.Is(err, fs.ErrNotExist) {
			return []installer.Step{steps.Pending{Name: "file " + cert, Why: "no TLS certificate made for " + h.Name + " yet (install state-server makes it)"}}, nil
		}
		return nil, err
	}
	return []installer.Step{
		&steps.Dir{Path: dir, Mode: 0o750, Owner: "root", Group: group},
		steps.File{Path: ca, Content: t.CAPEM, Mode: 0o644, Owner: "root", Group: "root"},
		steps.File{Path: cert, Content: t.CertPEM, Mode: 0o644, Owner: "root", Group: "root"},
		steps.File{Path: key, Content: t.KeyPEM, Mode: 0o400, Owner: owner, Group: group, Secret: true},
	}, nil
}

// Phases of the database half of a state-server install on a pool (after
// the files half's phases).
const (
	PhasePoolDBFiles = "state pool: database files"
	PhasePoolGalera  = "state pool: galera"
	PhasePoolHealth  = "state pool: galera health"
	PhasePoolDB      = "state pool: L&B database"
)

// GaleraSSTAuthFile is the option file holding wsrep_sst_auth (0640
// root:mysql), beside the pool's option file.
func GaleraSSTAuthFile(cfg inventory.StateServer) string {
	return path.Join(path.Dir(cfg.MySQL.Config), "61-gridha-galera-sst.cnf")
}

// sstPasswordPath is where a generated SST password is kept on the admin
// machine.
func sstPasswordPath(inv *inventory.Inventory) string {
	return filepath.Join(inv.SecretsDir, "galera", "sst-password")
}

// LoadSSTPassword returns the Galera SST account's password: the content of
// roles.state-server.pool.sst_password_file when set, else one gridha
// generates once into the secrets folder (0600 from its first byte). With
// create false a missing generated password is fs.ErrNotExist (verify and
// --check write nothing, not even locally).
func LoadSSTPassword(inv *inventory.Inventory, create bool) (string, error) {
	pool := inv.Roles.StateServer.Pool
	if pool.SSTPasswordFile.IsSet() {
		v, err := pool.SSTPasswordFile.Read()
		if err != nil {
			return "", fmt.Errorf("roles.state-server.pool.sst_password_file: %w", err)
		}
		return v, nil
	}
	return generatedSecret(inv, sstPasswordPath(inv), "galera SST password", 24, create)
}

// galeraCnf is the data of templates/galera-gridha.cnf.tmpl.
type galeraCnf struct {
	Port                      int
	Socket, PIDFile, ErrorLog string
	Provider, ClusterName     string
	Members                   []string
	NodeAddress, NodeName     string
	SSTAuthFile               string
	// ProviderOptions: Galera's TLS (socket.ssl_*); TLSCA, TLSCert and
	// TLSKey encrypt and authenticate state transfers (mariabackup's socat).
	ProviderOptions, TLSCA, TLSCert, TLSKey string
}

// poolDBPhases are the database half of the pool: every member's option
// files, then the cluster, its health and the L&B database (poolPhases).
func poolDBPhases(inv *inventory.Inventory, opts Options) ([]installer.Phase, error) {
	cfg := inv.Roles.StateServer
	nodes := inv.HostsWithRole("rb-node")
	files := installer.Phase{Name: PhasePoolDBFiles, Steps: map[string][]installer.Step{}}
	lb := map[string][]installer.Step{}
	for _, m := range inventory.PoolMembers(inv) {
		if !opts.InLimit(m.Name) {
			continue
		}
		if m.Name == cfg.Pool.Arbiter {
			// The arbiter runs garbd: no MariaDB, no L&B rows.
			gs, err := garbdSteps(inv, m, opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.Name, err)
			}
			files.Steps[m.Name] = gs
			continue
		}
		mine, names := servedNodes(inv, m, nodes)
		var s []installer.Step
		if len(names) > 0 {
			// The L&B accounts' hosts: every address each name has, as the
			// member sees it.
			s = append(s, &resolveNames{Server: m.Name, Names: names})
		}
		pf, err := poolMemberFiles(inv, m, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		files.Steps[m.Name] = append(s, pf...)
		l, err := lbSteps(m, mine, names, cfg, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		admin, err := stateServerAdmin(cfg)
		if err != nil {
			return nil, err
		}
		pl, err := poolLeaseSteps(inv, admin, opts)
		if err != nil {
			return nil, err
		}
		l = append(l, pl...)
		for i := range l {
			l[i] = notRunningYet{Step: l[i], Admin: admin}
		}
		lb[m.Name] = l
	}
	more, err := poolPhases(inv, opts, lb)
	if err != nil {
		return nil, err
	}
	// Last, hagd: its service script and lease need the cluster up.
	ha, err := poolHAPhase(inv, opts)
	if err != nil {
		return nil, err
	}
	return append(append([]installer.Phase{files}, more...), ha), nil
}

// notRunningYet reports a database step of a member whose MariaDB does not
// answer as missing in verify and --check (install starts it as a Galera
// node in an earlier phase) rather than failed.
type notRunningYet struct {
	installer.Step
	Admin steps.MySQLAdmin
}

func (n notRunningYet) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	res := n.Step.CheckApply(ctx, env, apply)
	if apply || res.Status != installer.StatusFailed {
		return res
	}
	if _, _, err := wsrepStatus(ctx, n.Admin, env.Conn); err != nil {
		return installer.Missing("MariaDB does not answer on this member (install starts it as a Galera node): " + err.Error())
	}
	return res
}

// garbdSteps are the arbiter's steps of the per-member phase: garbd
// installed (package galera-arbitrator-4), its settings (the data members'
// addresses, the cluster's name, its own listening address), its log and
// work folders (it runs as nobody) and the garb service enabled at boot.
// The galera step starts it once a Primary component runs: garbd alone
// cannot form one and exits.
func garbdSteps(inv *inventory.Inventory, arb *inventory.Host, opts Options) ([]installer.Step, error) {
	cfg := inv.Roles.StateServer
	var nodes []string
	for _, m := range inventory.PoolMembers(inv) {
		if m.Name != arb.Name {
			nodes = append(nodes, m.Address+":4567")
		}
	}
	conf := "# gridha install state-server, state pool: the Galera arbitrator (garbd)\n" +
		"# votes in the cluster's quorum and holds no data. Read by the garb service.\n" +
		"GALERA_NODES=\"" + strings.Join(nodes, ",") + "\"\n" +
		"GALERA_GROUP=\"" + cfg.Pool.ClusterName + "\"\n" +
		"GALERA_OPTIONS=\"gmcast.listen_addr=tcp://" + arb.Address + ":4567;" + galeraSSLOptions(GarbdTLSDir) + "\"\n" +
		"LOG_FILE=\"" + GarbdLog + "\"\n" +
		"WORK_DIR=\"" + GarbdWorkDir + "\"\n"
	out := []installer.Step{
		&steps.Exec{
			Name:  "galera-arbitrator-4 installed",
			Probe: "command -v garbd >/dev/null 2>&1 && [ -x /etc/init.d/garb ]",
			Check: func(r installer.ProbeResult) (bool, string) {
				return r.ExitCode == 0, "garbd or /etc/init.d/garb missing: install the package galera-arbitrator-4"
			},
		},
		&steps.Dir{Path: GarbdLogDir, Mode: 0o750, Owner: "nobody", Group: "adm"},
		&steps.Dir{Path: GarbdWorkDir, Mode: 0o750, Owner: "nobody", Group: "nogroup"},
		steps.File{Path: GarbdConfig, Content: []byte(conf), Mode: 0o644, Owner: "root", Group: "root"},
	}
	tls, err := galeraTLSSteps(inv, arb, GarbdTLSDir, "nobody", "nogroup", opts)
	if err != nil {
		return nil, err
	}
	return append(append(out, tls...), &optionalService{svc: steps.Service{Name: "garb", Boot: steps.BootEnabled}, required: true}), nil
}

// garbdRunning is the arbiter's health in verify: garbd runs (the data
// members' wsrep_cluster_size says whether it is in their component).
type garbdRunning struct{}

func (garbdRunning) ID() string                { return "galera arbitrator (garbd) running" }
func (garbdRunning) Probes() []installer.Probe { return nil }
func (garbdRunning) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	res, err := env.Conn.Run(ctx, "pgrep -x garbd >/dev/null", nil)
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: garbd: %w", env.Host, err))
	}
	if res.ExitCode == 0 {
		return installer.OK("garbd runs")
	}
	msg := "garbd does not run: the pool has no arbiter vote (install starts it once a Primary component runs)"
	if apply {
		return installer.Failed(fmt.Errorf("%s: %s", env.Host, msg))
	}
	return installer.Drift(msg, "running", "not running")
}

// poolMemberFiles are a pool member's steps of the per-member phase: its
// error log folder and the option files making it a Galera node.
func poolMemberFiles(inv *inventory.Inventory, srv *inventory.Host, opts Options) ([]installer.Step, error) {
	cfg := inv.Roles.StateServer
	var addrs []string
	for _, m := range inventory.PoolMembers(inv) {
		// The arbiter's garbd listens on Galera's port too.
		addrs = append(addrs, m.Address)
	}
	tca, tcert, tkey := galeraTLSFiles(GaleraTLSDir)
	cnf, err := templates.Render("galera-gridha.cnf.tmpl", galeraCnf{
		TLSCA: tca, TLSCert: tcert, TLSKey: tkey,
		Port: cfg.MySQL.Port, Socket: cfg.MySQL.Socket, PIDFile: GaleraPIDFile, ErrorLog: GaleraErrorLog,
		Provider: GaleraProvider, ClusterName: cfg.Pool.ClusterName, Members: addrs,
		NodeAddress: srv.Address, NodeName: srv.Name, SSTAuthFile: GaleraSSTAuthFile(cfg),
		ProviderOptions: galeraSSLOptions(GaleraTLSDir),
	})
	if err != nil {
		return nil, err
	}
	tls, err := galeraTLSSteps(inv, srv, GaleraTLSDir, "mysql", "mysql", opts)
	if err != nil {
		return nil, err
	}
	out := append(tls,
		&steps.Dir{Path: GaleraLogDir, Mode: 0o750, Owner: "mysql", Group: "adm"},
		&steps.File{Path: cfg.MySQL.Config, Content: cnf, Mode: 0o644, Owner: "root", Group: "root"},
	)
	pw, err := LoadSSTPassword(inv, !opts.ReadOnly)
	switch {
	case err == nil:
		auth := "# gridha: Galera's state transfer account (mariabackup); mysql's only.\n[mysqld]\nwsrep_sst_auth = " + GaleraSSTUser + ":" + pw + "\n"
		out = append(out, &steps.File{Path: GaleraSSTAuthFile(cfg), Content: []byte(auth), Mode: 0o640, Owner: "root", Group: "mysql", Secret: true})
	case opts.ReadOnly && errors.Is(err, fs.ErrNotExist):
		out = append(out, steps.Pending{Name: "file " + GaleraSSTAuthFile(cfg), Why: "no Galera SST password generated yet (gridha install state-server generates " + sstPasswordPath(inv) + ")"})
	default:
		return nil, err
	}
	return out, nil
}

// poolPhases are the phases after the per-member one: the cluster (one
// coordinating step per member in its own phase, in inventory order: the
// first reachable one does the work, the others find it done), then the
// L&B database, its accounts and the health of every member. lb holds each
// member's L&B steps.
func poolPhases(inv *inventory.Inventory, opts Options, lb map[string][]installer.Step) ([]installer.Phase, error) {
	cfg := inv.Roles.StateServer
	admin, err := stateServerAdmin(cfg)
	if err != nil {
		return nil, err
	}
	members := inventory.PoolMembers(inv)
	var sst string
	if pw, err := LoadSSTPassword(inv, !opts.ReadOnly); err == nil {
		sst = pw
	} else if !opts.ReadOnly || !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var out []installer.Phase
	var inRun []string
	for _, m := range members {
		if !opts.InLimit(m.Name) {
			continue
		}
		inRun = append(inRun, m.Name)
		out = append(out, installer.Phase{
			Name: fmt.Sprintf("%s (%s)", PhasePoolGalera, m.Name),
			Steps: map[string][]installer.Step{m.Name: {&galeraCluster{
				Self: m.Name, Members: members, Arbiter: cfg.Pool.Arbiter, Admin: admin, SSTPassword: sst, Socket: cfg.MySQL.Socket,
			}}},
		})
	}
	health := installer.Phase{Name: PhasePoolHealth, Steps: map[string][]installer.Step{}}
	for _, name := range inRun {
		if name == cfg.Pool.Arbiter {
			health.Steps[name] = []installer.Step{garbdRunning{}}
			continue
		}
		health.Steps[name] = []installer.Step{
			&galeraStatus{Admin: admin, Var: "wsrep_cluster_status", Want: "Primary",
				Why: "a member outside the Primary component refuses writes (it lost quorum, or is cut off)"},
			&galeraStatus{Admin: admin, Var: "wsrep_local_state_comment", Want: "Synced",
				Why: "a member not Synced is still receiving a state transfer, or is cut off"},
			&galeraStatus{Admin: admin, Var: "wsrep_cluster_size", Want: strconv.Itoa(len(members)),
				Why: "a member of the inventory is not in this member's cluster view"},
		}
	}
	out = append(out, health)
	// The L&B database and accounts, one member at a time: the first
	// creates them, Galera replicates the statements, and each later member
	// finds them there (concurrent CREATE USER on two members would
	// conflict).
	for _, name := range inRun {
		if name == cfg.Pool.Arbiter {
			continue
		}
		out = append(out, installer.Phase{
			Name:  fmt.Sprintf("%s (%s)", PhasePoolDB, name),
			Steps: map[string][]installer.Step{name: lb[name]},
		})
	}
	return out, nil
}

// galeraCluster brings the pool's Galera cluster up: it reads every
// member's state through the run's connections, decides with planGalera
// (never two Primary components), bootstraps at most one member, makes
// sure the SST account exists, then starts the others one at a time, each
// joining the Primary component. Every member gets this step in a phase of
// its own; the first that runs does the work for the run.
type galeraCluster struct {
	Self    string
	Members []*inventory.Host
	// Arbiter is the member running garbd instead of mariadbd ("": none).
	Arbiter     string
	Admin       steps.MySQLAdmin
	SSTPassword string // secret; "" when not generated yet (verify)
	Socket      string
}

// galeraDone says the cluster was checked or converged in this run, from
// which member: a second galera step of the run (another role's plan)
// leaves it at that.
var galeraDone = installer.NewValue[string]("state-pool/galera/done")

func (g *galeraCluster) Produces() []installer.ValueRef {
	return []installer.ValueRef{galeraDone.Of("")}
}

// galeraDoneBy is what a member said, if any did.
func (g *galeraCluster) galeraDoneBy(env *installer.Env) (string, bool) {
	for _, m := range g.Members {
		if v, ok := galeraDone.Get(env, m.Name); ok {
			return v, true
		}
	}
	return galeraDone.Get(env, env.Host)
}

func (g *galeraCluster) ID() string                { return "galera cluster" }
func (g *galeraCluster) Probes() []installer.Probe { return nil }

// memberScript reads a member's process, datadir and saved state. Read-only.
const memberScript = `d=` + GaleraDataDir + `
if pgrep -x 'mariadbd|mysqld' >/dev/null 2>&1; then echo '@running yes'; else echo '@running no'; fi
if pgrep -x garbd >/dev/null 2>&1; then echo '@garbd yes'; fi
if [ -d "$d/mysql" ]; then echo '@initialized yes'; fi
echo '@dbs'
find "$d" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null
echo '@grastate'
cat "$d/grastate.dat" 2>/dev/null
exit 0
`

func (g *galeraCluster) conn(ctx context.Context, env *installer.Env, host string) (installer.Conn, error) {
	if host == env.Host {
		return env.Conn, nil
	}
	if env.Peer == nil {
		return nil, fmt.Errorf("not part of this run")
	}
	return env.Peer(ctx, host)
}

// inspect reads one member. recover runs mariadbd --wsrep-recover on a
// stopped member whose grastate.dat lost its seqno (apply mode only: it
// replays InnoDB's redo log).
func (g *galeraCluster) inspect(ctx context.Context, env *installer.Env, h *inventory.Host, recover bool) galeraMember {
	m := galeraMember{Name: h.Name, Arbiter: h.Name == g.Arbiter, LastCommitted: -1}
	c, err := g.conn(ctx, env, h.Name)
	if err != nil {
		m.Why = err.Error()
		return m
	}
	res, err := c.Run(ctx, memberScript, nil)
	if err == nil {
		err = res.Err("read MariaDB state")
	}
	if err != nil {
		m.Why = err.Error()
		return m
	}
	m.Seen = true
	sec := ""
	var dbs []string
	var gra strings.Builder
	garbd := false
	for _, l := range strings.Split(string(res.Stdout), "\n") {
		switch {
		case l == "@running yes":
			m.Running = true
		case l == "@initialized yes":
			m.Initialized = true
		case l == "@garbd yes":
			garbd = true
		case strings.HasPrefix(l, "@running"):
		case l == "@dbs" || l == "@grastate":
			sec = l
		case sec == "@dbs":
			dbs = append(dbs, l)
		case sec == "@grastate":
			gra.WriteString(l + "\n")
		}
	}
	m.UserDBs = userDBs(dbs)
	if m.Arbiter {
		// garbd keeps no datadir state: what counts is whether it runs
		// (and whether a datadir there holds databases nobody would move).
		m.MariaDBRunning, m.Running = m.Running, garbd
		return m
	}
	parseGrastate(&m, gra.String())
	if m.Running {
		g.readStatus(ctx, c, &m)
		return m
	}
	if recover && m.galeraHistory() && m.Seqno < 0 {
		if u, n, ok := g.recoverPosition(ctx, c); ok && u == m.UUID {
			m.Recovered, m.RecoveredOK = n, true
		}
	}
	return m
}

// readStatus fills the live wsrep state of a running member. One that
// does not answer counts as running Galera in an unknown state: never a
// candidate for a bootstrap.
func (g *galeraCluster) readStatus(ctx context.Context, c installer.Conn, m *galeraMember) {
	m.WsrepOn, m.Status = true, "not answering"
	st, on, err := wsrepStatus(ctx, g.Admin, c)
	if err != nil {
		m.Status = "not answering: " + err.Error()
		return
	}
	m.Answers, m.WsrepOn = true, on
	m.Status, m.State, m.ClusterUUID = st["wsrep_cluster_status"], st["wsrep_local_state_comment"], st["wsrep_cluster_state_uuid"]
	m.Size, _ = strconv.Atoi(st["wsrep_cluster_size"])
	m.LocalUUID = st["wsrep_local_state_uuid"]
	if n, err := strconv.ParseInt(st["wsrep_last_committed"], 10, 64); err == nil {
		m.LastCommitted = n
	}
}

// wsrepStatus reads @@wsrep_on and the wsrep status variables of the server
// behind c.
func wsrepStatus(ctx context.Context, admin steps.MySQLAdmin, c installer.Conn) (map[string]string, bool, error) {
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	db, err := admin.Open(qctx, c)
	if err != nil {
		return nil, false, err
	}
	defer db.Close()
	var on int
	if err := db.QueryRowContext(qctx, "SELECT @@wsrep_on").Scan(&on); err != nil {
		return nil, false, fmt.Errorf("read @@wsrep_on: %w", err)
	}
	rows, err := db.QueryContext(qctx, "SHOW GLOBAL STATUS LIKE 'wsrep%'")
	if err != nil {
		return nil, false, fmt.Errorf("read wsrep status: %w", err)
	}
	defer rows.Close()
	st := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, false, err
		}
		st[strings.ToLower(k)] = v
	}
	return st, on == 1, rows.Err()
}

// recoverPosition runs mariadbd --wsrep-recover on a stopped member.
func (g *galeraCluster) recoverPosition(ctx context.Context, c installer.Conn) (string, int64, bool) {
	script := `l=` + GaleraLogDir + `/gridha-wsrep-recover.log
rm -f "$l"
install -d -o mysql -g mysql /run/mysqld
mariadbd --user=mysql --wsrep-recover --log-error="$l" >/dev/null 2>&1
cat "$l" 2>/dev/null
rm -f "$l"
exit 0
`
	res, err := c.Run(ctx, script, nil)
	if err != nil {
		return "", 0, false
	}
	return parseRecovered(string(res.Stdout))
}

func (g *galeraCluster) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if v, ok := g.galeraDoneBy(env); ok {
		return installer.OK(v)
	}
	env.Secrets.Add(g.SSTPassword, steps.MySQLNativeHash(g.SSTPassword))
	members := make([]galeraMember, len(g.Members))
	for i, h := range g.Members {
		members[i] = g.inspect(ctx, env, h, false)
	}
	if apply {
		// Positions lost in a crash are recovered only when no Primary
		// component runs (a bootstrap must know them); a joiner's own is
		// recovered just before it starts.
		primary := false
		for _, m := range members {
			primary = primary || m.primary()
		}
		if !primary {
			for i, h := range g.Members {
				if m := members[i]; m.Seen && !m.Running && m.galeraHistory() && m.Seqno < 0 {
					members[i] = g.inspect(ctx, env, h, true)
				}
			}
		}
	}
	d, err := planGalera(members)
	if err != nil {
		if !apply && needsRecovery(members) {
			then := "bootstraps the most advanced one"
			for _, m := range members {
				if m.Running && m.WsrepOn && !m.Arbiter {
					// Quorum lost with members running: planQuorumRepair.
					then = "makes the most advanced running member Primary (pc.bootstrap) unless a crashed one is ahead of it"
				}
			}
			return installer.Drift("no member runs a Primary component and some crashed (grastate.dat seqno -1): install recovers their positions (mariadbd --wsrep-recover) and "+then,
				"a Primary component with every member", describeMembers(members))
		}
		if !apply {
			// verify goes on to each member's own health checks.
			return installer.Drift("install would refuse: "+err.Error(), "a Primary component with every member", describeMembers(members))
		}
		return installer.Failed(fmt.Errorf("%s: galera cluster: %w", env.Host, err))
	}
	sstOK, sstWhy := true, ""
	if len(d.Actions) == 0 {
		sstOK, sstWhy, err = g.sstAccountOK(ctx, env, members)
		if err != nil {
			return installer.Failed(fmt.Errorf("%s: galera SST account: %w", env.Host, err))
		}
	}
	if len(d.Actions) == 0 && sstOK {
		msg := "cluster Primary: " + describeMembers(members)
		if len(d.Waiting) > 0 {
			msg += "; waiting: " + strings.Join(d.Waiting, "; ")
		}
		galeraDone.Set(env, "checked from "+env.Host+" in this run: "+msg)
		return installer.OK(msg)
	}
	var todo []string
	for _, a := range d.Actions {
		todo = append(todo, describeAction(a))
	}
	if !sstOK {
		todo = append(todo, sstWhy)
	}
	if !apply {
		if len(d.Actions) > 0 && d.Actions[0].Kind == actBootstrap && !anyRunning(members) {
			return installer.Missing("no Galera cluster runs: would " + strings.Join(todo, "; then "))
		}
		return installer.Drift("would "+strings.Join(todo, "; then "), "a Primary component with every member", describeMembers(members))
	}
	var done []string
	sstReady := false
	for _, a := range d.Actions {
		c, err := g.conn(ctx, env, a.Host)
		if err != nil {
			return g.failed(env, done, fmt.Errorf("%s: %w", a.Host, err))
		}
		if (a.Kind == actJoin || a.Kind == actArbiter) && !sstReady {
			// The donor needs the SST account before anyone joins.
			if err := g.ensureSSTAccount(ctx, env, members, d.Actions); err != nil {
				return g.failed(env, done, err)
			}
			sstReady = true
		}
		if a, err = g.start(ctx, env, c, a, members); err != nil {
			return g.failed(env, done, fmt.Errorf("%s: %s: %w", a.Host, a.Kind, err))
		}
		done = append(done, describeAction(a))
	}
	if len(d.Actions) > 0 && d.Actions[0].Kind == actPCBootstrap {
		// The other running members rejoin the new Primary component by
		// themselves (IST): wait for them, so the run reports the repair
		// whole or fails naming who did not come back.
		for _, m := range members {
			if m.Arbiter || !m.Running || m.Name == d.Actions[0].Host {
				continue
			}
			c, err := g.conn(ctx, env, m.Name)
			if err == nil {
				err = g.waitSynced(ctx, c, 3*time.Minute)
			}
			if err != nil {
				return g.failed(env, done, fmt.Errorf("%s: rejoin after pc.bootstrap of %s: %w", m.Name, d.Actions[0].Host, err))
			}
			done = append(done, m.Name+" rejoined the Primary component")
		}
	}
	if !sstReady {
		if err := g.ensureSSTAccount(ctx, env, members, d.Actions); err != nil {
			return g.failed(env, done, err)
		}
		if !sstOK {
			done = append(done, sstWhy+": fixed")
		}
	}
	msg := strings.Join(done, "; ")
	galeraDone.Set(env, "done from "+env.Host+" in this run: "+msg)
	return installer.Changed(msg)
}

func (g *galeraCluster) failed(env *installer.Env, done []string, err error) installer.Result {
	if len(done) > 0 {
		err = fmt.Errorf("%w (done before: %s)", err, strings.Join(done, "; "))
	}
	return installer.Failed(fmt.Errorf("%s: galera cluster: %w", env.Host, err))
}

func needsRecovery(ms []galeraMember) bool {
	for _, m := range ms {
		if m.Seen && !m.Running && m.galeraHistory() && m.Seqno < 0 && !m.RecoveredOK {
			return true
		}
	}
	return false
}

func anyRunning(ms []galeraMember) bool {
	for _, m := range ms {
		if m.Running {
			return true
		}
	}
	return false
}

func describeAction(a galeraAction) string {
	s := string(a.Kind) + " " + a.Host
	if a.Stop {
		s = "stop the standalone server on " + a.Host + " and " + s
	}
	if a.StartPosition != "" {
		s += " from its recovered position " + a.StartPosition + " (IST)"
	}
	if a.MarkSafe {
		s += " (marked safe_to_bootstrap)"
	}
	return s + " (" + a.Why + ")"
}

func describeMembers(ms []galeraMember) string {
	var out []string
	for _, m := range ms {
		var s string
		switch {
		case !m.Seen:
			s = "not reachable"
		case m.Arbiter && m.Running:
			s = "arbiter, garbd runs"
		case m.Arbiter:
			s = "arbiter, garbd stopped"
		case m.Running && !m.WsrepOn:
			s = "standalone server (no Galera)"
		case m.Running:
			s = orNone(m.Status) + "/" + orNone(m.State)
			if m.Size > 0 {
				s += fmt.Sprintf(" size %d", m.Size)
			}
		default:
			s = "stopped"
			if m.galeraHistory() {
				if p, ok := m.position(); ok {
					s += fmt.Sprintf(" at seqno %d", p)
				} else {
					s += " after a crash"
				}
			}
		}
		out = append(out, m.Name+" "+s)
	}
	return strings.Join(out, ", ")
}

// start carries out one action on its member and waits until it is Synced
// in a Primary component. It returns the action as carried out (with the
// position recovered for a joiner).
func (g *galeraCluster) start(ctx context.Context, env *installer.Env, c installer.Conn, a galeraAction, members []galeraMember) (galeraAction, error) {
	switch a.Kind {
	case actPCBootstrap:
		env.Log("%s: %s", a.Host, describeAction(a))
		if err := g.pcBootstrap(ctx, c); err != nil {
			return a, err
		}
		return a, g.waitSynced(ctx, c, 3*time.Minute)
	case actArbiter:
		env.Log("%s: %s", a.Host, describeAction(a))
		return a, startGarbd(ctx, c)
	}
	if a.Stop {
		if err := g.shutdown(ctx, c); err != nil {
			return a, err
		}
	}
	if a.StartPosition == "" && a.Kind == actJoin {
		// A joiner that crashed: recover its position now that it is
		// stopped, for an incremental transfer.
		for _, m := range members {
			if m.Name == a.Host && m.galeraHistory() && (m.Seqno < 0 || a.Stop) {
				if u, n, ok := g.recoverPosition(ctx, c); ok && u == m.UUID {
					a.StartPosition = u + ":" + strconv.FormatInt(n, 10)
				}
			}
		}
	}
	if a.Kind == actBootstrap {
		for _, m := range members {
			if m.Name == a.Host && !m.Initialized && !m.Running {
				// An empty datadir (MariaDB installed but never
				// initialised): the seed needs its system tables; root
				// logs in over the socket, as Debian sets it up.
				res, err := c.Run(ctx, "mariadb-install-db --user=mysql --datadir="+GaleraDataDir+" --auth-root-authentication-method=socket --skip-test-db >"+GaleraLogDir+"/gridha-install-db.log 2>&1 || { tail -n 20 "+GaleraLogDir+"/gridha-install-db.log >&2; exit 1; }", nil)
				if err == nil {
					err = res.Err("mariadb-install-db")
				}
				if err != nil {
					return a, err
				}
			}
		}
	}
	if a.MarkSafe {
		res, err := c.Run(ctx, `sed -i 's/^safe_to_bootstrap:.*/safe_to_bootstrap: 1/' `+GaleraDataDir+`/grastate.dat`, nil)
		if err == nil {
			err = res.Err("mark safe_to_bootstrap")
		}
		if err != nil {
			return a, err
		}
	}
	env.Log("%s: %s", a.Host, describeAction(a))
	res, err := c.Run(ctx, galeraStartScript(a), nil)
	if err == nil {
		err = res.Err("start mariadbd")
	}
	if err != nil {
		return a, err
	}
	// A full state transfer (SST) of a joiner takes a minute or more on a
	// loaded machine; bounded: 10 min.
	wait := 10 * time.Minute
	if a.Kind == actBootstrap {
		wait = 3 * time.Minute
	}
	return a, g.waitSynced(ctx, c, wait)
}

// pcBootstrap makes the non-Primary component of the member behind c
// Primary: Galera's documented repair of a cluster that lost quorum with
// its members running (planQuorumRepair chose this member).
func (g *galeraCluster) pcBootstrap(ctx context.Context, c installer.Conn) error {
	return g.adminExec(ctx, c, 30*time.Second, "pc.bootstrap", "SET GLOBAL wsrep_provider_options='pc.bootstrap=YES'")
}

// adminExec runs statements in order as the admin on the member behind c,
// all within timeout; an error names what they do.
func (g *galeraCluster) adminExec(ctx context.Context, c installer.Conn, timeout time.Duration, what string, stmts ...string) error {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	db, err := g.Admin.Open(qctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(qctx, q); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// startGarbd starts the arbiter's garbd (Debian's garb service: its
// systemd unit, or its init script where there is no systemd) and checks
// that it stays up: garbd exits when it reaches no Primary component.
func startGarbd(ctx context.Context, c installer.Conn) error {
	res, err := c.Run(ctx, `if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl start garb || exit 1
else
	/etc/init.d/garb start </dev/null >/dev/null 2>&1
fi
i=0
while [ $i -lt 10 ]; do sleep 0.5; i=$((i+1)); pgrep -x garbd >/dev/null || { echo 'garbd exited:' >&2; tail -n 15 `+GarbdLog+` >&2 2>/dev/null; exit 1; }; done
`, nil)
	if err == nil {
		err = res.Err("start garbd")
	}
	return err
}

// waitSynced waits (bounded by wait) until the member behind c is Synced
// in a Primary component.
func (g *galeraCluster) waitSynced(ctx context.Context, c installer.Conn, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var last string
	for {
		st, on, err := wsrepStatus(ctx, g.Admin, c)
		switch {
		case err != nil:
			last = err.Error()
		case !on:
			return fmt.Errorf("mariadbd runs without Galera (wsrep_on OFF): check %s", GaleraErrorLog)
		case st["wsrep_cluster_status"] == "Primary" && st["wsrep_local_state_comment"] == "Synced":
			return nil
		default:
			last = st["wsrep_cluster_status"] + "/" + st["wsrep_local_state_comment"]
		}
		if r, _ := c.Run(ctx, "pgrep -x 'mariadbd|mysqld' >/dev/null", nil); r.ExitCode != 0 {
			tail, _ := c.Run(ctx, "tail -n 15 "+GaleraErrorLog+" "+galeraStartLog+" 2>/dev/null", nil)
			return fmt.Errorf("mariadbd exited:\n%s", strings.TrimSpace(string(tail.Stdout)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not Synced in a Primary component after %s (last: %s); see %s", wait, last, GaleraErrorLog)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// galeraStartScript starts mariadbd for a. With systemd, through the
// mariadb unit (galera_new_cluster for a bootstrap; the unit recovers a
// joiner's position itself); without it (containers, the test bed) gridha
// starts mariadbd itself, detached: galera_new_cluster would call
// systemctl.
func galeraStartScript(a galeraAction) string {
	args := ""
	if a.Kind == actBootstrap {
		args = " --wsrep-new-cluster"
	} else if a.StartPosition != "" {
		args = " --wsrep_start_position=" + installer.ShellQuote(a.StartPosition)
	}
	unit := "systemctl start mariadb"
	if a.Kind == actBootstrap {
		unit = "galera_new_cluster"
	}
	return `if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	` + unit + `
	exit $?
fi
install -d -o mysql -g mysql -m 0755 /run/mysqld
install -d -o mysql -g adm -m 0750 ` + GaleraLogDir + `
setsid -f mariadbd --user=mysql` + args + ` </dev/null >>` + galeraStartLog + ` 2>&1
# setsid returns before its child has become mariadbd: wait (bounded: 20 s)
# until it has, or a loaded host's check right after this script would take
# the child, still named setsid, for a mariadbd that exited.
i=0
until pgrep -x 'mariadbd|mysqld' >/dev/null; do
	i=$((i+1))
	[ $i -gt 100 ] && { echo 'mariadbd did not start' >&2; tail -n 15 ` + galeraStartLog + ` >&2; exit 1; }
	sleep 0.2
done
`
}

// shutdown stops a running mariadbd (a clean shutdown: Galera saves its
// position) and waits until it is gone.
func (g *galeraCluster) shutdown(ctx context.Context, c installer.Conn) error {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	db, err := g.Admin.Open(qctx, c)
	if err == nil {
		_, err = db.ExecContext(qctx, "SHUTDOWN")
		db.Close()
	}
	cancel()
	if err != nil && !isConnGone(err) {
		return fmt.Errorf("shut down mariadbd: %w", err)
	}
	// Bounded: 120 x 0.5 s.
	res, err := c.Run(ctx, `i=0; while pgrep -x 'mariadbd|mysqld' >/dev/null; do i=$((i+1)); [ $i -gt 240 ] && { echo 'mariadbd still runs 2 min after SHUTDOWN' >&2; exit 1; }; sleep 0.5; done`, nil)
	if err == nil {
		err = res.Err("wait for mariadbd to stop")
	}
	return err
}

// isConnGone says whether err is the server closing the connection (what
// SHUTDOWN does to the session that asked for it).
func isConnGone(err error) bool {
	s := err.Error()
	return errors.Is(err, sql.ErrConnDone) || strings.Contains(s, "invalid connection") || strings.Contains(s, "EOF") || strings.Contains(s, "bad connection")
}

// sstGrant is the grant mariabackup needs on a donor.
func sstGrant() string {
	return "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO `" + GaleraSSTUser + "`@`localhost`"
}

// primaryConn returns the connection of a Synced member in the Primary
// component (account changes there replicate to every member).
func (g *galeraCluster) primaryConn(ctx context.Context, env *installer.Env, members []galeraMember, actions []galeraAction) (installer.Conn, error) {
	for _, a := range actions {
		if a.Kind == actBootstrap || a.Kind == actPCBootstrap {
			return g.conn(ctx, env, a.Host)
		}
	}
	for _, m := range members {
		if m.primary() && m.State == "Synced" {
			return g.conn(ctx, env, m.Name)
		}
	}
	for _, m := range members {
		if m.primary() {
			return g.conn(ctx, env, m.Name)
		}
	}
	return nil, fmt.Errorf("no member in a Primary component to create the SST account on")
}

// sstAccountOK checks the SST account on a Primary member.
func (g *galeraCluster) sstAccountOK(ctx context.Context, env *installer.Env, members []galeraMember) (bool, string, error) {
	if g.SSTPassword == "" {
		return false, "create the SST account " + GaleraSSTUser + "@localhost (its password is generated by install)", nil
	}
	c, err := g.primaryConn(ctx, env, members, nil)
	if err != nil {
		return false, "", err
	}
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := g.Admin.Open(qctx, c)
	if err != nil {
		return false, "", err
	}
	defer db.Close()
	var auth sql.NullString
	err = db.QueryRowContext(qctx, "SELECT authentication_string FROM mysql.user WHERE User = ? AND Host = 'localhost'", GaleraSSTUser).Scan(&auth)
	if errors.Is(err, sql.ErrNoRows) {
		return false, "create the SST account " + GaleraSSTUser + "@localhost", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("look up %s: %w", GaleraSSTUser, err)
	}
	var why []string
	if auth.String != steps.MySQLNativeHash(g.SSTPassword) {
		why = append(why, "password differs from the SST password")
	}
	grants, err := steps.MySQLGrants(qctx, db, "'"+GaleraSSTUser+"'@'localhost'")
	if err != nil {
		return false, "", err
	}
	if len(grants) != 1 || grants[0] != sstGrant() {
		why = append(why, "grants are not exactly "+sstGrant()+" (found: "+strings.Join(grants, "; ")+")")
	}
	if len(why) > 0 {
		return false, "fix the SST account " + GaleraSSTUser + "@localhost: " + strings.Join(why, "; "), nil
	}
	return true, "", nil
}

// ensureSSTAccount creates or fixes the SST account on a Primary member
// (the statements replicate). The password goes as its hash, never in
// clear.
func (g *galeraCluster) ensureSSTAccount(ctx context.Context, env *installer.Env, members []galeraMember, actions []galeraAction) error {
	if g.SSTPassword == "" {
		return fmt.Errorf("no SST password (install generates it)")
	}
	c, err := g.primaryConn(ctx, env, members, actions)
	if err != nil {
		return err
	}
	hash := steps.MySQLNativeHash(g.SSTPassword)
	account := "'" + GaleraSSTUser + "'@'localhost'"
	return g.adminExec(ctx, c, 60*time.Second, "SST account "+account,
		"CREATE USER IF NOT EXISTS "+account+" IDENTIFIED BY PASSWORD '"+hash+"'",
		"ALTER USER "+account+" IDENTIFIED BY PASSWORD '"+hash+"'",
		"REVOKE ALL PRIVILEGES, GRANT OPTION FROM "+account,
		"GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO "+account)
}

// galeraStatus reports one wsrep status variable of a member against what
// a healthy pool shows (verify's pool health, in every output format). In
// an install it waits a little for a member that is still joining.
type galeraStatus struct {
	Admin     steps.MySQLAdmin
	Var, Want string
	Why       string
}

func (s *galeraStatus) ID() string                { return "galera " + s.Var }
func (s *galeraStatus) Probes() []installer.Probe { return nil }

func (s *galeraStatus) read(ctx context.Context, env *installer.Env) (string, error) {
	st, on, err := wsrepStatus(ctx, s.Admin, env.Conn)
	if err != nil {
		return "", err
	}
	if !on {
		return "wsrep_on OFF (standalone server)", nil
	}
	return st[s.Var], nil
}

func (s *galeraStatus) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	found, err := s.read(ctx, env)
	// An install waits for a joiner to finish (bounded: 60 x 1 s).
	for i := 0; apply && found != s.Want && i < 60; i++ {
		select {
		case <-ctx.Done():
			return installer.Failed(ctx.Err())
		case <-time.After(time.Second):
		}
		found, err = s.read(ctx, env)
	}
	if err != nil {
		found = "not answering: " + err.Error()
	}
	if found == s.Want {
		return installer.OK(s.Var + " " + found)
	}
	msg := fmt.Sprintf("%s is %s, want %s: %s", s.Var, orNone(found), s.Want, s.Why)
	if apply {
		return installer.Failed(fmt.Errorf("%s: %s", env.Host, msg))
	}
	return installer.Drift(msg, s.Want, found)
}
