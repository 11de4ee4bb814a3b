package roles

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gridha/gridha/hagd"
	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// hagd on the state pool (slide 5 draws an HA group daemon on the file/DB
// servers too): one group, pool.ha_group, on every member, ranked in
// inventory order, whose master holds pool.service_ip — the address the rb
// nodes' L&B daemons and hagd leases use. It is the rb nodes' hagd
// (hagdHostSteps): same binary, key, settings, init script and service-IP
// fencing; what differs is the service script and the lease.

const (
	// PhasePoolHAGD runs hagd on every pool member.
	PhasePoolHAGD = "state pool: hagd"
	// PoolHAScript is the pool group's service script on a member.
	PoolHAScript = "/usr/local/sbin/gridha-pool-ha"
	// PoolLeaseUser is the member-local account of the pool group's lease
	// (user@localhost on every member: the lease never leaves the member).
	PoolLeaseUser = "gridha_hagd"
	// PoolLeaseDB holds the pool group's hagd_lease table.
	PoolLeaseDB = "gridha_hagd"
	// PoolHAClientConf is the service script's MariaDB client option file
	// (the lease account: it needs no unix_socket admin, so the script
	// works whether or not mysql.admin_password_file is set).
	PoolHAClientConf = "/opt/lcg/etc/gridha-pool-ha.cnf"
)

// poolLeasePasswordPath is where the pool lease account's generated
// password is kept on the admin machine.
func poolLeasePasswordPath(inv *inventory.Inventory) string {
	return filepath.Join(inv.SecretsDir, "galera", "hagd-password")
}

// LoadPoolLeasePassword returns the pool lease account's password,
// generated once into the secrets folder (0600 from its first byte). With
// create false a missing one is fs.ErrNotExist.
func LoadPoolLeasePassword(inv *inventory.Inventory, create bool) (string, error) {
	return generatedSecret(inv, poolLeasePasswordPath(inv), "pool hagd lease password", 24, create)
}

// poolRank is member i's rank (of n) in the pool group: the first member
// in file order ranks highest.
func poolRank(i, n int) int { return (n - i) * 10 }

// poolHAScript is the pool group's service script: start and status
// succeed only while the member's own MariaDB is in the Primary component
// and Synced, so only such a member holds the service IP (hagd adds and
// removes the address itself). stop does nothing: the database keeps
// running for Galera and for the other members' service. It logs in as the
// lease account through PoolHAClientConf (any account may read
// GLOBAL_STATUS), so the password never reaches argv or the environment.
func poolHAScript() []byte {
	q := "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('WSREP_CLUSTER_STATUS', 'WSREP_LOCAL_STATE_COMMENT') ORDER BY VARIABLE_NAME"
	return []byte(`#!/bin/sh
# gridha: hagd's service script for the state pool's database service IP.
# SCRIPT start|stop|status GROUP. hagd adds and removes the service IP; this
# only says whether this member may hold it: its MariaDB is in the Primary
# component and Synced. stop leaves the database running.
op=$1
case "$op" in
start|status)
	m=$(command -v mariadb || command -v mysql) || { echo "no mariadb client" >&2; exit 1; }
	out=$("$m" --defaults-extra-file=` + installer.ShellQuote(PoolHAClientConf) + ` -N -B -e "` + q + `" 2>&1) || { echo "MariaDB does not answer: $out" >&2; exit 1; }
	# ordered by name: wsrep_cluster_status, then wsrep_local_state_comment
	set -- $out
	if [ "$1" != Primary ] || [ "$2" != Synced ]; then
		echo "not Primary and Synced:" "$@" >&2
		exit 1
	fi
	# On start (hagd has just added the address): announce it. Without a
	# gratuitous ARP the rb nodes keep sending to the previous holder's
	# MAC until their neighbour entry expires (15-45 s reachable, then
	# about 8 s of probes): the rb group's lease and L&B connections
	# stalled that long after a member crashed. In the background:
	# arping waits, start must not.
	if [ "$op" = start ] && [ -n "$HAGD_SERVICE_IP" ] && command -v arping >/dev/null 2>&1; then
		cidr=${HAGD_SERVICE_IP%@*} dev=${HAGD_SERVICE_IP#*@}
		arping -U -c 2 -I "$dev" "${cidr%/*}" >/dev/null 2>&1 9>&- </dev/null &
	fi
	exit 0
	;;
stop)
	exit 0
	;;
*)
	echo "usage: $0 start|stop|status GROUP" >&2
	exit 2
	;;
esac
`)
}

// poolHAClientConf is the service script's option file: the lease account
// over the member's unix socket. Values are double-quoted with \\ and \"
// escaped (MariaDB option-file syntax), so any password reads back as is.
func poolHAClientConf(socket, password string) []byte {
	q := func(v string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
	}
	return []byte("# gridha: the state pool's service script logs in with this (0600 root).\n[client]\nuser=" + PoolLeaseUser +
		"\npassword=" + q(password) + "\nsocket=" + q(socket) + "\nprotocol=socket\n")
}

