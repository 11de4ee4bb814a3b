package steps

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
)

// auditEnv is an audit-mode Env over typed facts (no host: an audit only
// reads facts).
func auditEnv(facts *installer.Facts) *installer.Env {
	return &installer.Env{Host: "h1", Facts: facts, Diff: true, Secrets: &installer.Redactor{}}
}

// withFile is facts holding one file fact.
func withFile(ff installer.FileFact) *installer.Facts {
	f := installer.NewFacts(nil)
	f.SetFile(ff)
	return f
}

// regular is the fact of a regular root-owned file.
func regular(path string, mode fs.FileMode, content string) installer.FileFact {
	return installer.FileFact{Path: path, Exists: true, Kind: installer.KindFile, Mode: mode, Owner: "root", Group: "root",
		Size: int64(len(content)), Content: []byte(content), ContentKnown: true}
}

// withUser is facts holding one account.
func withUser(name string, st installer.UserState) *installer.Facts {
	f := installer.NewFacts(nil)
	f.SetUser(name, st)
	return f
}

// TestUserAuditExpectedFound: a verify of a user names what it wants and
// what it found (keys by label), for drift and missing alike.
func TestUserAuditExpectedFound(t *testing.T) {
	k1 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOne000000000000000000000000000001 one@test"
	k2 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyTwo000000000000000000000000000002 two@test"
	k3 := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQExtra000000000000000000003 extra@evil"
	u := User{Name: "edguser", Home: "/home/edguser", Shell: "/bin/sh", AuthorizedKeys: []string{k1, k2}}
	account := func(keys string) installer.UserState {
		dir := func(mode string) installer.StatLine {
			return installer.StatLine{Exists: true, Kind: "directory", Mode: mode, Owner: "edguser", Group: "edguser"}
		}
		return installer.UserState{Exists: true, Home: "/home/edguser", Shell: "/bin/sh", Group: "edguser",
			HomeStat: dir("755"), SSHStat: dir("700"),
			AKStat: installer.StatLine{Exists: true, Kind: "regular file", Mode: "600", Owner: "edguser", Group: "edguser"},
			Keys:   []byte(keys), KeysKnown: true}
	}
	ctx := context.Background()

	r := u.CheckApply(ctx, auditEnv(withUser("edguser", account(k1+"\n"+k3+"\n"))), false)
	if r.Status != installer.StatusDrift {
		t.Fatalf("status %s, want drift: %+v", r.Status, r)
	}
	for _, want := range []string{"home /home/edguser", "shell /bin/sh", "authorized_keys: ssh-ed25519 ...000000000001 one@test, ssh-ed25519 ...000000000002 two@test"} {
		if !strings.Contains(r.Expected, want) {
			t.Errorf("expected %q lacks %q", r.Expected, want)
		}
	}
	for _, want := range []string{"user exists", "authorized_keys (600 edguser): ssh-ed25519 ...000000000001 one@test, ssh-rsa ...000000000003 extra@evil"} {
		if !strings.Contains(r.Found, want) {
			t.Errorf("found %q lacks %q", r.Found, want)
		}
	}
	if strings.Contains(r.Expected+r.Found, "AAAAC3NzaC1lZDI1NTE5AAAAIKeyOne") {
		t.Errorf("whole keys in expected/found: %+v", r)
	}

	r = u.CheckApply(ctx, auditEnv(withUser("edguser", installer.UserState{})), false)
	if r.Status != installer.StatusMissing || r.Found != "absent" || !strings.HasPrefix(r.Expected, "user edguser, home /home/edguser") {
		t.Errorf("absent user: %+v", r)
	}
	r = u.CheckApply(ctx, auditEnv(withUser("edguser", account(k1+"\n"+k2+"\n"))), false)
	if r.Status != installer.StatusOK {
		t.Errorf("same keys: %+v", r)
	}
}

// TestKeyValueAuditExpectedFound: a key not set, a file absent and a
// secret value all say what was found, and never show a secret.
func TestKeyValueAuditExpectedFound(t *testing.T) {
	ctx := context.Background()
	const p = "/etc/sysconfig/x"
	kv := KeyValue{Path: p, Key: "LEASE", Value: "30"}
	tests := []struct {
		name          string
		step          KeyValue
		fact          installer.FileFact
		status        installer.Status
		expected, fnd string
	}{
		{"not set", kv, regular(p, 0o644, "A=1\n"), installer.StatusMissing, "LEASE=30", "LEASE not set"},
		{"absent", kv, installer.FileFact{Path: p}, installer.StatusMissing, "LEASE=30", p + " absent"},
		{"other value", kv, regular(p, 0o644, "LEASE=99\n"), installer.StatusDrift, "LEASE=30", "LEASE=99"},
		{"secret other value", KeyValue{Path: p, Key: "PW", Value: "s3cret-new", Secret: true}, regular(p, 0o600, "PW=s3cret-old\n"),
			installer.StatusDrift, "PW=******** (secret, not shown)", "PW set to another value (secret, not shown)"},
		{"secret mode only", KeyValue{Path: p, Key: "PW", Value: "s3cret-new", Secret: true, Mode: 0o600}, regular(p, 0o644, "PW=s3cret-new\n"),
			installer.StatusDrift, "PW=******** (secret, not shown)", "PW=******** (secret, as wanted)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.step.CheckApply(ctx, auditEnv(withFile(tc.fact)), false)
			if r.Status != tc.status || r.Expected != tc.expected || r.Found != tc.fnd {
				t.Errorf("got %s %q %q, want %s %q %q (%+v)", r.Status, r.Expected, r.Found, tc.status, tc.expected, tc.fnd, r)
			}
			if s := fmt.Sprintf("%+v", r); strings.Contains(s, "s3cret") {
				t.Errorf("secret shown: %s", s)
			}
		})
	}
}

