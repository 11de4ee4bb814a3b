package testbed

import (
	"reflect"
	"strings"
	"testing"
)

func TestDiffSnapshots(t *testing.T) {
	a := map[string]string{"/etc/a": "file 0644 0:0 x", "/etc/b": "file 0644 0:0 y", "/etc/c": "dir 0755 0:0"}
	b := map[string]string{"/etc/a": "file 0600 0:0 x", "/etc/c": "dir 0755 0:0", "/etc/0new": "symlink 0:0 -> /x", "/etc/b": "whiteout"}
	got := DiffSnapshots(a, b)
	want := []string{
		"added /etc/0new (symlink 0:0 -> /x)",
		"changed /etc/a (file 0644 0:0 x -> file 0600 0:0 x)",
		"changed /etc/b (file 0644 0:0 y -> whiteout)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DiffSnapshots =\n%q\nwant\n%q", got, want)
	}
	if d := DiffSnapshots(a, a); len(d) != 0 {
		t.Errorf("equal snapshots differ: %v", d)
	}
	if d := DiffSnapshots(a, map[string]string{}); len(d) != 3 || !strings.HasPrefix(d[0], "removed /etc/a") {
		t.Errorf("removal: %v", d)
	}
}

func TestExcluded(t *testing.T) {
	ex := append([]string{"/etc/gridha/", "/var/tmp"}, VolatilePaths()...)
	for p, want := range map[string]bool{
		"/etc/gridha":                  true,
		"/etc/gridha/x":                true,
		"/etc/gridhax":                 false,
		"/var/tmp/a/b":                 true,
		"/var/lib/mysql/ibdata1":       true,
		"/var/lib/mysql-files":         false,
		"/var/log/testbed-mariadb.log": true,
		"/var/log/testbed":             false,
		"/var/log/wtmp":                true,
		"/var/log/syslog":              false,
		"/etc/hosts":                   false,
	} {
		if got := excluded(p, ex); got != want {
			t.Errorf("excluded(%s) = %v, want %v", p, got, want)
		}
	}
}

func TestFstabAndHosts(t *testing.T) {
	b := &Bed{ID: 9, Dir: "/tmp/gridha-testbed/9", Gateway: "198.18.9.1"}
	b.hosts = []*Host{b.newHost("s1", 1), b.newHost("rb1", 2)}
	h := b.hosts[1]
	if h.Addr != "198.18.9.12" || h.Netns != "gh9-rb1" || h.Veth != "gh9v2" || h.Hostname != "rb1.testbed.gridha" {
		t.Errorf("host = %+v", h)
	}
	fs := h.fstab()
	for _, want := range []string{
		"testbed-etc /etc overlay lowerdir=/etc,upperdir=/tmp/gridha-testbed/9/rb1/upper/etc,workdir=/tmp/gridha-testbed/9/rb1/work/etc 0 0\n",
		"/tmp/gridha-testbed/9/rb1/root /root none bind 0 0\n",
	} {
		if !strings.Contains(fs, want) {
			t.Errorf("fstab lacks %q:\n%s", want, fs)
		}
	}
	if !strings.HasSuffix(fs, "testbed-tmp /tmp tmpfs mode=1777,size=1g 0 0\n") {
		t.Errorf("fstab must mount /tmp last (the bed's folder is under /tmp):\n%s", fs)
	}
	if n := strings.Count(fs, " overlay "); n != len(Layers()) {
		t.Errorf("%d overlays for %d layers", n, len(Layers()))
	}
	hosts := b.hostsFile()
	for _, want := range []string{"198.18.9.11\ts1.testbed.gridha s1\n", "198.18.9.12\trb1.testbed.gridha rb1\n", "198.18.9.1\tcontroller.testbed.gridha controller\n"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts lacks %q:\n%s", want, hosts)
		}
	}
	if b.SpareAddr(0) != "198.18.9.200" || b.SpareAddr(54) != "198.18.9.254" {
		t.Errorf("SpareAddr: %s %s", b.SpareAddr(0), b.SpareAddr(54))
	}
}
