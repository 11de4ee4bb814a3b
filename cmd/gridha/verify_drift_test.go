package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/roles"
	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

// The drift kit: a test-only role with one step of every primitive kind
// that base and state-server do not already have, in two phases (the
// service needs its init script from the first). The inventory only knows
// gridha's own role names, so the kit plays "base": base's steps plus its
// own.
const (
	kitDir     = "/etc/gridha-kit"
	kitService = "gridha-kit"
	kitUser    = "kituser"
	kitMount   = "/mnt/gridha-kit"
	kitMarker  = "/var/lib/gridha-kit.marker"
	// kitSecret is the content of a Secret file: it must never reach any
	// output, nor may what a hand edit put there.
	kitSecret      = "kit-WANTED-secret-7f3a"
	kitFoundSecret = "kit-FOUND-secret-91c2"
	kitLBPassword  = "kit-LB-password-5d1e"
	kitKey1        = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGridhaKitKeyOne000000000000000000000001 one@kit"
	kitKey2        = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGridhaKitKeyTwo000000000000000000000002 two@kit"
)

// kitBase is the base role plus the drift kit on every base host.
type kitBase struct{ roles.Base }

func (kitBase) Summary() string {
	return "base + test-only drift kit: one step of every primitive kind"
}

func (r kitBase) Plan(inv *inventory.Inventory, opts roles.Options) (*installer.Plan, error) {
	base, err := r.Base.Plan(inv, opts)
	if err != nil {
		return nil, err
	}
	files := installer.Phase{Name: "kit files", Steps: map[string][]installer.Step{}}
	services := installer.Phase{Name: "kit services", Steps: map[string][]installer.Step{}}
	for _, h := range inv.HostsWithRole("base") {
		if !opts.InLimit(h.Name) {
			continue
		}
		files.Steps[h.Name] = kitFileSteps()
		services.Steps[h.Name] = []installer.Step{steps.Service{Name: kitService, Boot: steps.BootDisabled, State: steps.StateStopped}}
	}
	return roles.MergePlans([]string{"base", "kit"}, []*installer.Plan{base, {Phases: []installer.Phase{files, services}}})
}

func kitFileSteps() []installer.Step {
	return []installer.Step{
		steps.Dir{Path: kitDir, Mode: 0o755, Owner: "root", Group: "root"},
		steps.File{Path: kitDir + "/hagd.conf", Content: []byte("group rb-a\nlease 30\npeers rb1 rb2\n"), Mode: 0o640, Owner: "root", Group: "daemon", Backup: true},
		steps.File{Path: kitDir + "/hagd.key", Content: []byte(kitSecret + "\n"), Mode: 0o600, Owner: "root", Group: "root", Secret: true},
		steps.KeyValue{Path: kitDir + "/lcg-ha", Key: "LEASE", Value: "30"},
		steps.KeyValue{Path: kitDir + "/lcg-ha", Key: "PEERS", Value: "rb1 rb2", Quote: true},
		steps.Symlink{Path: kitDir + "/current", Target: kitDir + "/hagd.conf"},
		steps.Absent{Path: kitDir + "/stale.pid"},
		steps.File{Path: "/etc/init.d/" + kitService, Content: []byte(kitInit), Mode: 0o755, Owner: "root", Group: "root"},
		steps.User{Name: kitUser, Home: "/home/" + kitUser, Shell: "/bin/sh", System: true, AuthorizedKeys: []string{kitKey1, kitKey2}},
		steps.Mount{Source: "gridha-kit", Target: kitMount, FSType: "tmpfs", Options: []string{"size=1m", "nodev"}, Fstab: true, Mounted: true},
		steps.Exec{Name: "kit marker", Probe: "cat " + kitMarker + " 2>/dev/null", Apply: "echo converged > " + kitMarker,
			Check: func(r installer.ProbeResult) (bool, string) {
				return string(r.Stdout) == "converged\n", fmt.Sprintf("%q", r.Stdout)
			}},
	}
}