// poolLeaseSteps are the pool lease's database and account, run on one
// member at a time in the L&B phases (Galera replicates them).
func poolLeaseSteps(inv *inventory.Inventory, admin steps.MySQLAdmin, opts Options) ([]installer.Step, error) {
	pw, err := LoadPoolLeasePassword(inv, !opts.ReadOnly)
	switch {
	case err == nil:
	case opts.ReadOnly && errors.Is(err, fs.ErrNotExist):
		return []installer.Step{
			&steps.MySQLDatabase{Admin: admin, Name: PoolLeaseDB},
			steps.Pending{Name: "mysql user " + PoolLeaseUser + "@localhost", Why: "no pool hagd lease password generated yet (gridha install state-server generates " + poolLeasePasswordPath(inv) + ")"},
		}, nil
	default:
		return nil, err
	}
	return []installer.Step{
		&steps.MySQLDatabase{Admin: admin, Name: PoolLeaseDB},
		&steps.MySQLUser{Admin: admin, User: PoolLeaseUser, Host: "localhost", Password: pw, Database: PoolLeaseDB},
	}, nil
}

// poolHAPhase runs hagd with the pool group on every member (in limit).
func poolHAPhase(inv *inventory.Inventory, opts Options) (installer.Phase, error) {
	cfg := inv.Roles.StateServer
	rb := inv.Roles.RBNode
	ph := installer.Phase{Name: PhasePoolHAGD, Steps: map[string][]installer.Step{}}
	members := inventory.PoolMembers(inv)
	for i, m := range members {
		if m.HasRole("rb-node") {
			// One hagd.conf per host: it would be written twice, differently.
			return ph, fmt.Errorf("%s: host has roles state-server (a pool member) and rb-node: gridha runs one hagd per host; give the rb-node role to another host", m.Name)
		}
		if !opts.InLimit(m.Name) || m.Name == cfg.Pool.Arbiter {
			// The arbiter has no MariaDB: it can never serve the
			// database service IP, nor hold its lease.
			continue
		}
		g := cfg.Pool.HAGroup
		pwPath := HAGDMySQLPasswordPath(rb)
		lease := func(ct *hagd.ConfigTemplate) ([]installer.Step, error) {
			// The lease lives in the member's own Galera node: a member cut
			// off from the majority is non-Primary and refuses the
			// statement, so it cannot hold (or renew) the lease.
			ct.Lease = "mysql"
			ct.MySQLHost = mysqlHostPort("127.0.0.1", cfg.MySQL.Port)
			ct.MySQLUser, ct.MySQLDB, ct.MySQLPasswordFile = PoolLeaseUser, PoolLeaseDB, pwPath
			pw, err := LoadPoolLeasePassword(inv, !opts.ReadOnly)
			switch {
			case err == nil:
				return []installer.Step{
					installer.Notify(steps.File{Path: pwPath, Content: []byte(pw + "\n"), Mode: 0o600, Owner: "root", Group: "root", Secret: true}, notifyHAGD),
					steps.File{Path: PoolHAClientConf, Content: poolHAClientConf(cfg.MySQL.Socket, pw), Mode: 0o600, Owner: "root", Group: "root", Secret: true},
				}, nil
			case opts.ReadOnly && errors.Is(err, fs.ErrNotExist):
				why := "no pool hagd lease password generated yet (gridha install state-server generates " + poolLeasePasswordPath(inv) + ")"
				return []installer.Step{
					installer.Notify(steps.Pending{Name: "file " + pwPath, Why: why}, notifyHAGD),
					steps.Pending{Name: "file " + PoolHAClientConf, Why: why},
				}, nil
			}
			return nil, err
		}
		s, err := hagdHostSteps(inv, hagdHost{
			Node:       m,
			Groups:     []hagd.Group{{Name: g, Rank: poolRank(i, len(members))}},
			ServiceIPs: map[string]string{g: cfg.Pool.ServiceIP + "@" + cfg.Pool.Iface},
			Script:     PoolHAScript,
			Dirs:       slices.Compact([]string{path.Dir(rb.HAGD.Config), path.Dir(PoolHAScript)}),
			ScriptSteps: []installer.Step{
				steps.File{Path: PoolHAScript, Content: poolHAScript(), Mode: 0o755, Owner: "root", Group: "root"},
			},
			Lease: lease, What: "roles.state-server.pool (hagd)",
		}, opts)
		if err != nil {
			return ph, fmt.Errorf("%s: %w", m.Name, err)
		}
		ph.Steps[m.Name] = s
	}
	return ph, nil
}
