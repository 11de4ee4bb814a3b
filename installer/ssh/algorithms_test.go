package sshx

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestAlgorithmList(t *testing.T) {
	defaults := []string{"a", "b", "c-1", "c-2"}
	known := []string{"a", "b", "c-1", "c-2", "old"}
	for _, tc := range []struct {
		spec string
		want []string
		err  string
	}{
		{"b,a", []string{"b", "a"}, ""},
		{"b, a ,b", []string{"b", "a"}, ""},
		{"+old", []string{"a", "b", "c-1", "c-2", "old"}, ""},
		{"-c-*", []string{"a", "b"}, ""},
		{"-b,c-2", []string{"a", "c-1"}, ""},
		{"^c-2,old", []string{"c-2", "old", "a", "b", "c-1"}, ""},
		// What only OpenSSH implements is left out, not refused.
		{"sntrup761x25519-sha512@openssh.com,b", []string{"b"}, ""},
		{"sntrup761x25519-sha512@openssh.com", nil, "none of these"},
		{"-*", nil, "none of these"},
		{" ", nil, "no algorithm named"},
	} {
		got, err := algorithmList(tc.spec, defaults, known)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, %v; want error %q", tc.spec, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v, %v; want %v", tc.spec, got, err, tc.want)
		}
	}
}

// ssh_config's KexAlgorithms, Ciphers and MACs are what the connection
// negotiates (the server's own log says so); a list gridha cannot use
// fails the dial naming the file and the key.
func TestSSHConfigAlgorithms(t *testing.T) {
	f := newFixture(t, "LogLevel DEBUG1")
	cfg := writeFile(t, filepath.Join(f.Dir, "ssh_config"), `
Host 127.0.0.1
    KexAlgorithms ecdh-sha2-nistp256
    Ciphers aes256-ctr
    MACs hmac-sha2-256
`)
	opts := f.options()
	opts.SSHConfigFile = cfg
	c := dial(t, f.inventory(), opts, "h1")
	if got := runOK(t, c, "echo ok"); got != "ok" {
		t.Fatalf("run: %q", got)
	}
	log := mustRead(t, f.SSHD.Log)
	for _, want := range []string{"kex: algorithm: ecdh-sha2-nistp256", "kex: client->server cipher: aes256-ctr MAC: hmac-sha2-256"} {
		if !strings.Contains(log, want) {
			t.Errorf("sshd log has no %q:\n%s", want, log)
		}
	}

	bad := writeFile(t, filepath.Join(f.Dir, "ssh_config_bad"), "Host *\n    KexAlgorithms sntrup761x25519-sha512@openssh.com\n")
	opts.SSHConfigFile = bad
	_, err := NewDialer(f.inventory(), opts).Dial(context.Background(), "h1")
	if err == nil || !strings.Contains(err.Error(), bad+": KexAlgorithms") {
		t.Errorf("unusable KexAlgorithms: err %v, want one naming %s and the key", err, bad)
	}
}
