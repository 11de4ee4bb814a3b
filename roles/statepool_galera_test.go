package roles

import (
	"strings"
	"testing"

	"github.com/gridha/gridha/installer/steps"
)

const (
	uuidA = "6f2c1e2a-0d1b-11ef-9a31-1a2b3c4d5e6f"
	uuidB = "0b7d33c4-0d1c-11ef-8c55-7a6b5c4d3e2f"
)

func stopped(name, uuid string, seqno int64, safe bool) galeraMember {
	return galeraMember{Name: name, Seen: true, HasGrastate: uuid != "", UUID: uuid, Seqno: seqno, SafeToBootstrap: safe}
}

func primary(name string) galeraMember {
	return galeraMember{Name: name, Seen: true, Running: true, Answers: true, WsrepOn: true, Status: "Primary", State: "Synced", ClusterUUID: uuidA,
		HasGrastate: true, UUID: uuidA, Seqno: -1, UserDBs: []string{"lbserver20"}}
}

func actions(d galeraDecision) string {
	var out []string
	for _, a := range d.Actions {
		s := string(a.Kind) + " " + a.Host
		if a.Stop {
			s += " stop"
		}
		if a.StartPosition != "" {
			s += " at " + a.StartPosition
		}
		if a.MarkSafe {
			s += " marksafe"
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func TestPlanGalera(t *testing.T) {
	recovered := func(m galeraMember, n int64) galeraMember { m.Recovered, m.RecoveredOK = n, true; return m }
	standalone := func(name string, dbs ...string) galeraMember {
		return galeraMember{Name: name, Seen: true, Running: true, Answers: true, UserDBs: dbs}
	}
	unseen := galeraMember{Name: "fs3", Why: "dial: no route to host"}
	// nonPrim is a member running Galera, cut off from quorum, at seqno n.
	nonPrim := func(name string, n int64) galeraMember {
		return galeraMember{Name: name, Seen: true, Running: true, Answers: true, WsrepOn: true, Status: "non-Primary", State: "Initialized",
			ClusterUUID: uuidA, LocalUUID: uuidA, LastCommitted: n, Size: 3, HasGrastate: true, UUID: uuidA, Seqno: -1, UserDBs: []string{"lbserver20"}}
	}
	arbiter := func(running bool) galeraMember {
		return galeraMember{Name: "fs3", Seen: true, Arbiter: true, Running: running}
	}
	tests := []struct {
		name    string
		members []galeraMember
		want    string // actions
		err     string // substring of the refusal
	}{
		{"fresh site: the first member bootstraps, the others join",
			[]galeraMember{stopped("fs1", "", -1, false), stopped("fs2", "", -1, false), stopped("fs3", "", -1, false)},
			"bootstrap fs1; join fs2; join fs3", ""},
		{"upgrade: the single server with data is the seed, wherever it is",
			[]galeraMember{stopped("fs1", "", -1, false), standalone("fs2", "lbserver20"), stopped("fs3", "", -1, false)},
			"bootstrap fs2 stop; join fs1; join fs3", ""},
		{"a Primary component exists: nobody bootstraps, a crashed member joins by IST",
			[]galeraMember{primary("fs1"), primary("fs2"), recovered(stopped("fs3", uuidA, -1, false), 41)},
			"join fs3 at " + uuidA + ":41", ""},
		{"a Primary component exists and a member is unreachable: the others are fine",
			[]galeraMember{primary("fs1"), primary("fs2"), unseen},
			"", ""},
		{"all stopped cleanly: the one marked safe_to_bootstrap",
			[]galeraMember{stopped("fs1", uuidA, 10, false), stopped("fs2", uuidA, 12, true), stopped("fs3", uuidA, 11, false)},
			"bootstrap fs2; join fs1; join fs3", ""},
		{"all crashed: the most advanced by recovered position, marked safe",
			[]galeraMember{recovered(stopped("fs1", uuidA, -1, false), 30), recovered(stopped("fs2", uuidA, -1, false), 33), stopped("fs3", uuidA, 20, false)},
			"bootstrap fs2 marksafe; join fs1 at " + uuidA + ":30; join fs3", ""},
		{"equal positions: the first in inventory order",
			[]galeraMember{stopped("fs1", uuidA, 7, false), stopped("fs2", uuidA, 9, false), stopped("fs3", uuidA, 9, false)},
			"bootstrap fs2 marksafe; join fs1; join fs3", ""},
		{"no Primary and a member cannot be asked: refused",
			[]galeraMember{stopped("fs1", uuidA, 10, false), stopped("fs2", uuidA, 12, false), unseen},
			"", "fs3 (dial: no route to host) cannot be asked"},
		{"members run Galera without quorum: refused",
			[]galeraMember{{Name: "fs1", Seen: true, Running: true, WsrepOn: true, Status: "non-Primary"}, stopped("fs2", uuidA, 3, false), stopped("fs3", uuidA, 3, false)},
			"", "without a Primary component: fs1 (non-Primary)"},
		{"a crashed member whose position is unknown: refused",
			[]galeraMember{stopped("fs1", uuidA, -1, false), stopped("fs2", uuidA, 12, false), stopped("fs3", uuidA, 12, false)},
			"", "fs1: the last committed seqno is unknown"},
		{"safe_to_bootstrap on a member behind another: refused",
			[]galeraMember{stopped("fs1", uuidA, 10, true), stopped("fs2", uuidA, 12, false), stopped("fs3", uuidA, 11, false)},
			"", "contradict"},
		{"two members marked safe_to_bootstrap: refused",
			[]galeraMember{stopped("fs1", uuidA, 12, true), stopped("fs2", uuidA, 12, true), stopped("fs3", uuidA, 11, false)},
			"", "several members are marked safe_to_bootstrap"},
		{"saved states of two clusters: refused",
			[]galeraMember{stopped("fs1", uuidA, 12, false), stopped("fs2", uuidB, 99, false), stopped("fs3", uuidA, 11, false)},
			"", "different clusters"},
		{"two standalone servers with data: refused",
			[]galeraMember{standalone("fs1", "lbserver20"), standalone("fs2", "other"), stopped("fs3", "", -1, false)},
			"", "several members hold databases"},
		{"a member with foreign data would be overwritten by a join: refused",
			[]galeraMember{primary("fs1"), primary("fs2"), standalone("fs3", "precious")},
			"", "fs3 holds databases precious"},
		{"Galera history and a standalone server with data: refused",
			[]galeraMember{stopped("fs1", uuidA, 12, false), stopped("fs2", uuidA, 12, false), standalone("fs3", "precious")},
			"", "cannot tell which data to keep"},
		{"quorum lost, every member running: pc.bootstrap on the most advanced only",
			[]galeraMember{nonPrim("fs1", 40), nonPrim("fs2", 42), nonPrim("fs3", 41)},
			"pc.bootstrap fs2", ""},
		{"quorum lost, equal positions: pc.bootstrap on the first in inventory order",
			[]galeraMember{nonPrim("fs1", 40), nonPrim("fs2", 42), nonPrim("fs3", 42)},
			"pc.bootstrap fs2", ""},
		{"quorum lost, two crashed: the survivor is made Primary, the crashed ones join from their positions",
			[]galeraMember{func() galeraMember { m := nonPrim("fs1", 50); m.Size = 1; return m }(), recovered(stopped("fs2", uuidA, -1, false), 49), stopped("fs3", uuidA, 50, false)},
			"pc.bootstrap fs1; join fs2 at " + uuidA + ":49; join fs3", ""},
		{"quorum lost and a stopped member is ahead of the running ones: refused",
			[]galeraMember{nonPrim("fs1", 50), stopped("fs2", uuidA, 51, false), nonPrim("fs3", 48)},
			"", "fs2, stopped, is at seqno 51, ahead of every running member"},
		{"quorum lost and the members still partitioned from each other: refused",
			[]galeraMember{func() galeraMember { m := nonPrim("fs1", 50); m.Size = 1; return m }(), nonPrim("fs2", 50), nonPrim("fs3", 50)},
			"", "do not reach each other yet (fs1's component has 1 members, 3 run)"},
		{"quorum lost and a member cannot be asked: refused (it may be Primary)",
			[]galeraMember{nonPrim("fs1", 50), nonPrim("fs2", 50), unseen},
			"", "fs3 (dial: no route to host) cannot be asked"},
		{"quorum lost and a running member does not answer: refused",
			[]galeraMember{nonPrim("fs1", 50), {Name: "fs2", Seen: true, Running: true, WsrepOn: true, Status: "not answering: timeout"}, nonPrim("fs3", 50)},
			"", "fs2 does not answer"},
		{"quorum lost and a position unknown: refused",
			[]galeraMember{nonPrim("fs1", 50), nonPrim("fs2", -1), nonPrim("fs3", 50)},
			"", "fs2 has no committed position"},
		{"quorum lost and states of two clusters: refused",
			[]galeraMember{nonPrim("fs1", 50), func() galeraMember { m := nonPrim("fs2", 60); m.LocalUUID = uuidB; return m }(), nonPrim("fs3", 50)},
			"", "different clusters"},
		{"quorum lost with a stopped crashed member of unknown position: refused",
			[]galeraMember{nonPrim("fs1", 50), stopped("fs2", uuidA, -1, false), nonPrim("fs3", 50)},
			"", "fs2 is stopped after a crash and its position is unknown"},
		{"arbiter: a Primary component without garbd starts it last",
			[]galeraMember{primary("fs1"), recovered(stopped("fs2", uuidA, -1, false), 7), arbiter(false)},
			"join fs2 at " + uuidA + ":7; start garbd fs3", ""},
		{"arbiter: garbd running, Primary component whole: nothing to do",
			[]galeraMember{primary("fs1"), primary("fs2"), arbiter(true)},
			"", ""},
		{"arbiter: all data members stopped: the most advanced data member bootstraps, never the arbiter",
			[]galeraMember{stopped("fs1", uuidA, 10, false), stopped("fs2", uuidA, 12, false), arbiter(false)},
			"bootstrap fs2 marksafe; join fs1; start garbd fs3", ""},
		{"arbiter: a fresh site bootstraps the first data member",
			[]galeraMember{arbiter(false), stopped("fs2", "", -1, false), stopped("fs3b", "", -1, false)},
			"bootstrap fs2; join fs3b; start garbd fs3", ""},
		{"arbiter unreachable: the data members still bootstrap (it holds no data, and no Primary component forms without a data member)",
			[]galeraMember{stopped("fs1", uuidA, 10, true), stopped("fs2", uuidA, 9, false), {Name: "fs3", Arbiter: true, Why: "dial: no route to host"}},
			"bootstrap fs1; join fs2", ""},
		{"arbiter: quorum lost, both data members running: pc.bootstrap on the most advanced, garbd left to reconnect",
			[]galeraMember{nonPrim("fs1", 30), nonPrim("fs2", 31), arbiter(true)},
			"pc.bootstrap fs2", ""},
		{"arbiter running a full mariadbd: refused",
			[]galeraMember{primary("fs1"), primary("fs2"), {Name: "fs3", Seen: true, Arbiter: true, MariaDBRunning: true}},
			"", "fs3 is the pool's arbiter but runs mariadbd"},
		{"arbiter: the former single server named as the arbiter, its data nowhere else: refused",
			[]galeraMember{stopped("fs1", "", -1, false), stopped("fs2", "", -1, false), {Name: "fs3", Seen: true, Arbiter: true, MariaDBRunning: true, UserDBs: []string{"lbserver20"}}},
			"", "fs3 is the pool's arbiter, which keeps no data, but its datadir holds databases lbserver20"},
		{"arbiter: leftover databases on the arbiter of a running cluster are left alone",
			[]galeraMember{primary("fs1"), primary("fs2"), {Name: "fs3", Seen: true, Arbiter: true, Running: true, UserDBs: []string{"lbserver20"}}},
			"", ""},
		{"two Primary components: refused",
			[]galeraMember{primary("fs1"), func() galeraMember { m := primary("fs2"); m.ClusterUUID = uuidB; return m }(), stopped("fs3", "", -1, false)},
			"", "two Primary components"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := planGalera(tc.members)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want it to contain %q (actions %q)", err, tc.err, actions(d))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := actions(d); got != tc.want {
				t.Fatalf("actions %q, want %q", got, tc.want)
			}
			n := 0
			for _, a := range d.Actions {
				if a.Kind == actBootstrap || a.Kind == actPCBootstrap {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("%d bootstraps", n)
			}
		})
	}
}

func TestParseGrastateAndRecovered(t *testing.T) {
	var m galeraMember
	parseGrastate(&m, "# GALERA saved state\nversion: 2.1\nuuid:    "+uuidA+"\nseqno:   -1\nsafe_to_bootstrap: 1\n")
	if !m.galeraHistory() || m.UUID != uuidA || m.Seqno != -1 || !m.SafeToBootstrap {
		t.Fatalf("%+v", m)
	}
	var fresh galeraMember
	parseGrastate(&fresh, "# GALERA saved state\nversion: 2.1\nuuid:    "+nilUUID+"\nseqno:   -1\nsafe_to_bootstrap: 1\n")
	if fresh.galeraHistory() {
		t.Fatal("a nil uuid is no Galera history")
	}
	log := "2026-11-27 16:00:01 0 [Note] InnoDB: ...\n2026-11-27 16:00:02 0 [Note] WSREP: Recovered position: " + uuidA + ":1234\n"
	if u, n, ok := parseRecovered(log); !ok || u != uuidA || n != 1234 {
		t.Fatalf("recovered %q %d %v", u, n, ok)
	}
	if _, _, ok := parseRecovered("WSREP: Recovered position: " + uuidA + ":-1\n"); ok {
		t.Fatal("seqno -1 is no position")
	}
	if got := userDBs([]string{"mysql", "performance_schema", "sys", "#innodb_temp", "lbserver20", "lost+found", ""}); strings.Join(got, ",") != "lbserver20" {
		t.Fatalf("userDBs %v", got)
	}
}

// TestPoolArbiterPlan: with pool.arbiter the arbiter gets garbd's settings
// and no MariaDB, L&B or hagd steps; the data members' gcomm list still
// names it (garbd listens on Galera's port).
func TestPoolArbiterPlan(t *testing.T) {
	inv := poolTestInventory(t, "fs3")
	phases, err := poolDBPhases(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var lbPhases []string
	for _, ph := range phases {
		for host, st := range ph.Steps {
			for _, s := range st {
				id := s.ID()
				if host == "fs3" && (strings.Contains(id, "/etc/mysql") || strings.Contains(id, "mysql ") || strings.Contains(id, "hagd")) {
					t.Errorf("phase %q: the arbiter gets %q", ph.Name, id)
				}
			}
		}
		if strings.HasPrefix(ph.Name, PhasePoolDB+" (") {
			lbPhases = append(lbPhases, ph.Name)
		}
		if ph.Name == PhasePoolHealth {
			if ids := strings.Join(stepIDs(ph.Steps["fs3"]), ", "); ids != "galera arbitrator (garbd) running" {
				t.Errorf("arbiter's health: %q", ids)
			}
			if ids := strings.Join(stepIDs(ph.Steps["fs1"]), ", "); !strings.Contains(ids, "galera wsrep_cluster_size") {
				t.Errorf("fs1's health: %q", ids)
			}
		}
		if ph.Name == PhasePoolHAGD {
			if _, ok := ph.Steps["fs3"]; ok || len(ph.Steps) != 2 {
				t.Errorf("hagd phase on %d hosts, the arbiter among them: %v", len(ph.Steps), ok)
			}
		}
	}
	if strings.Join(lbPhases, ", ") != PhasePoolDB+" (fs1), "+PhasePoolDB+" (fs2)" {
		t.Errorf("L&B phases: %v", lbPhases)
	}
	conf := fileStep(t, phases[0].Steps["fs3"], GarbdConfig)
	for _, want := range []string{`GALERA_NODES="198.18.0.11:4567,198.18.0.12:4567"`, `GALERA_GROUP="` + inv.Roles.StateServer.Pool.ClusterName + `"`,
		`GALERA_OPTIONS="gmcast.listen_addr=tcp://198.18.0.13:4567;socket.ssl_cert=/etc/gridha/garbd-tls/cert.pem;socket.ssl_key=/etc/gridha/garbd-tls/key.pem;socket.ssl_ca=/etc/gridha/garbd-tls/ca.pem"`, `LOG_FILE="/var/log/garbd/garbd.log"`} {
		if !strings.Contains(string(conf.Content), want+"\n") {
			t.Errorf("%s lacks %s:\n%s", GarbdConfig, want, conf.Content)
		}
	}
	var cnf []byte
	for _, s := range phases[0].Steps["fs1"] {
		if f, ok := s.(*steps.File); ok && f.Path == inv.Roles.StateServer.MySQL.Config {
			cnf = f.Content
		}
	}
	if !strings.Contains(string(cnf), "gcomm://198.18.0.11,198.18.0.12,198.18.0.13\n") {
		t.Errorf("fs1's gcomm list:\n%s", cnf)
	}
	// Replication, IST and SST over TLS with the pool CA (a host without
	// its certificate cannot join and ask for the data).
	for _, want := range []string{
		`wsrep_provider_options = "socket.ssl_cert=/etc/mysql/gridha-tls/cert.pem;socket.ssl_key=/etc/mysql/gridha-tls/key.pem;socket.ssl_ca=/etc/mysql/gridha-tls/ca.pem"`,
		"encrypt = 3\nssl-mode = VERIFY_CA\ntca = /etc/mysql/gridha-tls/ca.pem\ntcert = /etc/mysql/gridha-tls/cert.pem\ntkey = /etc/mysql/gridha-tls/key.pem\n",
	} {
		if !strings.Contains(string(cnf), want) {
			t.Errorf("fs1's option file lacks %q:\n%s", want, cnf)
		}
	}
	if k := fileStep(t, phases[0].Steps["fs1"], "/etc/mysql/gridha-tls/key.pem"); k.Mode != 0o400 || k.Owner != "mysql" || !k.Secret {
		t.Errorf("fs1's Galera key: mode %v owner %s secret %v", k.Mode, k.Owner, k.Secret)
	}
	if k := fileStep(t, phases[0].Steps["fs3"], "/etc/gridha/garbd-tls/key.pem"); k.Mode != 0o400 || k.Owner != "nobody" || !k.Secret {
		t.Errorf("arbiter's garbd key: mode %v owner %s secret %v", k.Mode, k.Owner, k.Secret)
	}
}
