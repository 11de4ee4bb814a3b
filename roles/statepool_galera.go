package roles

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// The decision half of the pool's Galera cluster: what gridha does with
// the members it finds, as a pure function of what it found, so the rule
// that keeps two Primary components from ever being started can be read
// (and tested) without a network.
//
// The rule, in order:
//  1. A member already in a Primary component is the cluster: every other
//     member joins it (a member still running a standalone server is
//     stopped first); nothing is bootstrapped.
//  2. No member is Primary: only when every member was seen (reachable and
//     not running Galera) does gridha bootstrap one, the most advanced:
//     the highest seqno of grastate.dat (or recovered with mariadbd
//     --wsrep-recover after a crash), honouring safe_to_bootstrap; on a
//     site that never ran Galera, the one member whose datadir holds
//     databases (the single state server being upgraded to a pool), or the
//     first member when none does. Every case that cannot be decided is
//     refused with what was found and what to do.
//  3. A member holding databases that a join would replace by a state
//     transfer (it never was part of this cluster) is never joined: its
//     data would be lost.

// galeraMember is what gridha found on one pool member.
type galeraMember struct {
	Name string
	// Seen is false when the member could not be asked (unreachable, or
	// outside the run): it may well run a Primary component.
	Seen    bool
	Why     string // why not seen
	Running bool   // a mariadbd process runs
	Answers bool   // it answers SQL over its socket
	WsrepOn bool
	// Status is wsrep_cluster_status (Primary, non-Primary, Disconnected).
	Status string
	// State is wsrep_local_state_comment (Synced, Donor/Desynced, Joining...).
	State       string
	ClusterUUID string // wsrep_cluster_state_uuid (when running Galera)
	Size        int    // wsrep_cluster_size
	// Grastate: the saved state of a stopped member (grastate.dat).
	HasGrastate     bool
	UUID            string
	Seqno           int64 // -1: unknown (crashed), see Recovered
	SafeToBootstrap bool
	// Recovered is the position mariadbd --wsrep-recover found (seqno -1
	// in grastate.dat after a crash); RecoveredOK says it ran.
	Recovered   int64
	RecoveredOK bool
	// UserDBs are the datadir's databases other than the system ones.
	UserDBs []string
	// Initialized: the datadir holds MariaDB's system tables (a fresh
	// host may have an empty one; a joiner gets everything by SST, a
	// bootstrap needs them).
	Initialized bool
	// LastCommitted is wsrep_last_committed of a running member (-1:
	// unknown), LocalUUID its wsrep_local_state_uuid: what a quorum repair
	// (pc.bootstrap) compares.
	LastCommitted int64
	LocalUUID     string
	// Arbiter: the member is the pool's arbiter, where gridha runs garbd
	// (a Galera arbitrator: it votes, holds no data, has no grastate.dat).
	// Running then says garbd runs; MariaDBRunning that a mariadbd runs
	// there too (a full node, which gridha does not turn into garbd).
	Arbiter        bool
	MariaDBRunning bool
}

// nilUUID is a grastate.dat uuid of a node that never joined a cluster.
const nilUUID = "00000000-0000-0000-0000-000000000000"

// galeraHistory says whether m ever belonged to a Galera cluster.
func (m galeraMember) galeraHistory() bool {
	return m.HasGrastate && m.UUID != "" && m.UUID != nilUUID
}

// primary says whether m runs in a Primary component.
func (m galeraMember) primary() bool { return m.Running && m.WsrepOn && m.Status == "Primary" }

// position is the member's last committed seqno as far as known.
func (m galeraMember) position() (int64, bool) {
	if m.Seqno >= 0 {
		return m.Seqno, true
	}
	if m.RecoveredOK {
		return m.Recovered, true
	}
	return -1, false
}

// galeraActionKind is what gridha does to one member.
type galeraActionKind string

