package testbed

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestFaultsOnBed: Crash leaves a host with only its init and sshd (every
// daemon, however started, gone; a FUSE mount detached; SSH still
// answers), Boot runs the init scripts enabled on that host and only those,
// and Blackhole cuts TCP both ways between two hosts without touching a
// third.
func TestFaultsOnBed(t *testing.T) {
	bed := New(t, "a", "b", "c")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b, c := bed.Host("a"), bed.Host("b"), bed.Host("c")

	if err := a.Start(ctx, "sleeper", "sleep", "1000"); err != nil {
		t.Fatal(err)
	}
	if out, err := a.Sh(ctx, `mkdir -p /srv/x /mnt/y && echo hi > /srv/x/f && bindfs /srv/x /mnt/y && cat /mnt/y/f &&
(nohup sh -c 'sleep 1001' </dev/null >/dev/null 2>&1 &) &&
cat > /etc/init.d/gh-boot-test <<'EOF'
#!/bin/sh
[ "$1" = start ] && { setsid sleep 1002 </dev/null >/dev/null 2>&1 & echo started; }
EOF
chmod 755 /etc/init.d/gh-boot-test && mkdir -p /etc/rc2.d && ln -s ../init.d/gh-boot-test /etc/rc2.d/S99gh-boot-test`); err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("set-up: %v %q", err, out)
	}
	killed, err := a.Crash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" sleep\n", " bindfs\n"} {
		if !strings.Contains(killed, want) {
			t.Errorf("Crash did not report killing%q:\n%s", want, killed)
		}
	}
	ps, err := a.Sh(ctx, `sshd=$(cat /run/sshd.pid); for p in /proc/[0-9]*; do p=${p#/proc/}; [ $p = $$ ] && continue; [ "$(awk '/^PPid:/{print $2}' /proc/$p/status 2>/dev/null)" = $$ ] && continue; echo "$p $(cat /proc/$p/comm 2>/dev/null)"; done | grep -v "^$sshd \|^1 " | grep . || true`)
	if err != nil || strings.TrimSpace(ps) != "" {
		t.Errorf("after Crash, processes left besides init and sshd: %q %v", ps, err)
	}
	if out, _ := a.Sh(ctx, "grep -c ' /mnt/y ' /proc/mounts || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("FUSE mount still there after Crash")
	}
	cn, err := net.DialTimeout("tcp", a.Addr+":22", 5*time.Second)
	if err != nil {
		t.Fatalf("sshd gone after Crash: %v", err)
	}
	cn.Close()

	out, err := a.Boot(ctx)
	if err != nil || !strings.Contains(out, "boot: S99gh-boot-test start\nstarted") || strings.Contains(out, "mariadb") || strings.Contains(out, "ssh start") {
		t.Fatalf("Boot: %v\n%s", err, out)
	}
	if out, _ := a.Sh(ctx, "pgrep -xc sleep || true"); strings.TrimSpace(out) != "1" {
		t.Errorf("after Boot: %s sleeps running, want the init script's 1", strings.TrimSpace(out))
	}

	// Blackhole: a drops what it sends to b: no TCP either way; c unaffected.
	reach := func(from, to *Host) bool {
		_, err := from.Sh(ctx, "timeout 3 bash -c 'exec 3<>/dev/tcp/"+to.Addr+"/22'")
		return err == nil
	}
	if !reach(a, b) || !reach(b, a) {
		t.Fatal("a and b cannot reach each other before the blackhole")
	}
	if err := a.Blackhole(ctx, b.Addr); err != nil {
		t.Fatal(err)
	}
	if reach(a, b) || reach(b, a) {
		t.Error("a and b still reach each other through the blackhole")
	}
	if !reach(a, c) || !reach(c, b) {
		t.Error("the blackhole between a and b cut c off")
	}
	if err := a.Unblackhole(ctx, b.Addr); err != nil {
		t.Fatal(err)
	}
	if !reach(a, b) || !reach(b, a) {
		t.Error("a and b cannot reach each other after Unblackhole")
	}
}
