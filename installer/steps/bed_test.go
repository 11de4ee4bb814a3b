package steps_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	sshx "github.com/gridha/gridha/installer/ssh"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// bedEnv is a test bed with an inventory and a dialer over real SSH.
type bedEnv struct {
	bed    *testbed.Bed
	dialer installer.Dialer
}

func newBedEnv(t testing.TB, hosts []string, extraYAML string) *bedEnv {
	t.Helper()
	bed := testbed.New(t, hosts...)
	inv, err := inventory.Load(bed.WriteInventory(t, bed.HostsYAML(nil)+extraYAML))
	if err != nil {
		t.Fatal(err)
	}
	d := sshx.NewDialer(inv, sshx.Options{AgentSocket: "none", SSHConfigFile: "none"})
	return &bedEnv{bed: bed, dialer: d}
}

func (e *bedEnv) run(t *testing.T, mode installer.Mode, plan *installer.Plan) *installer.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := installer.Run(ctx, e.dialer, plan, installer.RunOptions{Mode: mode, Diff: true, Secrets: &installer.Redactor{}})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func onePhase(host string, ss ...installer.Step) *installer.Plan {
	return &installer.Plan{Phases: []installer.Phase{{Name: "test", Steps: map[string][]installer.Step{host: ss}}}}
}

func wantAll(t *testing.T, what string, rep *installer.Report, want installer.Status) {
	t.Helper()
	for _, r := range rep.Results {
		if r.Status != want {
			t.Errorf("%s: %s on %s: %s (%s), want %s", what, r.Step, r.Host, r.Status, r.Message, want)
		}
	}
}

func sh(t *testing.T, h *testbed.Host, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Sh(ctx, script)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", h.Name, script, err, out)
	}
	return strings.TrimSpace(out)
}