const (
	actBootstrap galeraActionKind = "bootstrap" // start a new Primary component here
	actJoin      galeraActionKind = "join"      // start and join the Primary component
	// actPCBootstrap makes the non-Primary component of a running member
	// Primary (wsrep_provider_options pc.bootstrap=YES): the repair of a
	// cluster that lost quorum while every member kept running.
	actPCBootstrap galeraActionKind = "pc.bootstrap"
	actArbiter     galeraActionKind = "start garbd" // the arbiter joins the Primary component
)

type galeraAction struct {
	Kind galeraActionKind
	Host string
	// Stop: a standalone (non-Galera) server runs there: shut it down first.
	Stop bool
	// StartPosition: uuid:seqno recovered after a crash, so that the
	// member asks for an incremental transfer (IST) instead of a full one.
	StartPosition string
	// MarkSafe: set safe_to_bootstrap: 1 in grastate.dat before the
	// bootstrap (every member crashed; this one is the most advanced).
	MarkSafe bool
	Why      string
}

// galeraDecision is planGalera's answer.
type galeraDecision struct {
	Actions []galeraAction
	// Waiting lists members left alone, with why (a partitioned member that
	// rejoins by itself, an unreachable one).
	Waiting []string
}

// planGalera decides what to do with members (in inventory order). The
// arbiter (garbd) holds no data: it never is a seed and its position does
// not count; it is started last, once a Primary component runs.
func planGalera(all []galeraMember) (galeraDecision, error) {
	var members, arbiters []galeraMember
	for _, m := range all {
		if m.Arbiter {
			arbiters = append(arbiters, m)
		} else {
			members = append(members, m)
		}
	}
	for _, a := range arbiters {
		if !a.Seen || len(a.UserDBs) == 0 {
			continue
		}
		held := false
		for _, m := range members {
			held = held || m.galeraHistory() || len(m.UserDBs) > 0 || m.primary()
		}
		if !held {
			// The single state server named as the arbiter: a new cluster
			// would start empty on a data member, its databases left behind.
			return galeraDecision{}, fmt.Errorf("%s is the pool's arbiter, which keeps no data, but its datadir holds databases %s and no data member holds any: the cluster would start without them; name another host as pool.arbiter (the one holding the data must be a data member) and run install again",
				a.Name, strings.Join(a.UserDBs, ", "))
		}
	}
	for _, a := range arbiters {
		if a.Seen && a.MariaDBRunning {
			return galeraDecision{}, fmt.Errorf("%s is the pool's arbiter but runs mariadbd: gridha runs the Galera arbitrator (garbd) there, which holds no data; stop its mariadbd (mariadb-admin shutdown, and disable it at boot) and run install again", a.Name)
		}
	}
	d, err := planGaleraData(members)
	if err != nil {
		return d, err
	}
	for _, a := range arbiters {
		switch {
		case !a.Seen:
			d.Waiting = append(d.Waiting, a.Name+" (arbiter): not reachable ("+a.Why+"); garbd is started when it is back and install runs again")
		case a.Running:
			// garbd reconnects by itself to whichever member it reaches.
		default:
			d.Actions = append(d.Actions, galeraAction{Kind: actArbiter, Host: a.Name, Why: "the arbiter votes in the Primary component (holds no data)"})
		}
	}
	return d, nil
}