// kitInit is a SysV init script (the test bed has no systemd) for a
// service that is a sleep.
var kitInit = standins.SleepInitScript("gridha-kit")

// driftCase is one way to break the host by hand.
type driftCase struct {
	name   string
	breaks string           // shell run on the host as root
	step   string           // the one step that must report it
	status installer.Status // drift or missing
	want   []string         // in the step's message/expected/found/diff (json) and in the text output
	// props are the drifted properties JSON names (in this order) and the
	// JUnit failure message lists; nil: any, at least one.
	props []string
	// after is an admin's check once install repaired it: script and output.
	after, afterWant string
}

// kitVerify runs verify in every format against the bed and checks what
// every format must say whatever the case: exit code, and no secret.
type kitVerify struct {
	t       *testing.T
	reg     *roles.Registry
	inv     string
	host    *testbed.Host
	secrets []string
}

var formats = report.Formats

func (k *kitVerify) run(args ...string) cliResult {
	k.t.Helper()
	r := gridhaWith(k.t, k.reg, true, append(args, "-i", k.inv)...)
	for _, s := range k.secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			k.t.Errorf("gridha %s: secret %q in the output", strings.Join(args, " "), s)
		}
	}
	return r
}

// verifyAll runs verify in every format, proving each of the first four
// wrote nothing on the host, and returns the outputs by format. Formats
// differ only in the reporter, so prometheus (the fifth) skips the host
// snapshots, which cost more than its run.
func (k *kitVerify) verifyAll() map[string]cliResult {
	k.t.Helper()
	out := map[string]cliResult{}
	before := snapshots(k.t, k.host)
	for i, f := range formats {
		out[f] = k.run("verify", "-o", f)
		if i >= 4 {
			continue
		}
		after := snapshots(k.t, k.host)
		assertUnchanged(k.t, "verify -o "+f, before, after)
		before = after
	}
	return out
}

func parseJSONReport(t *testing.T, r cliResult) report.JSONDocument {
	t.Helper()
	var doc report.JSONDocument
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("json report: %v\n%s", err, r.stdout)
	}
	return doc
}

