package hagd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// slogLevel maps a hagd debug level (0 errors .. 5 everything; slide 13)
// to a slog level: 0 error, 1 warn, 2 info, 3.. debug and finer.
func slogLevel(level int) slog.Level { return slog.Level(8 - 4*level) }

// NewLogger logs at the config's debug level to w.
func NewLogger(w io.Writer, debug int) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slogLevel(debug)}))
}

// Daemon runs the machine for real: UDP heartbeats, the script, the lease
// and the control socket. Fields left nil are built from Cfg by Run.
type Daemon struct {
	Cfg       *Config
	Log       *slog.Logger
	Transport Transport
	Lease     Lease
	// MetricsListener, when set, serves /metrics (opt-in: --metrics).
	MetricsListener net.Listener
	IP              IPCommand // nil: the ip command

	codec *Keyring
	// keyStamp identifies the key files the keyring was built from
	// (reloadKeys); keyCheck is when they were last looked at.
	keyStamp string
	keyCheck time.Time
	keyErr   string // the last reload error logged (logged once)
	filter   ReplayFilter
	m        *Machine
	runner   *ScriptRunner
	nonce    uint64
	seq      uint64
	start    time.Time
	q        chan func()
	done     chan struct{}
	bg       context.Context
	// fencing: exec is running the Tick a late heartbeat asked for
	fencing  bool
	peersErr bool // a failure to save peers_file was logged

	mu       sync.Mutex
	counters map[string]uint64
	// becameMaster counts takeovers per group (main loop only).
	becameMaster map[string]uint64
	// sw: when the status file was written (main loop only).
	sw statusWrite
}

// Counters of received packets.
const (
	cntAccepted  = "accepted"
	cntBadMAC    = "bad_signature"
	cntReplay    = "replayed"
	cntDuplicate = "duplicate"
	cntStale     = "stale"
	cntMalformed = "malformed"
	cntForeign   = "not_hagd"
	cntOwnID     = "own_id_elsewhere"
	cntSendErr   = "send_errors"
	// not a packet count: how often the key files were reloaded
	cntKeyReloads = "key_reloads"
)

func (d *Daemon) count(k string) {
	d.mu.Lock()
	d.counters[k]++
	d.mu.Unlock()
}

// Run serves until ctx ends, then stops every service this provider runs,
// releases its leases, says goodbye and returns.
func (d *Daemon) Run(ctx context.Context) (err error) {
	c := d.Cfg
	if d.Log == nil {
		d.Log = NewLogger(os.Stderr, c.Debug)
	}
	if d.codec, d.keyStamp, err = loadKeyring(c); err != nil {
		return err
	}
	d.keyCheck = time.Now()
	d.filter = ReplayFilter{MaxSkew: c.MaxSkew}
	if c.PeersFile != "" {
		switch b, err := os.ReadFile(c.PeersFile); {
		case err == nil:
			_ = d.filter.UnmarshalText(b)
		case !errors.Is(err, fs.ErrNotExist):
			d.Log.Warn("peers_file: starting without the replay memory", "err", err)
		}
	}
	d.counters = map[string]uint64{}
	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return err
	}
	d.nonce = binary.BigEndian.Uint64(nb[:])
	d.q = make(chan func(), 64)
	d.done = make(chan struct{})
	defer close(d.done)
	d.bg = context.WithoutCancel(ctx)
	d.start = time.Now()

	if d.Transport == nil {
		t, err := OpenUDP(ctx, c.Port, c.Ifaces)
		if err != nil {
			return err
		}
		d.Transport = t
		d.Log.Info("broadcasting", "port", c.Port, "ifaces", t.Ifaces())
	}
	defer d.Transport.Close()
	if d.Lease == nil && c.Lease != "none" {
		if d.Lease, err = OpenLease(c); err != nil {
			return err
		}
	}
	if d.Lease != nil {
		defer d.Lease.Close()
	}
	if c.Lease == "none" {
		d.Log.Warn("lease = none: a network partition can give two masters")
	}
	ctl, err := listenControl(c.Control)
	if err != nil {
		return err
	}
	defer ctl.Close()
	go d.serveControl(ctl)
	if d.MetricsListener != nil {
		go d.serveMetrics(ctx)
	}

	if d.IP == nil {
		d.IP = runIP
	}
	env := map[string][]string{}
	for g, ip := range c.ServiceIPs {
		env[g] = []string{"HAGD_SERVICE_IP=" + ip.String()}
	}
	d.runner = &ScriptRunner{Path: c.Script, Timeout: c.Timeout, StopTimeout: c.StopTimeout, Node: c.ID, Env: env}
	d.m = NewMachine(ParamsFromConfig(c))
	d.Log.Info("hagd starting", "node", c.ID, "groups", fmt.Sprint(c.Groups), "dt1", c.DT1, "dt2", c.DT2, "lease", c.Lease)
	d.exec(d.m.Start(time.Now()))
	d.writeStatus(time.Now())
	defer d.removeStatus()

	tick := min(c.Heartbeat/4, 100*time.Millisecond)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	pkts := d.Transport.Packets()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-ticker.C:
			d.reloadKeys(time.Now())
			d.exec(d.m.Tick(time.Now()))
		case p := <-pkts:
			d.handle(p)
		case fn := <-d.q:
			fn()
		}
		d.maybeWriteStatus(time.Now())
	}

	// Clean shutdown: stop what runs, release the leases, say goodbye.
	d.Log.Info("shutting down")
	d.exec(d.m.Shutdown(time.Now()))
	d.writeStatus(time.Now())
	deadline := time.NewTimer(c.StopTimeout + 2*c.LeaseTimeout + time.Second)
	defer deadline.Stop()
	for !d.m.Done() {
		select {
		case <-deadline.C:
			d.Log.Error("shutdown: gave up waiting for stop and lease release")
			goto bye
		case <-ticker.C:
			d.exec(d.m.Tick(time.Now()))
		case p := <-pkts:
			d.handle(p)
		case fn := <-d.q:
			fn()
		}
	}
