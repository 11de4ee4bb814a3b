//go:build demo

package dnsupdater

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/testbed"
)

// TestDemoBDII is `make demo-bdii` (built only with -tags demo, so a plain
// go test neither runs nor skips it): MAN05
// on a test bed, driven like an admin would. Two real BDIIs behind one name,
// a real BIND primary; `gridha install dns` sets up the key, the
// update-policy, the record set and the dns-updater service; one BDII is
// killed and its record disappears; it is restarted and comes back.
//
//	go test -tags demo ./dnsupdater -run TestDemoBDII -count=1 -v
func TestDemoBDII(t *testing.T) {
	say := func(format string, a ...any) { fmt.Printf("\n==> "+format+"\n", a...) }
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	say("building gridha")
	bin := filepath.Join(t.TempDir(), "gridha")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/gridha/gridha/cmd/gridha").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	say("test bed: dns1 (BIND primary + dns-updater), bdii1 and bdii2 (Debian bdii: slapd on 2170 + bdii-update)")
	bed := testbed.New(t, "dns1", "bdii1", "bdii2")
	dns1, bdii1, bdii2 := bed.MustHost("dns1"), bed.MustHost("bdii1"), bed.MustHost("bdii2")
	for _, h := range bed.Hosts() {
		fmt.Printf("    %-6s %s\n", h.Name, h.Addr)
	}
	if err := dns1.StartBIND(ctx, "core.testbed.gridha"); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*testbed.Host{bdii1, bdii2} {
		if err := h.StartBDII(ctx, testbed.BDIIOptions{BreatheTime: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range []*testbed.Host{bdii1, bdii2} {
		out, _ := h.Exec(ctx, "ldapsearch", "-x", "-LLL", "-H", "ldap://"+h.Addr+":2170", "-b", "o=infosys",
			"(objectClass=UpdateStats)", "TotalEntries", "modifyTimestamp")
		fmt.Printf("    %s: ldapsearch -b o=infosys '(objectClass=UpdateStats)' TotalEntries modifyTimestamp\n%s", h.Name,
			indent(string(out)))
	}

	inv := bed.WriteInventory(t, bed.HostsYAML(map[string][]string{"dns1": {"dns"}})+fmt.Sprintf(`
roles:
  dns:
    zone: core.testbed.gridha
    name: topbdii
    ttl: 30
    primaries: [dns1]
    updaters: [dns1]
    bdiis:
      - {name: bdii1}
      - {name: bdii2}
    updater:
      binary_source: %s
      interval: 5
      check_timeout: 2
      fail_after: 2
      recover_after: 2
`, bin))
	say("gridha install dns  (inventory %s)", inv)
	cmd := exec.CommandContext(ctx, bin, "install", "dns", "-i", inv)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gridha install dns: %v", err)
	}

	dig := func() []string {
		out, err := exec.CommandContext(ctx, "dig", "+short", "+tcp", "@"+dns1.Addr, "topbdii.core.testbed.gridha", "A").Output()
		if err != nil {
			return nil
		}
		f := strings.Fields(string(out))
		slices.Sort(f)
		return f
	}
	waitDig := func(want []string) time.Duration {
		start := time.Now()
		for i := 0; i < 1200; i++ {
			if got := dig(); slices.Equal(got, want) {
				return time.Since(start)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("dig never showed %v (last %v)", want, dig())
		return 0
	}
	status := func() {
		out, _ := dns1.Exec(ctx, "/usr/local/sbin/gridha", "dns-updater", "status")
		fmt.Print(indent(string(out)))
	}
	both := addrs(bdii1, bdii2)
	waitDig(both)
	say("dig +short @dns1 topbdii.core.testbed.gridha A")
	fmt.Print(indent(strings.Join(dig(), "\n") + "\n"))
	say("gridha dns-updater status   (on dns1)")
	status()

	say("killing bdii1 (slapd and bdii-update, SIGKILL); the updater checks every 5 s, fail_after 2")
	if err := bdii1.KillBDII(ctx); err != nil {
		t.Fatal(err)
	}
	took := waitDig(addrs(bdii2))
	say("bdii1's record is gone after %s:", took.Round(100*time.Millisecond))
	fmt.Print(indent(strings.Join(dig(), "\n") + "\n"))
	status()
	out, _ := dns1.Sh(ctx, "grep 'DNS change' /var/log/gridha-dns-updater.log | tail -n 2")
	say("the updater's log says why:")
	fmt.Print(indent(out))

	say("restarting bdii1; it comes back after recover_after (2) good checks")
	if err := bdii1.StartBDII(ctx, testbed.BDIIOptions{BreatheTime: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	took = waitDig(both)
	say("bdii1 is back %s after it answered again:", took.Round(100*time.Millisecond))
	fmt.Print(indent(strings.Join(dig(), "\n") + "\n"))
	status()
	say("demo done; the bed is torn down")
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