// TestFileSecretAudit: a secret file that differs, or is missing, never
// shows its wanted or found content, with or without --diff.
func TestFileSecretAudit(t *testing.T) {
	ctx := context.Background()
	const p = "/etc/gridha/hagd.key"
	f := File{Path: p, Content: []byte("wanted-secret-value\n"), Mode: 0o600, Secret: true}
	for _, fact := range []installer.FileFact{regular(p, 0o644, "found-secret-value\n"), {Path: p}} {
		for _, diff := range []bool{true, false} {
			env := auditEnv(withFile(fact))
			env.Diff = diff
			r := f.CheckApply(ctx, env, false)
			if !r.Status.NeedsChange() || r.Diff != "" || strings.Contains(fmt.Sprintf("%+v", r), "secret-value") {
				t.Errorf("secret file (diff %v): %+v", diff, r)
			}
		}
	}
}

// TestFilePropertyDrift: a file off on mode and content names both
// properties, each with its own expected and found (content by size and
// hash, never the secret); a missing file names its kind; a dir its owner.
func TestFilePropertyDrift(t *testing.T) {
	ctx := context.Background()
	const p = "/etc/gridha/hagd.conf"
	f := File{Path: p, Content: []byte("lease 30\n"), Mode: 0o640, Owner: "root", Group: "root"}
	r := f.CheckApply(ctx, auditEnv(withFile(regular(p, 0o644, "lease 5\n"))), false)
	want := []installer.PropertyDrift{
		{Property: "content", Expected: contentSummary([]byte("lease 30\n"), false), Found: contentSummary([]byte("lease 5\n"), false)},
		{Property: "mode", Expected: "0640", Found: "0644"},
	}
	if r.Status != installer.StatusDrift || fmt.Sprint(r.Drifted) != fmt.Sprint(want) {
		t.Errorf("mode and content: %s %+v, want %+v", r.Status, r.Drifted, want)
	}
	if !strings.HasPrefix(want[0].Expected, "9 bytes, sha256 ") {
		t.Errorf("content summary %q", want[0].Expected)
	}
	secret := File{Path: p, Content: []byte("s3cret-wanted\n"), Secret: true}
	r = secret.CheckApply(ctx, auditEnv(withFile(regular(p, 0o600, "s3cret-found\n"))), false)
	if len(r.Drifted) != 1 || r.Drifted[0].Property != "content" || strings.Contains(fmt.Sprint(r.Drifted), "s3cret") ||
		r.Drifted[0].Expected == r.Drifted[0].Found {
		t.Errorf("secret content: %+v", r.Drifted)
	}
	r = f.CheckApply(ctx, auditEnv(withFile(installer.FileFact{Path: p})), false)
	if r.Status != installer.StatusMissing || fmt.Sprint(r.Drifted) != fmt.Sprint([]installer.PropertyDrift{{Property: "kind", Expected: "regular file", Found: "absent"}}) {
		t.Errorf("missing: %s %+v", r.Status, r.Drifted)
	}
	d := Dir{Path: "/srv", Owner: "snfs"}
	dd := regular("/srv", 0o755, "")
	dd.Kind = installer.KindDir
	r = d.CheckApply(ctx, auditEnv(withFile(dd)), false)
	if fmt.Sprint(r.Drifted) != fmt.Sprint([]installer.PropertyDrift{{Property: "owner", Expected: "snfs", Found: "root"}}) {
		t.Errorf("dir owner: %+v", r.Drifted)
	}
}

// TestServiceUserPropertyDrift: a service names boot and state, an account
// its shell and keys, from typed facts.
func TestServiceUserPropertyDrift(t *testing.T) {
	ctx := context.Background()
	facts := installer.NewFacts(nil)
	facts.SetService("hagd", installer.ServiceState{Init: installer.InitDebian, Installed: true, Enabled: false, StatusCode: 3})
	r := Service{Name: "hagd", Boot: BootEnabled, State: StateRunning}.CheckApply(ctx, auditEnv(facts), false)
	want := []installer.PropertyDrift{{Property: "boot", Expected: "enabled", Found: "disabled"}, {Property: "state", Expected: "running", Found: "not running"}}
	if fmt.Sprint(r.Drifted) != fmt.Sprint(want) {
		t.Errorf("service: %+v, want %+v", r.Drifted, want)
	}
	if r := (Service{Name: "other", State: StateRunning}).CheckApply(ctx, auditEnv(facts), false); r.Status != installer.StatusFailed {
		t.Errorf("service without a fact: %+v", r)
	}
	u := User{Name: "rb", Shell: "/bin/sh"}
	r = u.CheckApply(ctx, auditEnv(withUser("rb", installer.UserState{Exists: true, Home: "/home/rb", Shell: "/bin/bash", Group: "rb",
		HomeStat: installer.StatLine{Exists: true, Kind: "directory"}})), false)
	if fmt.Sprint(r.Drifted) != fmt.Sprint([]installer.PropertyDrift{{Property: "shell", Expected: "/bin/sh", Found: "/bin/bash"}}) {
		t.Errorf("user: %+v", r.Drifted)
	}
}