func snapshot(t *testing.T, h *testbed.Host) map[string]string {
	t.Helper()
	s, err := h.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sameSnapshot(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range a {
		if b[k] != v {
			diffs = append(diffs, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s wrote on the host: %v", what, diffs)
	}
}

// converge checks the life cycle of a plan on a host: ModeCheck and
// ModeAudit write nothing and report what would change; ModeApply changes;
// a second apply and an audit report ok everywhere.
func converge(t *testing.T, e *bedEnv, h *testbed.Host, plan *installer.Plan) *installer.Report {
	t.Helper()
	before := snapshot(t, h)
	for _, mode := range []installer.Mode{installer.ModeCheck, installer.ModeAudit} {
		rep := e.run(t, mode, plan)
		for _, r := range rep.Results {
			if !r.Status.NeedsChange() {
				t.Errorf("%s before apply: %s: %s (%s), want drift or missing", mode, r.Step, r.Status, r.Message)
			}
		}
	}
	sameSnapshot(t, "check and audit", before, snapshot(t, h))
	rep := e.run(t, installer.ModeApply, plan)
	wantAll(t, "first apply", rep, installer.StatusChanged)
	wantAll(t, "second apply", e.run(t, installer.ModeApply, plan), installer.StatusOK)
	wantAll(t, "audit after apply", e.run(t, installer.ModeAudit, plan), installer.StatusOK)
	return rep
}

// drift changes the host behind gridha's back with script, then checks that
// an audit reports want for every step, writes nothing, and that an apply
// converges again.
func drift(t *testing.T, e *bedEnv, h *testbed.Host, plan *installer.Plan, script string, want installer.Status) *installer.Report {
	t.Helper()
	sh(t, h, script)
	before := snapshot(t, h)
	rep := e.run(t, installer.ModeAudit, plan)
	wantAll(t, "audit after "+script, rep, want)
	sameSnapshot(t, "audit", before, snapshot(t, h))
	wantAll(t, "apply after "+script, e.run(t, installer.ModeApply, plan), installer.StatusChanged)
	wantAll(t, "audit after re-apply", e.run(t, installer.ModeAudit, plan), installer.StatusOK)
	return rep
}

func TestBedPrimitives(t *testing.T) {
	e := newBedEnv(t, []string{"prim1"}, "")
	h := e.bed.Host("prim1")

	t.Run("File", func(t *testing.T) {
		sh(t, h, "printf 'old\\n' > /etc/gridha-file.conf; chmod 0644 /etc/gridha-file.conf")
		f := steps.File{Path: "/etc/gridha-file.conf", Content: []byte("lease=30\n"), Mode: 0o640, Owner: "root", Group: "daemon", Backup: true}
		plan := onePhase("prim1", f, steps.File{Path: "/etc/gridha-new.conf", Content: []byte("x\n")})
		rep := e.run(t, installer.ModeAudit, plan)
		if r := rep.Results[0]; r.Status != installer.StatusDrift || !strings.Contains(r.Message, "content differs") ||
			!strings.Contains(r.Message, "mode 0644, want 0640") || !strings.Contains(r.Message, "owner root:root, want root:daemon") ||
			!strings.Contains(r.Diff, "-old") || !strings.Contains(r.Diff, "+lease=30") {
			t.Errorf("audit of a changed file: %+v", r)
		}
		if r := rep.Results[1]; r.Status != installer.StatusMissing {
			t.Errorf("audit of a new file: %+v", r)
		}
		converge(t, e, h, plan)
		if b, _ := h.ReadFile("/etc/gridha-file.conf"); string(b) != "lease=30\n" {
			t.Errorf("content %q", b)
		}
		if got := sh(t, h, "stat -c '%a %U %G' /etc/gridha-file.conf"); got != "640 root daemon" {
			t.Errorf("stat %q", got)
		}
		if b, _ := h.ReadFile("/etc/gridha-file.conf" + steps.BackupSuffix); string(b) != "old\n" {
			t.Errorf("backup %q", b)
		}
		if got := sh(t, h, "stat -c '%a %U' /etc/gridha-new.conf"); got != "644 root" {
			t.Errorf("new file stat %q", got)
		}
		// Mode only.
		r := drift(t, e, h, onePhase("prim1", f), "chmod 0666 /etc/gridha-file.conf", installer.StatusDrift)
		if m := r.Results[0].Message; !strings.Contains(m, "mode 0666, want 0640") || strings.Contains(m, "content") {
			t.Errorf("mode drift message %q", m)
		}
		// Secret: no diff, no content.
		sec := steps.File{Path: "/etc/gridha-secret", Content: []byte("hunter22\n"), Mode: 0o600, Secret: true}
		sh(t, h, "echo oldsecret > /etc/gridha-secret; chmod 600 /etc/gridha-secret")
		r = e.run(t, installer.ModeAudit, onePhase("prim1", sec))
		if res := r.Results[0]; res.Diff != "" || strings.Contains(res.Message+res.Found+res.Expected+fmt.Sprint(res.Drifted), "secret\n") || strings.Contains(res.Message, "hunter22") {
			t.Errorf("secret file leaked: %+v", res)
		}
	})

	t.Run("KeyValue", func(t *testing.T) {
		orig := "# lcg-ha\n#LEASE=10\nGROUP=rb\nLEASE=5 # old\nexport TAIL=1\n"
		sh(t, h, "mkdir -p /opt/lcg/etc && printf '"+strings.ReplaceAll(orig, "\n", "\\n")+"' > /opt/lcg/etc/lcg-ha && chmod 0600 /opt/lcg/etc/lcg-ha")
		plan := onePhase("prim1",
			steps.KeyValue{Path: "/opt/lcg/etc/lcg-ha", Key: "LEASE", Value: "30"},
			steps.KeyValue{Path: "/opt/lcg/etc/lcg-ha", Key: "PEERS", Value: "rb1 rb2", Quote: true},
			steps.KeyValue{Path: "/opt/lcg/etc/lcg-ha", Key: "TAIL", Value: "2"},
			steps.KeyValue{Path: "/opt/lcg/etc/new-kv", Key: "A", Value: "1", Mode: 0o640},
		)
		converge(t, e, h, plan)
		want := "# lcg-ha\n#LEASE=10\nGROUP=rb\nLEASE=30\nexport TAIL=2\nPEERS=\"rb1 rb2\"\n"
		if b, _ := h.ReadFile("/opt/lcg/etc/lcg-ha"); string(b) != want {
			t.Errorf("lcg-ha:\n%s\nwant:\n%s", b, want)
		}
		if got := sh(t, h, "stat -c %a /opt/lcg/etc/lcg-ha /opt/lcg/etc/new-kv | tr '\\n' ' '"); got != "600 640" {
			t.Errorf("modes %q", got)
		}
		r := drift(t, e, h, onePhase("prim1", steps.KeyValue{Path: "/opt/lcg/etc/lcg-ha", Key: "LEASE", Value: "30"}),
			"sed -i 's/^LEASE=30/LEASE=99/' /opt/lcg/etc/lcg-ha", installer.StatusDrift)
		if res := r.Results[0]; res.Found != "LEASE=99" || res.Expected != "LEASE=30" {
			t.Errorf("drift: %+v", res)
		}
		sec := steps.KeyValue{Path: "/opt/lcg/etc/lcg-ha", Key: "PASS", Value: "s3cretpw", Secret: true}
		e.run(t, installer.ModeApply, onePhase("prim1", sec))
		sh(t, h, "sed -i 's/^PASS=.*/PASS=otherpw/' /opt/lcg/etc/lcg-ha")
		res := e.run(t, installer.ModeAudit, onePhase("prim1", sec)).Results[0]
		if res.Status != installer.StatusDrift || strings.Contains(fmt.Sprintf("%+v", res), "pw") {
			t.Errorf("secret value drift: %+v", res)
		}
		// A later assignment overrides the first for /bin/sh: each form is
		// drift (the secret never shown), and install leaves one line.
		e.run(t, installer.ModeApply, onePhase("prim1", sec))
		for _, extra := range []string{`PASS=s3cretpw`, `export PASS="otherpw"`, `PASS='other'\''pw'`, `X=1; PASS=otherpw`, "PASS=\"other\\\npw\""} {
			sh(t, h, "printf '%s\\n' "+installer.ShellQuote(extra)+" >> /opt/lcg/etc/lcg-ha")
			res := e.run(t, installer.ModeAudit, onePhase("prim1", sec)).Results[0]
			if res.Status != installer.StatusDrift || strings.Contains(fmt.Sprintf("%+v", res), "pw") {
				t.Errorf("%s appended: %+v", extra, res)
			}
			if strings.HasPrefix(extra, "X=1") {
				// Not a line gridha edits: install refuses, naming it.
				res := e.run(t, installer.ModeApply, onePhase("prim1", sec)).Results[0]
				if res.Status != installer.StatusFailed || !strings.Contains(res.Error, "line 8: PASS is set in a line with other commands") {
					t.Errorf("shared line: %+v", res)
				}
				sh(t, h, "sed -i '$d' /opt/lcg/etc/lcg-ha")
				continue
			}
			e.run(t, installer.ModeApply, onePhase("prim1", sec))
			if got := sh(t, h, ". /opt/lcg/etc/lcg-ha; echo \"$PASS\"; grep -c PASS /opt/lcg/etc/lcg-ha"); got != "s3cretpw\n1" {
				t.Errorf("after install with %s appended: %q", extra, got)
			}
		}
	})

	t.Run("DirSymlinkAbsent", func(t *testing.T) {
		plan := onePhase("prim1",
			steps.Dir{Path: "/var/gridha-d/sub", Mode: 0o750, Owner: "daemon", Group: "daemon"},
			steps.Symlink{Path: "/var/gridha-d/link", Target: "/var/gridha-d/sub"},
			steps.Absent{Path: "/var/gridha-d/gone"},
		)
		sh(t, h, "mkdir -p /var/gridha-d && touch /var/gridha-d/gone")
		converge(t, e, h, plan)
		if got := sh(t, h, "stat -c '%F %a %U %G' /var/gridha-d/sub; readlink /var/gridha-d/link; test -e /var/gridha-d/gone && echo exists || echo gone"); got != "directory 750 daemon daemon\n/var/gridha-d/sub\ngone" {
			t.Errorf("state:\n%s", got)
		}
		r := drift(t, e, h, onePhase("prim1", steps.Symlink{Path: "/var/gridha-d/link", Target: "/var/gridha-d/sub"}),
			"ln -sfn /tmp /var/gridha-d/link", installer.StatusDrift)
		if res := r.Results[0]; res.Found != "-> /tmp" || res.Expected != "-> /var/gridha-d/sub" {
			t.Errorf("symlink drift: %+v", res)
		}
		drift(t, e, h, onePhase("prim1", steps.Dir{Path: "/var/gridha-d/sub", Mode: 0o750, Owner: "daemon", Group: "daemon"}),
			"chown root /var/gridha-d/sub", installer.StatusDrift)

		// A real directory is never replaced by a link; a non-empty one is
		// not removed unless Recursive.
		sh(t, h, "mkdir -p /var/gridha-d/real && touch /var/gridha-d/real/data")
		rep := e.run(t, installer.ModeApply, onePhase("prim1",
			steps.Symlink{Path: "/var/gridha-d/real", Target: "/tmp"},
			steps.Absent{Path: "/var/gridha-d/real"}))
		if r := rep.Results[0]; r.Status != installer.StatusFailed || !strings.Contains(r.Message, "is a directory, not a symlink; refusing") {
			t.Errorf("symlink over a dir: %+v", r)
		}
		rep = e.run(t, installer.ModeApply, onePhase("prim1", steps.Absent{Path: "/var/gridha-d/real"}))
		if r := rep.Results[0]; r.Status != installer.StatusFailed || !strings.Contains(r.Message, "non-empty directory") {
			t.Errorf("absent non-empty dir: %+v", r)
		}
		if got := sh(t, h, "ls /var/gridha-d/real"); got != "data" {
			t.Errorf("refused steps touched the dir: %q", got)
		}
		wantAll(t, "recursive absent", e.run(t, installer.ModeApply, onePhase("prim1", steps.Absent{Path: "/var/gridha-d/real", Recursive: true})), installer.StatusChanged)
		if got := sh(t, h, "test -e /var/gridha-d/real && echo exists || echo gone"); got != "gone" {
			t.Errorf("recursive absent left %s", got)
		}
	})

	t.Run("Service", func(t *testing.T) {
		if err := h.WriteFile("/etc/init.d/gridha-dummy", []byte(dummyInit), 0o755); err != nil {
			t.Fatal(err)
		}
		svc := steps.Service{Name: "gridha-dummy", Boot: steps.BootEnabled, State: steps.StateRunning}
		plan := onePhase("prim1", svc)
		converge(t, e, h, plan)
		if got := sh(t, h, "ls /etc/rc2.d /etc/rc3.d | grep -c '^S..gridha-dummy$'"); got != "2" {
			t.Errorf("S links in rc2.d and rc3.d: %s", got)
		}
		sh(t, h, "/etc/init.d/gridha-dummy status")
		r := drift(t, e, h, plan, "/etc/init.d/gridha-dummy stop", installer.StatusDrift)
		if m := r.Results[0].Message; !strings.Contains(m, "not running, want running") {
			t.Errorf("stopped service drift: %q", m)
		}
		off := onePhase("prim1", steps.Service{Name: "gridha-dummy", Boot: steps.BootDisabled, State: steps.StateStopped})
		wantAll(t, "disable", e.run(t, installer.ModeApply, off), installer.StatusChanged)
		if got := sh(t, h, "ls /etc/rc2.d | grep -c '^S..gridha-dummy$' || true; /etc/init.d/gridha-dummy status; echo $?"); got != "0\n3" {
			t.Errorf("after disable and stop: %q", got)
		}
		wantAll(t, "disabled audit", e.run(t, installer.ModeAudit, off), installer.StatusOK)
		// Re-enabled behind gridha's back: drift.
		r = drift(t, e, h, off, "update-rc.d gridha-dummy enable >/dev/null 2>&1", installer.StatusDrift)
		if m := r.Results[0].Message; !strings.Contains(m, "enabled at boot, want disabled") {
			t.Errorf("re-enabled drift: %q", m)
		}
		// An init script whose daemon keeps the inherited stdout open (as
		// many old ones do) must not hold the SSH session; one whose start
		// fails is reported with its output.
		leaky := strings.ReplaceAll(dummyInit, "sleep 1000000 </dev/null >/dev/null 2>&1 &", "sleep 1000000 &")
		leaky = strings.ReplaceAll(leaky, "gridha-dummy", "gridha-leaky")
		broken := strings.ReplaceAll(dummyInit, "start) running && exit 0", "start) echo 'cannot bind port 7772' >&2; exit 1")
		broken = strings.ReplaceAll(broken, "gridha-dummy", "gridha-broken")
		if err := h.WriteFile("/etc/init.d/gridha-leaky", []byte(leaky), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := h.WriteFile("/etc/init.d/gridha-broken", []byte(broken), 0o755); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rep := e.run(t, installer.ModeApply, onePhase("prim1", steps.Service{Name: "gridha-leaky", State: steps.StateRunning}))
		if r := rep.Results[0]; r.Status != installer.StatusChanged || time.Since(start) > 30*time.Second {
			t.Errorf("leaky start: %+v after %s", r, time.Since(start))
		}
		rep = e.run(t, installer.ModeApply, onePhase("prim1", steps.Service{Name: "gridha-broken", State: steps.StateRunning}))
		if r := rep.Results[0]; r.Status != installer.StatusFailed || !strings.Contains(r.Message, "cannot bind port 7772") {
			t.Errorf("failing start: %+v", r)
		}
		res := e.run(t, installer.ModeAudit, onePhase("prim1", steps.Service{Name: "no-such-svc", State: steps.StateRunning})).Results[0]
		if res.Status != installer.StatusMissing || !strings.Contains(res.Message, "not installed") {
			t.Errorf("missing service: %+v", res)
		}
	})

	t.Run("SamePhaseSeesEarlierChanges", func(t *testing.T) {
		init := strings.ReplaceAll(dummyInit, "gridha-dummy", "gridha-order")
		plan := onePhase("prim1",
			steps.File{Path: "/etc/init.d/gridha-order", Content: []byte(init), Mode: 0o755},
			steps.Service{Name: "gridha-order", Boot: steps.BootEnabled, State: steps.StateRunning},
			steps.Dir{Path: "/srv/gridha-order"},
			steps.File{Path: "/srv/gridha-order/conf", Content: []byte("a\n")},
		)
		rep := e.run(t, installer.ModeApply, plan)
		wantAll(t, "one apply", rep, installer.StatusChanged)
		wantAll(t, "second apply", e.run(t, installer.ModeApply, plan), installer.StatusOK)
		sh(t, h, "/etc/init.d/gridha-order status && /etc/init.d/gridha-order stop")
	})

	t.Run("User", func(t *testing.T) {
		k1 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGridhaKeyOne0000000000000000000000000001 one@test"
		k2 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGridhaKeyTwo0000000000000000000000000002 two@test"
		u := steps.User{Name: "edguser", Home: "/home/edguser", Shell: "/bin/sh", System: true, Group: "edguser", AuthorizedKeys: []string{k1, k2}}
		plan := onePhase("prim1", u)
		converge(t, e, h, plan)
		if got := sh(t, h, "getent passwd edguser | cut -d: -f6,7; id -gn edguser; stat -c '%a %U' /home/edguser/.ssh /home/edguser/.ssh/authorized_keys"); got != "/home/edguser:/bin/sh\nedguser\n700 edguser\n600 edguser" {
			t.Errorf("user state:\n%s", got)
		}
		if b, _ := h.ReadFile("/home/edguser/.ssh/authorized_keys"); string(b) != k1+"\n"+k2+"\n" {
			t.Errorf("authorized_keys %q", b)
		}
		r := drift(t, e, h, plan, "sed -i '/two@test/d' /home/edguser/.ssh/authorized_keys; echo 'ssh-rsa AAAAB3NzaExtra extra@evil' >> /home/edguser/.ssh/authorized_keys", installer.StatusDrift)
		if m := r.Results[0].Message; !strings.Contains(m, "missing ssh-ed25519") || !strings.Contains(m, "two@test") || !strings.Contains(m, "extra ssh-rsa") || !strings.Contains(m, "extra@evil") {
			t.Errorf("keys drift message %q", m)
		}
		drift(t, e, h, plan, "usermod -s /bin/bash edguser; chmod 0755 /home/edguser/.ssh", installer.StatusDrift)
	})

	t.Run("Mount", func(t *testing.T) {
		m := steps.Mount{Source: "gridha-tmp", Target: "/mnt/gridha-m", FSType: "tmpfs", Options: []string{"size=1m", "noexec"}, Fstab: true, Mounted: true}
		plan := onePhase("prim1", m)
		converge(t, e, h, plan)
		if got := sh(t, h, "grep ' /mnt/gridha-m ' /proc/mounts | cut -d' ' -f1-3; grep -c gridha-m /etc/fstab"); got != "gridha-tmp /mnt/gridha-m tmpfs\n1" {
			t.Errorf("mount state:\n%s", got)
		}
		if b, _ := h.ReadFile("/etc/fstab"); !strings.Contains(string(b), "gridha-tmp /mnt/gridha-m tmpfs size=1m,noexec 0 0\n") {
			t.Errorf("fstab:\n%s", b)
		}
		r := drift(t, e, h, plan, "mount -o remount,exec /mnt/gridha-m", installer.StatusDrift)
		if msg := r.Results[0].Message; !strings.Contains(msg, "lacks noexec") {
			t.Errorf("options drift %q", msg)
		}
		drift(t, e, h, plan, "umount /mnt/gridha-m", installer.StatusDrift)
		r = drift(t, e, h, plan, "sed -i 's/size=1m,noexec/defaults/' /etc/fstab", installer.StatusDrift)
		if res := r.Results[0]; !strings.Contains(res.Message, "fstab line") || !strings.Contains(res.Diff, "+gridha-tmp /mnt/gridha-m tmpfs size=1m,noexec 0 0") {
			t.Errorf("fstab drift: %+v", res)
		}
		gone := onePhase("prim1", steps.Mount{Target: "/mnt/gridha-m", Fstab: false, Mounted: false})
		wantAll(t, "unmount", e.run(t, installer.ModeApply, gone), installer.StatusChanged)
		if got := sh(t, h, "grep -c gridha-m /proc/mounts /etc/fstab || true"); got != "/proc/mounts:0\n/etc/fstab:0" {
			t.Errorf("after removal: %q", got)
		}
	})

	t.Run("Exec", func(t *testing.T) {
		x := steps.Exec{
			Name:  "seed state file",
			Probe: "cat /var/gridha-exec 2>/dev/null",
			Check: func(r installer.ProbeResult) (bool, string) {
				return string(r.Stdout) == "token-from-stdin\n", fmt.Sprintf("%q", r.Stdout)
			},
			Apply: "cat > /var/gridha-exec",
			Stdin: func() ([]byte, error) { return []byte("token-from-stdin\n"), nil },
		}
		converge(t, e, h, onePhase("prim1", x))
		if b, _ := h.ReadFile("/var/gridha-exec"); string(b) != "token-from-stdin\n" {
			t.Errorf("exec wrote %q", b)
		}
	})
}

var dummyInit = standins.SleepInitScript("gridha-dummy")