// planGaleraData decides for the data members (the arbiter left out).
func planGaleraData(members []galeraMember) (galeraDecision, error) {
	var d galeraDecision
	var primaries []galeraMember
	for _, m := range members {
		if m.Seen && m.primary() {
			primaries = append(primaries, m)
		}
	}
	if len(primaries) > 0 {
		uuid := primaries[0].ClusterUUID
		for _, p := range primaries[1:] {
			if p.ClusterUUID != uuid {
				return d, fmt.Errorf("two Primary components: %s (cluster %s) and %s (cluster %s): gridha does not merge them; keep the one with the data you want, stop the other's members and move their datadirs aside, then run install again",
					primaries[0].Name, uuid, p.Name, p.ClusterUUID)
			}
		}
		for _, m := range members {
			switch {
			case !m.Seen:
				d.Waiting = append(d.Waiting, m.Name+": not reachable ("+m.Why+"); it joins when it is back and install runs again")
			case m.primary():
			case m.Running && m.WsrepOn:
				// Partitioned or still joining: Galera brings it back by
				// itself once it reaches the others.
				d.Waiting = append(d.Waiting, fmt.Sprintf("%s: runs Galera but is %s/%s; it rejoins by itself when it reaches the Primary component", m.Name, orNone(m.Status), orNone(m.State)))
			default:
				a, err := joinAction(m, uuid, primaries[0].Name)
				if err != nil {
					return d, err
				}
				d.Actions = append(d.Actions, a)
			}
		}
		return d, nil
	}

	// No Primary component anywhere gridha can see: bootstrap only when
	// every member was seen and none runs Galera.
	var unseen, stuck []string
	for _, m := range members {
		switch {
		case !m.Seen:
			unseen = append(unseen, m.Name+" ("+m.Why+")")
		case m.Running && m.WsrepOn:
			stuck = append(stuck, fmt.Sprintf("%s (%s)", m.Name, orNone(m.Status)))
		}
	}
	if len(unseen) > 0 {
		return d, fmt.Errorf("no reachable pool member is in a Primary component and %s cannot be asked: it may run one, or be the most advanced member; gridha bootstraps nothing it cannot decide: bring it back and run install again",
			strings.Join(unseen, ", "))
	}
	if len(stuck) > 0 {
		return planQuorumRepair(members, stuck)
	}
	seed, markSafe, why, err := pickSeed(members)
	if err != nil {
		return d, err
	}
	d.Actions = append(d.Actions, galeraAction{Kind: actBootstrap, Host: seed.Name, Stop: seed.Running, MarkSafe: markSafe, Why: why})
	uuid := seed.UUID
	if !seed.galeraHistory() {
		uuid = ""
	}
	for _, m := range members {
		if m.Name == seed.Name {
			continue
		}
		a, err := joinAction(m, uuid, seed.Name)
		if err != nil {
			return d, err
		}
		d.Actions = append(d.Actions, a)
	}
	return d, nil
}

// planQuorumRepair handles a cluster that lost quorum with members still
// running (a full partition, two of three crashed): every member was seen,
// none is Primary. The documented repair is pc.bootstrap=YES on the single
// most advanced running member (highest wsrep_last_committed; equal: the
// first in inventory order): its component becomes Primary, the other
// running members rejoin it by themselves (IST), the stopped ones are
// started and join. Refused when a position is unknown, when a stopped
// member is ahead of every running one (its transactions would be lost),
// or when the members hold states of different clusters.
func planQuorumRepair(members []galeraMember, stuck []string) (galeraDecision, error) {
	var d galeraDecision
	refuse := func(why string) (galeraDecision, error) {
		return d, fmt.Errorf("members run Galera without a Primary component: %s (the cluster lost quorum); %s; gridha restarts nothing that holds data: stop every member's mariadbd (mariadb-admin shutdown) and run install again, it then bootstraps the most advanced one",
			strings.Join(stuck, ", "), why)
	}
	var best *galeraMember
	uuid := ""
	running, size := 0, -1
	for _, m := range members {
		if m.Running {
			running++
		}
	}
	sameUUID := func(m galeraMember, u string) bool {
		if uuid == "" {
			uuid = u
		}
		return u == uuid
	}
	for i := range members {
		m := &members[i]
		if !m.Running {
			continue
		}
		switch {
		case !m.WsrepOn:
			return refuse(m.Name + " runs a standalone server (no Galera) beside them")
		case !m.Answers:
			return refuse(m.Name + " does not answer: its position cannot be read")
		case m.LastCommitted < 0 || m.LocalUUID == "" || m.LocalUUID == nilUUID:
			return refuse(fmt.Sprintf("%s has no committed position (wsrep_last_committed %d): it holds no state of its own yet", m.Name, m.LastCommitted))
		case !sameUUID(*m, m.LocalUUID):
			return refuse(fmt.Sprintf("members hold states of different clusters (%s and %s)", uuid, m.LocalUUID))
		case m.Size < running || (size >= 0 && m.Size != size):
			// Each running member must see the others in its (non-Primary)
			// component: while they are still partitioned from each other,
			// making one Primary would let the others form a second Primary
			// component once they reach each other again.
			return refuse(fmt.Sprintf("the running members do not reach each other yet (%s's component has %d members, %d run): a partition still runs; heal it first", m.Name, m.Size, running))
		}
		size = m.Size
		if best == nil || m.LastCommitted > best.LastCommitted {
			best = m
		}
	}
	for _, m := range members {
		if m.Running || !m.galeraHistory() {
			continue
		}
		if !sameUUID(m, m.UUID) {
			return refuse(fmt.Sprintf("%s saved the state of another cluster (%s, not %s)", m.Name, m.UUID, uuid))
		}
		pos, ok := m.position()
		if !ok {
			return refuse(m.Name + " is stopped after a crash and its position is unknown (install recovers it with mariadbd --wsrep-recover)")
		}
		if pos > best.LastCommitted {
			return refuse(fmt.Sprintf("%s, stopped, is at seqno %d, ahead of every running member (%s at %d): making a running one Primary would lose its transactions", m.Name, pos, best.Name, best.LastCommitted))
		}
	}
	d.Actions = append(d.Actions, galeraAction{Kind: actPCBootstrap, Host: best.Name,
		Why: fmt.Sprintf("quorum lost with the members running: the most advanced one (wsrep_last_committed %d) becomes the Primary component", best.LastCommitted)})
	for _, m := range members {
		switch {
		case m.Name == best.Name:
		case m.Running:
			d.Waiting = append(d.Waiting, m.Name+": runs non-Primary; it rejoins "+best.Name+"'s Primary component by itself")
		default:
			a, err := joinAction(m, uuid, best.Name)
			if err != nil {
				return d, err
			}
			d.Actions = append(d.Actions, a)
		}
	}
	return d, nil
}

