package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// DefaultsYAML is the inventory's defaults: block for this bed: root over
// the bed's client key, host keys checked against the bed's known_hosts.
func (b *Bed) DefaultsYAML() string {
	return fmt.Sprintf("defaults:\n  user: root\n  identity_file: %s\n  known_hosts: %s\n", b.ClientKeyFile, b.KnownHostsFile)
}

// HostsYAML is the inventory's hosts: block listing every host of the bed
// (in bed order) with its address and hostname, and its roles from roles
// (host name -> role names; a host absent from roles gets no roles: key).
func (b *Bed) HostsYAML(roles map[string][]string) string {
	var sb strings.Builder
	sb.WriteString("hosts:\n")
	for _, h := range b.Hosts() {
		fmt.Fprintf(&sb, "  %s:\n    address: %s\n    hostname: %s\n", h.Name, h.Addr, h.Hostname)
		if rs := roles[h.Name]; len(rs) > 0 {
			fmt.Fprintf(&sb, "    roles: [%s]\n", strings.Join(rs, ", "))
		}
	}
	return sb.String()
}

// WriteInventory writes <t.TempDir()>/gridha.yaml: the bed's defaults: block
// (see DefaultsYAML) followed by body (which must not have its own
// defaults:), and returns its path. Secrets default to the secrets/ folder
// beside it.
func (b *Bed) WriteInventory(t testing.TB, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gridha.yaml")
	if err := os.WriteFile(path, []byte(b.DefaultsYAML()+body), 0o600); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return path
}

// SSHArgs are the options of the system ssh client for reaching the bed's
// hosts as root: the bed's key only, strict host-key checking against the
// bed's known_hosts, no ~/.ssh/config, no prompts. Append "root@"+h.Addr and
// the command.
func (b *Bed) SSHArgs() []string {
	return []string{
		"-F", "/dev/null",
		"-i", b.ClientKeyFile,
		"-o", "IdentitiesOnly=yes",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + b.KnownHostsFile,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=10",
	}
}