bye:
	msg := d.m.Heartbeat(time.Now(), true)
	d.send(&msg)
	d.Log.Info("hagd stopped")
	return nil
}

// keyStamp identifies the current content of the key and accepted-keys
// files without reading them (inode, size, modification time).
func keyStamp(c *Config) string {
	var b []byte
	for _, p := range []string{c.KeyFile, c.AcceptKeyFile()} {
		st, err := os.Stat(p)
		if err != nil {
			b = fmt.Appendf(b, "%s: -;", p)
			continue
		}
		var ino uint64
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			ino = sys.Ino
		}
		b = fmt.Appendf(b, "%s: %d %d %d %o;", p, ino, st.Size(), st.ModTime().UnixNano(), st.Mode())
	}
	return string(b)
}

// loadKeyring reads the key hagd signs with and the keys it also accepts.
func loadKeyring(c *Config) (*Keyring, string, error) {
	stamp := keyStamp(c)
	key, err := c.ReadKey()
	if err != nil {
		return nil, "", err
	}
	accept, err := c.ReadAcceptKeys()
	if err != nil {
		return nil, "", err
	}
	var names []string
	for _, g := range c.Groups {
		names = append(names, g.Name)
	}
	return NewKeyring(key, accept, names), stamp, nil
}

// keyCheckInterval is how often hagd looks whether its key files changed.
const keyCheckInterval = time.Second

// reloadKeys rebuilds the keyring when the key files changed, so that a key
// rotation needs no restart (a restart hands a master's groups away). A
// file that cannot be used (bad mode, too short, half written) keeps the
// keys in use, with an error in the log; the next change is tried again.
func (d *Daemon) reloadKeys(now time.Time) {
	if now.Sub(d.keyCheck) < keyCheckInterval {
		return
	}
	d.keyCheck = now
	if keyStamp(d.Cfg) == d.keyStamp {
		return
	}
	kr, stamp, err := loadKeyring(d.Cfg)
	if err != nil {
		if msg := err.Error(); msg != d.keyErr {
			d.keyErr = msg
			d.Log.Error("key files changed but cannot be used: keeping the keys in use", "err", err)
		}
		return
	}
	d.codec, d.keyStamp, d.keyErr = kr, stamp, ""
	d.count(cntKeyReloads)
	d.Log.Info("key files reloaded", "accepted_keys", kr.Keys())
}