// joinAction makes m join the cluster uuid (empty: a cluster bootstrapped in
// this run from a site that never ran Galera) held by donor.
func joinAction(m galeraMember, uuid, donor string) (galeraAction, error) {
	a := galeraAction{Kind: actJoin, Host: m.Name, Stop: m.Running, Why: "joins the Primary component of " + donor}
	sameCluster := uuid != "" && m.galeraHistory() && m.UUID == uuid
	if len(m.UserDBs) > 0 && !sameCluster {
		return a, fmt.Errorf("%s holds databases %s but never belonged to this cluster: joining would replace them by a full state transfer from %s; gridha never drops data: dump and move them away (or drop them) and run install again",
			m.Name, strings.Join(m.UserDBs, ", "), donor)
	}
	if sameCluster && !m.Running {
		if pos, ok := m.position(); ok && m.Seqno < 0 {
			// After a crash grastate.dat says -1: hand mariadbd the
			// recovered position or it falls back to a full transfer.
			a.StartPosition = m.UUID + ":" + strconv.FormatInt(pos, 10)
		}
	}
	return a, nil
}

// pickSeed chooses the member to bootstrap when no Primary component runs.
func pickSeed(members []galeraMember) (seed galeraMember, markSafe bool, why string, err error) {
	var hist, standaloneData []galeraMember
	for _, m := range members {
		if m.galeraHistory() {
			hist = append(hist, m)
		} else if len(m.UserDBs) > 0 {
			standaloneData = append(standaloneData, m)
		}
	}
	if len(hist) > 0 {
		if len(standaloneData) > 0 {
			return seed, false, "", fmt.Errorf("%s ran Galera before but %s holds databases and never did: gridha cannot tell which data to keep; move the databases you do not want aside and run install again",
				names(hist), names(standaloneData))
		}
		uuid := hist[0].UUID
		for _, m := range hist[1:] {
			if m.UUID != uuid {
				return seed, false, "", fmt.Errorf("members saved states of different clusters (%s: %s, %s: %s): gridha cannot tell which one to keep; move the unwanted member's datadir aside and run install again",
					hist[0].Name, uuid, m.Name, m.UUID)
			}
		}
		var safe []galeraMember
		for _, m := range hist {
			if m.SafeToBootstrap {
				safe = append(safe, m)
			}
		}
		// The most advanced member; every seqno must be known.
		var best galeraMember
		var bestPos int64 = -2
		tie := false
		for _, m := range hist {
			pos, ok := m.position()
			if !ok {
				return seed, false, "", fmt.Errorf("%s: the last committed seqno is unknown (grastate.dat seqno -1 and mariadbd --wsrep-recover found no position): gridha cannot tell which member is most advanced; see its error log", m.Name)
			}
			switch {
			case pos > bestPos:
				best, bestPos, tie = m, pos, false
			case pos == bestPos:
				tie = true
			}
		}
		switch {
		case len(safe) == 1:
			// Galera marks the last member to leave a cluster cleanly.
			if p, _ := safe[0].position(); p < bestPos {
				return seed, false, "", fmt.Errorf("%s is marked safe_to_bootstrap at seqno %d but %s is at %d: the saved states contradict each other; check both error logs, then set safe_to_bootstrap: 1 in grastate.dat of the member to keep (0 on the other) and run install again",
					safe[0].Name, p, best.Name, bestPos)
			}
			return safe[0], false, fmt.Sprintf("the member marked safe_to_bootstrap (seqno %d)", bestPos), nil
		case len(safe) > 1:
			return seed, false, "", fmt.Errorf("several members are marked safe_to_bootstrap (%s): gridha cannot tell which one left last; set it to 0 in grastate.dat on all but one and run install again", names(safe))
		}
		if tie {
			// Equal positions hold the same data: the first one in
			// inventory order.
			for _, m := range hist {
				if p, _ := m.position(); p == bestPos {
					best = m
					break
				}
			}
		}
		return best, true, fmt.Sprintf("the most advanced member (seqno %d; every member had stopped)", bestPos), nil
	}
	switch len(standaloneData) {
	case 0:
		for _, m := range members {
			return m, false, "a new cluster: the first pool member", nil
		}
		return seed, false, "", fmt.Errorf("no pool members")
	case 1:
		m := standaloneData[0]
		return m, false, "the existing database server (" + strings.Join(m.UserDBs, ", ") + ") becomes the cluster's seed", nil
	}
	return seed, false, "", fmt.Errorf("several members hold databases and none ran Galera (%s): gridha cannot tell which one is the seed of the pool; keep the databases on one member only (dump and drop them on the others) and run install again", names(standaloneData))
}