// junitDoc is the part of --output junit the test reads.
type junitDoc struct {
	Suites []struct {
		Name  string `xml:"name,attr"`
		Cases []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Type    string `xml:"type,attr"`
				Message string `xml:"message,attr"`
			} `xml:"failure"`
			Error *struct {
				Type string `xml:"type,attr"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// sshWithinBudget: one connection and at most 3 sessions per host.
func sshWithinBudget(t *testing.T, doc report.JSONDocument) {
	t.Helper()
	for _, h := range doc.Hosts {
		if !h.Unreachable && (h.SSH.Connections != 1 || h.SSH.Sessions > 3) {
			t.Errorf("%s: verify used %d connections, %d sessions (want 1, ≤ 3)", h.Name, h.SSH.Connections, h.SSH.Sessions)
		}
	}
}

// TestVerifyDriftOnBed converges base + state-server + the drift kit on one
// host, then for each kind of drift breaks the host by hand and checks that
// verify reports exactly that step, with the right status, expected/found
// and diff, in every format with the documented exit codes, writes nothing,
// uses one connection and ≤ 3 sessions, and never shows a secret; install
// repairs it and verify is clean again. Last, the host unreachable: exit 2,
// CRITICAL.
func TestVerifyDriftOnBed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.New(t, "kit1")
	h := bed.Host("kit1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := h.StartMariaDB(ctx); err != nil {
		t.Fatal(err)
	}
	rb1Addr := bed.SpareAddr(1) // an rb node served by kit1; never dialled
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "lb-password")
	if err := os.WriteFile(pwFile, []byte(kitLBPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The export lives in /srv, which the bed's hosts have to themselves
	// (/export would be this machine's own, shared with other beds).
	inv := bed.WriteInventory(t, bed.HostsYAML(map[string][]string{"kit1": {"base", "state-server"}})+
		fmt.Sprintf(`  rb1:
    address: %s
    hostname: rb1.testbed.gridha
    roles: [rb-node]
roles:
  base:
    motd: "verify drift test (managed by gridha)"
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: %s
  rb-node:
    state_server: kit1
    groups:
      rb-a: {service_ip: %s/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
`, rb1Addr, pwFile, bed.SpareAddr(2)))
	// A short connect timeout for the unreachable check at the end.
	body, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inv, []byte(strings.Replace(string(body), "defaults:\n", "defaults:\n  connect_timeout: 3s\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &kitVerify{t: t, reg: roles.NewRegistry(kitBase{}, roles.StateServer{}), inv: inv, host: h,
		secrets: []string{kitSecret, kitFoundSecret, kitLBPassword}}

	if r := k.run("install", "base", "state-server"); r.code != 0 {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := sh(t, h, "cat "+kitDir+"/lcg-ha; readlink "+kitDir+"/current; grep -c ' "+kitMount+" tmpfs' /proc/mounts; stat -c '%a %U:%G' "+kitDir+"/hagd.conf /etc/ssh/authorized_keys/snfs"); got !=
		"LEASE=30\nPEERS=\"rb1 rb2\"\n"+kitDir+"/hagd.conf\n1\n640 root:daemon\n644 root:root" {
		t.Fatalf("host after install:\n%s", got)
	}
	clean := func(t *testing.T, what string) {
		t.Helper()
		r := k.run("verify", "-o", "json")
		doc := parseJSONReport(t, r)
		if r.code != 0 || doc.ExitCode != 0 {
			t.Fatalf("%s: verify exit %d, totals %v", what, r.code, doc.Totals)
		}
		sshWithinBudget(t, doc)
	}
	// Converged: every format clean, nothing written, one session.
	for f, r := range k.verifyAll() {
		if r.code != 0 {
			t.Errorf("verify -o %s on the converged host: exit %d", f, r.code)
		}
	}
	clean(t, "converged")
	checkFactAgent(t, k)

	snfsKeys := sh(t, h, "cat /etc/ssh/authorized_keys/snfs")
	if !strings.Contains(snfsKeys, `from="`+rb1Addr+`"`) {
		t.Fatalf("snfs authorized_keys lacks rb1's key:\n%s", snfsKeys)
	}
	cases := []driftCase{
		{name: "file content", props: []string{"content"}, breaks: "echo 'lease 5' >> " + kitDir + "/hagd.conf",
			step: "file " + kitDir + "/hagd.conf", status: installer.StatusDrift, want: []string{"content differs", "-lease 5"},
			after: "cat " + kitDir + "/hagd.conf", afterWant: "group rb-a\nlease 30\npeers rb1 rb2"},
		{name: "file mode", props: []string{"mode"}, breaks: "chmod 0666 " + kitDir + "/hagd.conf",
			step: "file " + kitDir + "/hagd.conf", status: installer.StatusDrift, want: []string{"mode 0666, want 0640"},
			after: "stat -c %a " + kitDir + "/hagd.conf", afterWant: "640"},
		// One step, two properties: JSON and JUnit name both.
		{name: "file mode and content", props: []string{"content", "mode"}, breaks: "chmod 0604 " + kitDir + "/hagd.conf; echo 'lease 7' >> " + kitDir + "/hagd.conf",
			step: "file " + kitDir + "/hagd.conf", status: installer.StatusDrift, want: []string{"content differs", "mode 0604, want 0640", "-lease 7"},
			after: "stat -c %a " + kitDir + "/hagd.conf; cat " + kitDir + "/hagd.conf", afterWant: "640\ngroup rb-a\nlease 30\npeers rb1 rb2"},
		{name: "file owner", props: []string{"owner"}, breaks: "chown daemon " + kitDir + "/hagd.conf",
			step: "file " + kitDir + "/hagd.conf", status: installer.StatusDrift, want: []string{"owner daemon:daemon, want root:daemon"},
			after: "stat -c %U:%G " + kitDir + "/hagd.conf", afterWant: "root:daemon"},
		{name: "file content with a secret in it", breaks: "echo 'mysql_password=" + kitLBPassword + "' >> " + kitDir + "/hagd.conf",
			step: "file " + kitDir + "/hagd.conf", status: installer.StatusDrift, want: []string{"content differs", "-mysql_password=********"}},
		{name: "file removed", props: []string{"kind"}, breaks: "rm " + kitDir + "/hagd.conf",
			step: "file " + kitDir + "/hagd.conf", status: installer.StatusMissing, want: []string{"does not exist", "+peers rb1 rb2"}},
		{name: "secret file content", props: []string{"content"}, breaks: "echo " + kitFoundSecret + " > " + kitDir + "/hagd.key",
			step: "file " + kitDir + "/hagd.key", status: installer.StatusDrift, want: []string{"content differs", "secret content not shown"},
			after: "cat " + kitDir + "/hagd.key", afterWant: kitSecret},
		{name: "KEY=value changed", props: []string{"value"}, breaks: "sed -i 's/^LEASE=30/LEASE=99/' " + kitDir + "/lcg-ha",
			step: "keyvalue " + kitDir + "/lcg-ha LEASE", status: installer.StatusDrift, want: []string{"LEASE=99, want LEASE=30", "-LEASE=99", "+LEASE=30"},
			after: "grep LEASE " + kitDir + "/lcg-ha", afterWant: "LEASE=30"},
		// /bin/sh uses the last assignment: every other one is drift.
		{name: "KEY=value assigned again", breaks: "echo 'LEASE=30' >> " + kitDir + "/lcg-ha",
			step: "keyvalue " + kitDir + "/lcg-ha LEASE", status: installer.StatusDrift, want: []string{"LEASE is assigned 2 times", "/bin/sh uses the last"},
			after: ". " + kitDir + "/lcg-ha; echo $LEASE; grep -c LEASE= " + kitDir + "/lcg-ha", afterWant: "30\n1"},
		{name: "KEY=value exported again", breaks: "echo 'export LEASE=99' >> " + kitDir + "/lcg-ha",
			step: "keyvalue " + kitDir + "/lcg-ha LEASE", status: installer.StatusDrift, want: []string{"LEASE is assigned 2 times", "export LEASE=99"},
			after: ". " + kitDir + "/lcg-ha; echo $LEASE; grep -c LEASE= " + kitDir + "/lcg-ha", afterWant: "30\n1"},
		{name: "KEY=value quoted differently, continued", breaks: "printf '%s\\n' \"LEASE='9'\\\\\" 9 >> " + kitDir + "/lcg-ha",
			step: "keyvalue " + kitDir + "/lcg-ha LEASE", status: installer.StatusDrift, want: []string{"LEASE is assigned 2 times"},
			after: ". " + kitDir + "/lcg-ha; echo $LEASE; grep -c LEASE= " + kitDir + "/lcg-ha", afterWant: "30\n1"},
		{name: "KEY=value removed", props: []string{"value"}, breaks: "sed -i '/^PEERS=/d' " + kitDir + "/lcg-ha",
			step: "keyvalue " + kitDir + "/lcg-ha PEERS", status: installer.StatusMissing, want: []string{"PEERS not set", `+PEERS="rb1 rb2"`}},
		{name: "symlink target", props: []string{"target"}, breaks: "ln -sfn /tmp " + kitDir + "/current",
			step: "symlink " + kitDir + "/current", status: installer.StatusDrift, want: []string{"points to /tmp, want " + kitDir + "/hagd.conf"},
			after: "readlink " + kitDir + "/current", afterWant: kitDir + "/hagd.conf"},
		{name: "path that should be absent", props: []string{"kind"}, breaks: "echo 4242 > " + kitDir + "/stale.pid",
			step: "absent " + kitDir + "/stale.pid", status: installer.StatusDrift, want: []string{kitDir + "/stale.pid"},
			after: "test -e " + kitDir + "/stale.pid && echo there || echo gone", afterWant: "gone"},
		{name: "mount unmounted", props: []string{"mounted"}, breaks: "umount " + kitMount,
			step: "mount " + kitMount, status: installer.StatusDrift, want: []string{"not mounted"},
			after: "grep -c ' " + kitMount + " tmpfs' /proc/mounts", afterWant: "1"},
		{name: "fstab line changed", props: []string{"fstab"}, breaks: "sed -i 's/size=1m,nodev/defaults/' /etc/fstab",
			step: "mount " + kitMount, status: installer.StatusDrift, want: []string{"fstab line", "+gridha-kit " + kitMount + " tmpfs size=1m,nodev 0 0", "-gridha-kit " + kitMount + " tmpfs defaults 0 0"},
			after: "grep ' " + kitMount + " ' /etc/fstab", afterWant: "gridha-kit " + kitMount + " tmpfs size=1m,nodev 0 0"},
		{name: "service re-enabled at boot", props: []string{"boot"}, breaks: "update-rc.d " + kitService + " defaults >/dev/null 2>&1; ls /etc/rc2.d | grep -q '^S..gridha-kit$'",
			step: "service " + kitService, status: installer.StatusDrift, want: []string{"enabled at boot, want disabled"},
			after: "ls /etc/rc2.d /etc/rc3.d | grep -c '^S..gridha-kit$' || true", afterWant: "0"},
		{name: "service started", props: []string{"state"}, breaks: "/etc/init.d/" + kitService + " start",
			step: "service " + kitService, status: installer.StatusDrift, want: []string{"running, want stopped"},
			after: "/etc/init.d/" + kitService + " status; echo $?", afterWant: "3"},
		{name: "authorized key removed", props: []string{"authorized_keys"}, breaks: "sed -i '/two@kit/d' /home/" + kitUser + "/.ssh/authorized_keys",
			step: "user " + kitUser, status: installer.StatusDrift, want: []string{"missing ssh-ed25519", "two@kit"},
			after: "grep -c @kit /home/" + kitUser + "/.ssh/authorized_keys", afterWant: "2"},
		{name: "authorized key added", breaks: "echo 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCextraKey extra@evil' >> /home/" + kitUser + "/.ssh/authorized_keys",
			step: "user " + kitUser, status: installer.StatusDrift, want: []string{"extra ssh-rsa", "extra@evil"},
			after: "grep -c extra@evil /home/" + kitUser + "/.ssh/authorized_keys || true", afterWant: "0"},
		{name: "MySQL grant added by hand", props: []string{"grants"}, breaks: "mariadb --socket=" + testbed.MariaDBSocket + " -e \"GRANT SELECT ON mysql.* TO 'lbserver'@'" + rb1Addr + "'\"",
			step: "mysql user lbserver@" + rb1Addr, status: installer.StatusDrift, want: []string{"extra grant: GRANT SELECT ON `mysql`.* TO `lbserver`@`" + rb1Addr + "`"},
			after: "mariadb --socket=" + testbed.MariaDBSocket + " -N -e \"SHOW GRANTS FOR 'lbserver'@'" + rb1Addr + "'\" | grep -c mysql || true", afterWant: "0"},
		{name: "state server key removed", props: []string{"content"}, breaks: "sed -i '/from=\"" + rb1Addr + "\"/d' /etc/ssh/authorized_keys/snfs",
			step: "file /etc/ssh/authorized_keys/snfs", status: installer.StatusDrift, want: []string{"content differs; missing ssh-ed25519"},
			after: "cat /etc/ssh/authorized_keys/snfs", afterWant: strings.TrimSpace(snfsKeys)},
		{name: "node login no longer confined", props: []string{"match_block", "effective"}, breaks: "sed -i '/^# BEGIN gridha state-server/,/^# END gridha state-server/d' /etc/ssh/sshd_config",
			step: "sshd confinement of snfs", status: installer.StatusDrift, want: []string{"Match block", `chrootdirectory is "none", want "/srv/rb-state"`},
			after: "grep -c '^Match User snfs' /etc/ssh/sshd_config", afterWant: "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k.t = t
			defer func() { k.t = nil }()
			sh(t, h, tc.breaks)
			out := k.verifyAll()
			checkDrift(t, tc, out)

			// install puts it right; verify is clean again.
			r := k.run("install", "base", "state-server")
			if r.code != 0 || !regexp.MustCompile(`(?m)^\s+changed\s+`+regexp.QuoteMeta(tc.step)).MatchString(r.stdout) {
				t.Errorf("install after %s: exit %d, want 0 with %q changed", tc.name, r.code, tc.step)
			}
			if tc.after != "" {
				if got := sh(t, h, tc.after); got != tc.afterWant {
					t.Errorf("after install: %s = %q, want %q", tc.after, got, tc.afterWant)
				}
			}
			clean(t, "after repairing "+tc.name)
		})
	}

	// The host unreachable: exit 2 in text/json/junit, CRITICAL for Nagios.
	k.t = t
	if err := h.LinkDown(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.LinkUp() }()
	for _, f := range formats {
		r := k.run("verify", "-o", f)
		if r.code != report.ExitFailed {
			t.Errorf("verify -o %s, host down: exit %d, want 2", f, r.code)
		}
		switch f {
		case "text":
			if !strings.Contains(r.stdout, "kit1 : ok=0 changed=0 failed=0 unreachable=1") {
				t.Errorf("text recap of an unreachable host:\n%s", r.stdout)
			}
		case "json":
			doc := parseJSONReport(t, r)
			if doc.ExitCode != 2 || len(doc.Hosts) != 1 || !doc.Hosts[0].Unreachable {
				t.Errorf("json, host down: exit %d, hosts %+v", doc.ExitCode, doc.Hosts)
			}
		case "junit":
			if !strings.Contains(r.stdout, `<error type="unreachable"`) {
				t.Errorf("junit, host down:\n%s", r.stdout)
			}
		case "nagios":
			if !strings.HasPrefix(r.stdout, "GRIDHA CRITICAL - 1 of 1 hosts: kit1: unreachable | ") {
				t.Errorf("nagios, host down: %q", r.stdout)
			}
		case "prometheus":
			v := parseProm(t, r.stdout)
			if v[`gridha_host_unreachable{command="verify",mode="verify",host="kit1"}`] != 1 ||
				v[`gridha_last_run_exit_code{command="verify",mode="verify"}`] != 2 {
				t.Errorf("prometheus, host down:\n%s", r.stdout)
			}
		}
	}
}

// checkDrift asserts what each format says about a case.
func checkDrift(t *testing.T, tc driftCase, out map[string]cliResult) {
	t.Helper()
	st := string(tc.status)

	text := out["text"]
	if text.code != report.ExitDrift {
		t.Errorf("text: exit %d, want 1", text.code)
	}
	if !regexp.MustCompile(`(?m)^\s+` + st + `\s+` + regexp.QuoteMeta(tc.step) + `\b`).MatchString(text.stdout) {
		t.Errorf("text does not say %s %s:\n%s", st, tc.step, text.stdout)
	}
	for _, w := range tc.want {
		if !strings.Contains(text.stdout, w) {
			t.Errorf("text lacks %q", w)
		}
	}
	for _, p := range tc.props {
		if !regexp.MustCompile(`(?m)^\s+` + p + `: expected .*, found `).MatchString(text.stdout) {
			t.Errorf("text does not name the drifted %s:\n%s", p, text.stdout)
		}
	}

	js := out["json"]
	doc := parseJSONReport(t, js)
	if js.code != report.ExitDrift || doc.ExitCode != report.ExitDrift {
		t.Errorf("json: exit %d, document says %d, want 1", js.code, doc.ExitCode)
	}
	sshWithinBudget(t, doc)
	var bad []installer.Result
	for _, hd := range doc.Hosts {
		for _, res := range hd.Results {
			if res.Status != installer.StatusOK {
				bad = append(bad, res)
			}
		}
	}
	if len(bad) != 1 || bad[0].Step != tc.step || bad[0].Status != tc.status {
		t.Errorf("json: want exactly %s %s, got %+v", st, tc.step, bad)
	} else {
		res := bad[0]
		if res.Expected == "" || res.Found == "" {
			t.Errorf("json: %s lacks expected or found: %+v", tc.step, res)
		}
		var names []string
		for _, p := range res.Drifted {
			names = append(names, p.Property)
			if p.Expected == p.Found {
				t.Errorf("json: %s: property %s expected and found alike (%q)", tc.step, p.Property, p.Found)
			}
		}
		if len(names) == 0 || tc.props != nil && strings.Join(names, ",") != strings.Join(tc.props, ",") {
			t.Errorf("json: %s drifted on %q, want %q: %+v", tc.step, names, tc.props, res.Drifted)
		}
		all := res.Message + "\n" + res.Expected + "\n" + res.Found + "\n" + res.Diff
		for _, w := range tc.want {
			if !strings.Contains(all, w) {
				t.Errorf("json result lacks %q: %+v", w, res)
			}
		}
	}

	ju := out["junit"]
	if ju.code != report.ExitDrift {
		t.Errorf("junit: exit %d, want 1", ju.code)
	}
	var jd junitDoc
	if err := xml.Unmarshal([]byte(ju.stdout), &jd); err != nil {
		t.Errorf("junit: %v\n%s", err, ju.stdout)
	}
	var failures []string
	for _, s := range jd.Suites {
		for _, c := range s.Cases {
			if c.Failure != nil {
				failures = append(failures, s.Name+" "+c.Failure.Type+" "+c.Name)
				if tc.props != nil && !strings.HasPrefix(c.Failure.Message, "drifted "+strings.Join(tc.props, ", ")+": ") {
					t.Errorf("junit failure message %q does not name %q first", c.Failure.Message, tc.props)
				}
			}
			if c.Error != nil {
				failures = append(failures, s.Name+" error "+c.Name)
			}
		}
	}
	if want := "kit1 " + st + " " + tc.step; len(failures) != 1 || failures[0] != want {
		t.Errorf("junit failures %q, want [%q]", failures, want)
	}

	na := out["nagios"]
	if prefix := "GRIDHA WARNING - 1 of 1 hosts: kit1: " + st + " " + tc.step + " | "; na.code != report.NagiosWarning ||
		!strings.HasPrefix(na.stdout, prefix) || !strings.Contains(na.stdout, " "+st+"=1 ") {
		t.Errorf("nagios: exit %d %q, want 1 and %q", na.code, na.stdout, prefix)
	}

	pr := out["prometheus"]
	v := parseProm(t, pr.stdout)
	bySt := map[string]float64{}
	for k, n := range v {
		if strings.HasPrefix(k, "gridha_steps{") {
			bySt[k[strings.LastIndex(k, "status="):]] += n
			if strings.Contains(k, `role="`+report.UnknownRole+`"`) || !strings.Contains(k, `host="kit1"`) {
				t.Errorf("prometheus: step series without its role or host: %s", k)
			}
		}
	}
	if pr.code != report.ExitDrift || bySt[`status="`+st+`"}`] != 1 || bySt[`status="ok"}`] == 0 ||
		v[`gridha_last_run_exit_code{command="verify",mode="verify"}`] != 1 {
		t.Errorf("prometheus: exit %d, steps by status %v, want one %s\n%s", pr.code, bySt, st, pr.stdout)
	}
}