// OpenLease opens the lease store hagd.conf names.
func OpenLease(c *Config) (Lease, error) {
	switch c.Lease {
	case "mysql":
		pw, err := c.ReadMySQLPassword()
		if err != nil {
			return nil, err
		}
		return OpenMySQLLease(MySQLConfig{Host: c.MySQLHost, User: c.MySQLUser, Password: pw, DB: c.MySQLDB, Timeout: c.LeaseTimeout})
	case "file":
		return &FileLease{Dir: c.LeaseFile}, nil
	}
	return nil, fmt.Errorf("lease %q", c.Lease)
}

func (d *Daemon) post(fn func()) {
	select {
	case d.q <- fn:
	case <-d.done:
	}
}

func (d *Daemon) handle(p Packet) {
	msg, err := d.codec.Decode(p.Data)
	if err == nil && msg.From == d.Cfg.ID {
		if msg.Nonce != d.nonce {
			d.count(cntOwnID)
			d.Log.Warn("a packet with our node ID from another daemon (duplicate id?)", "from", p.From)
		}
		return
	}
	if err == nil {
		err = d.filter.Check(msg, time.Now())
		if err == nil {
			d.savePeers()
		}
	}
	if err != nil {
		k, level := cntMalformed, 3
		switch {
		case errors.Is(err, ErrDuplicate):
			k, level = cntDuplicate, 4
		case errors.Is(err, ErrBadMAC):
			k = cntBadMAC
		case errors.Is(err, ErrReplay):
			k = cntReplay
		case errors.Is(err, ErrStale):
			k = cntStale
		case errors.Is(err, ErrNotHAGD):
			k = cntForeign
		}
		d.count(k)
		d.Log.Log(context.Background(), slogLevel(level), "packet dropped", "from", p.From, "reason", err)
		return
	}
	d.count(cntAccepted)
	d.Log.Log(context.Background(), slogLevel(5), "packet", "from", msg.From, "addr", p.From, "seq", msg.Seq)
	d.exec(d.m.Heard(time.Now(), msg))
}

// savePeers writes the replay filter's memory before the packet is acted
// upon, so that a restarted hagd never accepts a copy of a packet it has
// already used (a captured heartbeat replayed after a restart).
func (d *Daemon) savePeers() {
	path := d.Cfg.PeersFile
	if path == "" {
		return
	}
	b, _ := d.filter.MarshalText()
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	if err == nil {
		err = os.WriteFile(path+".new", b, 0o600)
	}
	if err == nil {
		err = os.Rename(path+".new", path)
	}
	if err != nil && !d.peersErr {
		d.peersErr = true
		d.Log.Warn("peers_file: cannot save the replay memory (a restart forgets the senders)", "err", err)
	}
}

func (d *Daemon) send(msg *Message) {
	d.seq++
	msg.Nonce, msg.Seq, msg.Time = d.nonce, d.seq, time.Now()
	b, err := d.codec.Encode(msg)
	if err == nil {
		err = d.Transport.Send(b)
	}
	if err != nil {
		d.count(cntSendErr)
		d.Log.Log(context.Background(), slogLevel(3), "send", "err", err)
	}
}

func (d *Daemon) exec(acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActBroadcast:
			// A heartbeat may be sent long after it was decided (a
			// frozen hagd resumed): let the machine fence first, so it
			// never claims a group whose lease it can no longer prove.
			if now := time.Now(); !d.fencing && d.m.Fenceable(now) {
				d.fencing = true
				d.exec(d.m.Tick(now))
				d.fencing = false
			}
			msg := d.m.Heartbeat(time.Now(), false)
			d.send(&msg)
		case ActIP:
			d.runIP(a)
		case ActLog:
			d.Log.Info("transition", "group", a.Group, "from", a.From.String(), "to", a.To.String(), "reason", a.Reason)
			d.noteTransition(a)
			d.sw.dirty = true
		case ActNote:
			d.Log.Log(context.Background(), slogLevel(a.Level), a.Reason, "group", a.Group)
		case ActScript:
			d.runScript(a)
		case ActLease:
			d.runLease(a)
		}
	}
}

