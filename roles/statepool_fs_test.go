package roles

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
)

// poolTestInventory is a pool of fs1-fs3 (arbiter: the given member, or
// none) with rb1 and rb2, on no real host.
func poolTestInventory(t *testing.T, arbiter string) *inventory.Inventory {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	arb := ""
	if arbiter != "" {
		arb = "      arbiter: " + arbiter + "\n"
	}
	body := `hosts:
  fs1: {address: 198.18.0.11, hostname: fs1.example.org, roles: [state-server]}
  fs2: {address: 198.18.0.12, hostname: fs2.example.org, roles: [state-server]}
  fs3: {address: 198.18.0.13, roles: [state-server]}
  rb1: {address: 198.18.0.21, hostname: rb1.example.org, roles: [rb-node]}
  rb2: {address: 198.18.0.22, hostname: rb2.example.org, roles: [rb-node]}
roles:
  state-server:
    mysql: {password_file: pw}
    pool:
      service_ip: 198.18.0.100/24
      iface: eth0
      ping_timeout: 3s
` + arb + `  rb-node:
    groups:
      rb-a: {service_ip: 198.18.0.200/24, iface: eth0}
    nodes:
      rb1: {rb-a: 100}
      rb2: {rb-a: 50}
`
	p := filepath.Join(dir, "gridha.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestPoolTLS(t *testing.T) {
	inv := poolTestInventory(t, "")
	fs1 := inv.Host("fs1")
	if _, err := LoadPoolTLS(inv, fs1, false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only without a CA: %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(inv.SecretsDir, "glusterfs")); err == nil {
		t.Fatal("read-only planning wrote the secrets folder")
	}
	a, err := LoadPoolTLS(inv, fs1, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "ca.pem", "fs1.key", "fs1.pem"} {
		fi, err := os.Stat(filepath.Join(inv.SecretsDir, "glusterfs", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("secrets/glusterfs/%s: %v %v, want 0600", f, fi, err)
		}
	}
	// The host's certificate: its CN, signed by the CA, 825 days.
	cert, err := parseCertPEM(a.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := parseCertPEM(a.CAPEM)
	if cert.Subject.CommonName != "fs1.example.org" || cert.CheckSignatureFrom(ca) != nil {
		t.Fatalf("certificate: CN %q, signed by the CA: %v", cert.Subject.CommonName, cert.CheckSignatureFrom(ca))
	}
	if d := time.Until(cert.NotAfter); d < 824*24*time.Hour || d > 826*24*time.Hour {
		t.Errorf("certificate valid for %s, want cert_days 825", d)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("not a valid client certificate of the CA: %v", err)
	}
	// Read again: the same files; a host without a hostname is named by its address.
	b, err := LoadPoolTLS(inv, fs1, false)
	if err != nil || string(b.CertPEM) != string(a.CertPEM) || string(b.KeyPEM) != string(a.KeyPEM) {
		t.Fatalf("second load differs: %v", err)
	}
	if GlusterCN(inv.Host("fs3")) != "198.18.0.13" {
		t.Errorf("CN of a host without hostname: %q", GlusterCN(inv.Host("fs3")))
	}
	// A renamed host gets a new certificate.
	fs1.Hostname = "fs1-new.example.org"
	c, err := LoadPoolTLS(inv, fs1, true)
	if err != nil || c.CN != "fs1-new.example.org" || string(c.CertPEM) == string(a.CertPEM) {
		t.Fatalf("renamed host: %v %q", err, c.CN)
	}
	// Half a CA is never completed by a new one.
	if err := os.Remove(filepath.Join(inv.SecretsDir, "glusterfs", "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPoolTLS(inv, inv.Host("fs2"), true); err == nil || !strings.Contains(err.Error(), "must both exist") {
		t.Fatalf("half a CA: %v", err)
	}
}

func TestCertExpiryResult(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		left time.Duration
		want installer.Status
		msg  string
	}{
		{400 * 24 * time.Hour, installer.StatusOK, "(400 days)"},
		{31 * 24 * time.Hour, installer.StatusOK, "(31 days)"},
		{29 * 24 * time.Hour, installer.StatusDrift, "WARNING: x (CN=h) valid until 2026-12-26 (29 days)"},
		{-time.Hour, installer.StatusFailed, "expired on 2026-11-27"},
	} {
		r := certExpiryResult("x", "h", now.Add(c.left), now)
		if r.Status != c.want || !strings.Contains(r.Message, c.msg) {
			t.Errorf("%s left: %s %q, want %s containing %q", c.left, r.Status, r.Message, c.want, c.msg)
		}
	}
}

func TestPoolFSPlan(t *testing.T) {
	inv := poolTestInventory(t, "fs1")
	// The arbiter's brick goes last (gluster makes the last of each
	// replica set the arbiter).
	if got := strings.Join(GlusterBricks(inv), " "); got != "fs2.example.org:/srv/gridha/bricks/rbstate 198.18.0.13:/srv/gridha/bricks/rbstate fs1.example.org:/srv/gridha/bricks/rbstate" {
		t.Errorf("bricks: %s", got)
	}
	opts := map[string]string{}
	for _, o := range GlusterOptions(inv) {
		opts[o.Key] = o.Value
	}
	want := map[string]string{"cluster.quorum-type": "auto", "cluster.server-quorum-type": "server", "network.ping-timeout": "3",
		"client.ssl": "on", "server.ssl": "on", "ssl.own-cert": GlusterCertPath, "ssl.private-key": GlusterKeyPath, "ssl.ca-list": GlusterCAPath,
		"auth.ssl-allow": "fs1.example.org,fs2.example.org,198.18.0.13,rb1.example.org,rb2.example.org"}
	for k, v := range want {
		if opts[k] != v {
			t.Errorf("option %s = %q, want %q", k, opts[k], v)
		}
	}
	plan, err := StateServer{}.Plan(inv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The database half's phases follow the files half's.
	if len(plan.Phases) < 4 || plan.Phases[3].Name != PhasePoolDBFiles || plan.Phases[0].Name != PhasePoolMembers || len(plan.Phases[0].Steps) != 3 || plan.Phases[1].Name != PhasePoolVolume || plan.Phases[2].Name != PhasePoolExport {
		var names []string
		for _, ph := range plan.Phases {
			names = append(names, ph.Name)
		}
		t.Fatalf("phases: %q", names)
	}
	var ids []string
	for _, s := range plan.Phases[1].Steps["fs1"] {
		ids = append(ids, s.ID())
	}
	if got := strings.Join(ids, "|"); got != "glusterfs daemons use the current TLS files|glusterfs peers connected|glusterfs volume rbstate|glusterfs former members detached|glusterfs bricks online|glusterfs pending heals|glusterfs split-brain entries" {
		t.Errorf("volume phase: %s", got)
	}
	// The nodes mount with the other members as volume-file servers.
	m := GlusterMount(inv)
	if m.FstabLine() != "fs1.example.org:/rbstate /mnt/rb-state glusterfs _netdev,nosuid,nodev,backup-volfile-servers=fs2.example.org:198.18.0.13 0 0" {
		t.Errorf("fstab line: %s", m.FstabLine())
	}
	// --limit without the first member: no volume phase (the database
	// half's phases follow).
	plan, err = StateServer{}.Plan(inv, Options{Limit: []string{"fs2"}})
	if err != nil || len(plan.Phases) < 3 || plan.Phases[1].Name != PhasePoolExport || plan.Phases[1].Steps["fs2"] == nil || plan.Phases[2].Name != PhasePoolDBFiles {
		t.Fatalf("--limit fs2: %v %+v", err, plan)
	}
}

func TestParseGlusterHeal(t *testing.T) {
	out := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<cliOutput><healInfo><bricks>
<brick hostUuid="a"><name>fs1:/b</name><status>Connected</status><totalNumberOfEntries>5</totalNumberOfEntries><numberOfEntriesInSplitBrain>2</numberOfEntriesInSplitBrain></brick>
<brick hostUuid="b"><name>fs2:/b</name><status>Failed to process entries completely. (Transport endpoint is not connected)</status><totalNumberOfEntries>-</totalNumberOfEntries><numberOfEntriesInSplitBrain>-</numberOfEntriesInSplitBrain></brick>
<brick hostUuid="c"><name>fs3:/b</name><status>Connected</status><totalNumberOfEntries>1</totalNumberOfEntries><numberOfEntriesInSplitBrain>0</numberOfEntriesInSplitBrain></brick>
</bricks></healInfo><opRet>0</opRet></cliOutput>`
	o, err := parseGlusterXML([]byte("some noise\n" + out))
	if err != nil {
		t.Fatal(err)
	}
	p, s, u := healCounts(o)
	if p != 4 || s != 2 || len(u) != 1 || u[0] != "fs2:/b (Transport endpoint is not connected)" {
		t.Errorf("pending %d split %d unreadable %q", p, s, u)
	}
	if _, err := parseGlusterXML([]byte("Connection failed. Please check if gluster daemon is operational.\n")); err == nil || !strings.Contains(err.Error(), "Connection failed") {
		t.Errorf("no XML: %v", err)
	}
}

// TestCheckHAGDStoppedForPool: hagd is stopped only on a node that still
// has a single server's share mounted (sshfs or its bindfs view) while it
// runs; never on a node already on the volume or with nothing mounted.
func TestCheckHAGDStoppedForPool(t *testing.T) {
	for _, c := range []struct {
		probe string
		ok    bool
	}{
		{"fs=fuse.bindfs\nhagd=running\n", false},
		{"fs=fuse.sshfs\nhagd=running\n", false},
		{"fs=fuse.bindfs\n", true},
		{"fs=fuse.glusterfs\nhagd=running\n", true},
		{"fs=\nhagd=running\n", true},
		{"fs=\n", true},
	} {
		if ok, msg := checkHAGDStoppedForPool(c.probe, "/mnt/rb-state"); ok != c.ok {
			t.Errorf("%q: ok %v (%s), want %v", c.probe, ok, msg, c.ok)
		}
	}
}

// TestGlusterStale: a gluster daemon started before the newest TLS file
// (renewed certificate, new CA or secure-access) is stale; one started
// after it, or within the times' resolution, is not.
func TestGlusterStale(t *testing.T) {
	files := "file=1000 /etc/ssl/glusterfs.ca\nfile=5000 /etc/ssl/glusterfs.pem\nfile=1000 /var/lib/glusterd/secure-access\n"
	for _, c := range []struct {
		procs string
		stale string
	}{
		{"proc=6000 glusterd\nproc=6001 glusterfsd\n", ""},
		{"proc=4999 glusterd\nproc=5000 glusterfsd\n", ""},
		{"proc=6000 glusterd\nproc=4000 glusterfsd\nproc=4000 glusterfs\n", "glusterfsd, glusterfs started before /etc/ssl/glusterfs.pem"},
		{"", ""},
	} {
		got := glusterStale("now=7000\n" + c.procs + files)
		if (c.stale == "") != (got == "") || !strings.HasPrefix(got, c.stale) {
			t.Errorf("%q: %q, want %q", c.procs, got, c.stale)
		}
	}
}