func names(ms []galeraMember) string {
	var out []string
	for _, m := range ms {
		s := m.Name
		if len(m.UserDBs) > 0 && !m.galeraHistory() {
			s += " (" + strings.Join(m.UserDBs, ", ") + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// parseGrastate reads grastate.dat.
func parseGrastate(m *galeraMember, content string) {
	m.HasGrastate = strings.TrimSpace(content) != ""
	m.Seqno = -1
	for _, l := range strings.Split(content, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "uuid":
			m.UUID = v
		case "seqno":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				m.Seqno = n
			}
		case "safe_to_bootstrap":
			m.SafeToBootstrap = v == "1"
		}
	}
}

// parseRecovered finds the position in mariadbd --wsrep-recover's log:
// "WSREP: Recovered position: <uuid>:<seqno>".
func parseRecovered(log string) (uuid string, seqno int64, ok bool) {
	i := strings.LastIndex(log, "Recovered position:")
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(log[i+len("Recovered position:"):])
	if len(f) == 0 {
		return "", 0, false
	}
	u, s, found := strings.Cut(f[0], ":")
	if !found {
		return "", 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return "", 0, false
	}
	return u, n, true
}

// systemDBs are the datadir folders that are not user databases.
var systemDBs = map[string]bool{"mysql": true, "performance_schema": true, "sys": true, "lost+found": true}

// userDBs filters a datadir listing.
func userDBs(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		d = strings.TrimSpace(d)
		if d == "" || systemDBs[d] || strings.HasPrefix(d, "#") || strings.HasPrefix(d, ".") {
			continue
		}
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