func (d *Daemon) runScript(a Action) {
	lvl := slogLevel(2)
	if a.Op == OpStatus {
		lvl = slogLevel(4)
	}
	d.Log.Log(context.Background(), lvl, "script", "op", a.Op, "group", a.Group)
	d.runner.Run(d.bg, a.Group, a.Op, func(err error, out string, took time.Duration) {
		switch {
		case errors.Is(err, ErrSuperseded):
			d.Log.Log(context.Background(), slogLevel(3), "script superseded", "op", a.Op, "group", a.Group)
		case err != nil:
			d.Log.Warn("script failed", "op", a.Op, "group", a.Group, "took", took.Round(time.Millisecond), "err", err)
		default:
			d.Log.Log(context.Background(), lvl, "script done", "op", a.Op, "group", a.Group, "took", took.Round(time.Millisecond))
		}
		if out != "" {
			d.Log.Log(context.Background(), slogLevel(4), "script output", "op", a.Op, "group", a.Group, "output", out)
		}
		d.post(func() { d.exec(d.m.ScriptDone(time.Now(), a.Group, a.ID, err)) })
	})
}

// runIP changes the service IP now (before the next action: a removal
// precedes the script's stop) and reports the result through the queue.
func (d *Daemon) runIP(a Action) {
	ip := d.Cfg.ServiceIPs[a.Group]
	ctx := d.bg
	var up bool
	var err error
	switch a.Op {
	case OpIPDown:
		err = delServiceIP(ctx, d.IP, ip)
		up = err != nil
	default:
		up, err = setServiceIP(ctx, d.IP, ip, a.Deadline)
	}
	lvl := slogLevel(4)
	if a.Op != OpIPRenew {
		lvl = slogLevel(2)
	}
	if err != nil {
		lvl = slogLevel(0)
	}
	left := ""
	if !a.Deadline.IsZero() {
		left = time.Until(a.Deadline).Round(time.Millisecond).String()
	}
	d.Log.Log(context.Background(), lvl, "service ip", "op", a.Op, "group", a.Group, "ip", ip.String(), "deadline_in", left, "up", up, "err", err)
	d.post(func() { d.exec(d.m.IPDone(time.Now(), a.Group, a.ID, up, err)) })
}

func (d *Daemon) runLease(a Action) {
	l, c := d.Lease, d.Cfg
	go func() {
		ctx, cancel := context.WithTimeout(d.bg, c.LeaseTimeout)
		defer cancel()
		var r LeaseResult
		switch a.Op {
		case OpAcquire:
			r = l.Acquire(ctx, a.Group, c.ID, c.LeaseTTL)
		case OpRenew:
			r = l.Renew(ctx, a.Group, c.ID, c.LeaseTTL)
		case OpRelease:
			r.Err = l.Release(ctx, a.Group, c.ID)
			r.OK = r.Err == nil
		}
		d.Log.Log(context.Background(), slogLevel(4), "lease", "op", a.Op, "group", a.Group, "ok", r.OK, "holder", r.Holder, "err", r.Err)
		d.post(func() { d.exec(d.m.LeaseDone(time.Now(), a.Group, a.ID, r)) })
	}()
}

// StatusReply is what `gridha hagd status` shows.
type StatusReply struct {
	Node     string            `json:"node"`
	Uptime   time.Duration     `json:"uptime_ns"`
	Port     int               `json:"port"`
	Lease    string            `json:"lease"`
	DT1      time.Duration     `json:"dt1_ns"`
	DT2      time.Duration     `json:"dt2_ns"`
	Packets  map[string]uint64 `json:"packets"`
	Groups   []GroupStatus     `json:"groups"`
	Shutdown bool              `json:"shutdown,omitempty"`
	// Supervised: a supervising parent restarts this hagd and removes its
	// service IPs if it dies (gridha hagd run without --no-supervise).
	Supervised bool `json:"supervised"`
}

func (d *Daemon) status() StatusReply {
	now := time.Now()
	r := StatusReply{Node: d.Cfg.ID, Uptime: now.Sub(d.start), Port: d.Cfg.Port, Lease: d.Cfg.Lease,
		DT1: d.Cfg.DT1, DT2: d.Cfg.DT2, Packets: map[string]uint64{}, Groups: d.m.Status(now), Shutdown: d.m.shutdown,
		Supervised: Supervised()}
	d.mu.Lock()
	for k, v := range d.counters {
		r.Packets[k] = v
	}
	d.mu.Unlock()
	return r
}
