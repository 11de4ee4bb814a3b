package steps

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
)

// auditEnv is an audit-mode Env over canned probe results (no host: an
// audit only reads facts).
func auditEnv(results map[string]string) *installer.Env {
	m := map[string]installer.ProbeResult{}
	for k, v := range results {
		m[k] = installer.ProbeResult{Stdout: []byte(v)}
	}
	return &installer.Env{Host: "h1", Facts: installer.NewFacts(m), Diff: true, Secrets: &installer.Redactor{}}
}

// fileFactOut is what FileProbe prints for a regular root-owned file.
func fileFactOut(mode string, content string) string {
	return fmt.Sprintf("S regular file|%s|0|0|root|root|%d\nC %s\n", mode, len(content), base64.StdEncoding.EncodeToString([]byte(content)))
}

// TestUserAuditExpectedFound: a verify of a user names what it wants and
// what it found (keys by label), for drift and missing alike.
func TestUserAuditExpectedFound(t *testing.T) {
	k1 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOne000000000000000000000000000001 one@test"
	k2 := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyTwo000000000000000000000000000002 two@test"
	k3 := "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQExtra000000000000000000003 extra@evil"
	u := User{Name: "edguser", Home: "/home/edguser", Shell: "/bin/sh", AuthorizedKeys: []string{k1, k2}}
	probe := func(keys string) string {
		return "pw=edguser:x:999:999::/home/edguser:/bin/sh\ngid=edguser\nhome=/home/edguser\n" +
			"/home/edguser|directory|755|edguser|edguser\n/home/edguser/.ssh|directory|700|edguser|edguser\n" +
			"/home/edguser/.ssh/authorized_keys|regular file|600|edguser|edguser\n" +
			"ak=" + base64.StdEncoding.EncodeToString([]byte(keys)) + "\n"
	}
	ctx := context.Background()

	r := u.CheckApply(ctx, auditEnv(map[string]string{userKey("edguser"): probe(k1 + "\n" + k3 + "\n")}), false)
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

	r = u.CheckApply(ctx, auditEnv(map[string]string{userKey("edguser"): ""}), false)
	if r.Status != installer.StatusMissing || r.Found != "absent" || !strings.HasPrefix(r.Expected, "user edguser, home /home/edguser") {
		t.Errorf("absent user: %+v", r)
	}
	r = u.CheckApply(ctx, auditEnv(map[string]string{userKey("edguser"): probe(k1 + "\n" + k2 + "\n")}), false)
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
		fact          string
		status        installer.Status
		expected, fnd string
	}{
		{"not set", kv, fileFactOut("644", "A=1\n"), installer.StatusMissing, "LEASE=30", "LEASE not set"},
		{"absent", kv, "N\n", installer.StatusMissing, "LEASE=30", p + " absent"},
		{"other value", kv, fileFactOut("644", "LEASE=99\n"), installer.StatusDrift, "LEASE=30", "LEASE=99"},
		{"secret other value", KeyValue{Path: p, Key: "PW", Value: "s3cret-new", Secret: true}, fileFactOut("600", "PW=s3cret-old\n"),
			installer.StatusDrift, "PW=******** (secret, not shown)", "PW set to another value (secret, not shown)"},
		{"secret mode only", KeyValue{Path: p, Key: "PW", Value: "s3cret-new", Secret: true, Mode: 0o600}, fileFactOut("644", "PW=s3cret-new\n"),
			installer.StatusDrift, "PW=******** (secret, not shown)", "PW=******** (secret, as wanted)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.step.CheckApply(ctx, auditEnv(map[string]string{installer.FileProbeKey(p): tc.fact}), false)
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
	for _, fact := range []string{fileFactOut("644", "found-secret-value\n"), "N\n"} {
		for _, diff := range []bool{true, false} {
			env := auditEnv(map[string]string{installer.FileProbeKey(p): fact})
			env.Diff = diff
			r := f.CheckApply(ctx, env, false)
			if !r.Status.NeedsChange() || r.Diff != "" || strings.Contains(fmt.Sprintf("%+v", r), "secret-value") {
				t.Errorf("secret file (diff %v): %+v", diff, r)
			}
		}
	}
}
