package roles

import (
	"strings"
	"testing"
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
				if a.Kind == actBootstrap {
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
