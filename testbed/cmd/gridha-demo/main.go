// Command gridha-demo is `make demo`: the Resource Broker HA layout of the
// 2005 notes built by gridha on a local test bed, end to end, the way an
// admin would drive it:
//
//  1. a bed of four hosts (network namespaces with real OpenSSH): state1
//     (file/DB server with a real MariaDB), rb1 and rb2 (service providers
//     running a stand-in of the gLite RB job service), ui (a user's box);
//  2. gridha install state-server, install rb-node, verify (all green);
//  3. the user submits jobs through the service IP; rb1 serves them;
//  4. rb1 dies (hagd and the service killed, its cable cut); hagd on rb2
//     takes over; the user reaches rb2 through the same IP and finds every
//     job (sandboxes on the shared storage, L&B rows in the remote MySQL).
//
// It needs root and bin/gridha (make build). The bed is torn down at the end
// unless -keep is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/gridha/gridha/testbed"
	"github.com/gridha/gridha/testbed/standins"
)

const (
	standinDir = "/opt/standin"
	jobdBin    = standinDir + "/rb-jobd"
	clientBin  = standinDir + "/rb-client"
	jobdPort   = "7772"
)

func main() {
	// The demo binary doubles as the stand-in RB job service and its
	// client once copied into the bed's hosts under those names.
	switch filepath.Base(os.Args[0]) {
	case "rb-jobd":
		exitOn(standins.RunJobd(os.Args[1:]))
		return
	case "rb-client":
		exitOn(standins.JobClient(os.Args[1:]))
		return
	}
	gridha := flag.String("gridha", "bin/gridha", "the gridha binary to demonstrate")
	keep := flag.Bool("keep", false, "leave the bed up at the end (tear down: gridha-testbed down --id N)")
	dir := flag.String("dir", "/tmp/gridha-demo", "folder for the demo's inventory and secrets")
	flag.Parse()
	if err := run(*gridha, *dir, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "gridha-demo:", err)
		os.Exit(1)
	}
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+":", err)
		os.Exit(1)
	}
}

func say(format string, a ...any) { fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", a...) }

func run(gridha, dir string, keep bool) error {
	gridha, err := filepath.Abs(gridha)
	if err != nil {
		return err
	}
	if _, err := os.Stat(gridha); err != nil {
		return fmt.Errorf("%w (run make build first)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	say("A test bed: state1 (file/DB server), rb1 and rb2 (Resource Brokers), ui (a user's box)")
	bed, err := testbed.Up(ctx, testbed.Options{Hosts: []string{"state1", "rb1", "rb2", "ui"}, Hold: keep})
	if err != nil {
		return err
	}
	if !keep {
		defer bed.Down()
	} else {
		defer fmt.Printf("\nThe bed stays up: go run ./testbed/cmd/gridha-testbed down --id %d\n", bed.ID)
	}
	srv, rb1, rb2, ui := bed.Host("state1"), bed.Host("rb1"), bed.Host("rb2"), bed.Host("ui")
	for _, h := range bed.Hosts() {
		fmt.Printf("   %-7s %-14s %s\n", h.Name, h.Addr, h.Hostname)
	}
	if err := srv.StartMariaDB(ctx); err != nil {
		return err
	}
	fmt.Println("   MariaDB running on state1; rb1 and rb2 run the stand-in of the gLite RB job service (rb-jobd)")
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, h := range []*testbed.Host{rb1, rb2, ui} {
		if _, err := h.Exec(ctx, "mkdir", "-p", standinDir); err != nil {
			return err
		}
		if err := h.CopyIn(self, jobdBin); err != nil {
			return err
		}
		if _, err := h.Exec(ctx, "ln", "-sf", jobdBin, clientBin); err != nil {
			return err
		}
		if err := h.WriteFile("/etc/init.d/rb-jobd", []byte(standins.JobdInitScript(jobdBin)), 0o755); err != nil {
			return err
		}
	}

	ip := fmt.Sprintf("%s.200", strings.TrimSuffix(bed.Subnet, ".0/24"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "lb-password"), []byte("demo-LB-password\n"), 0o600); err != nil {
		return err
	}
	inv := filepath.Join(dir, "gridha.yaml")
	body := bed.DefaultsYAML() + fmt.Sprintf(`secrets_dir: secrets
hosts:
  state1: {address: %s, hostname: %s, roles: [state-server]}
  rb1:    {address: %s, hostname: %s, roles: [rb-node]}
  rb2:    {address: %s, hostname: %s, roles: [rb-node]}
roles:
  state-server:
    export: /srv/rb-state
    mysql:
      password_file: lb-password        # the L&B user's password; never inline
  rb-node:
    state_server: state1
    shared_fs: sshfs
    services: [rb-jobd]                 # the gLite RB services (here: the stand-in)
    state_dirs: [/var/edgwl, /var/myproxy]
    hagd:
      iface: [eth0]
      heartbeat: 250ms                  # tuned down from the defaults for the demo
      dt1: 2s                           # ΔT1: a silent provider is dead
      dt2: 500ms                        # ΔT2: takeover broadcast before start
      timeout: 15s                      # the service script's time limit
      stop_timeout: 5s
      lease_ttl: 8s                     # the master's lease on the state server's MySQL
      lease_renew: 500ms
      lease_timeout: 500ms
    groups:
      rb: {service_ip: %s/24, iface: eth0}
    nodes:
      rb1: {rb: 100}                    # highest rank: master
      rb2: {rb: 50}
`, srv.Addr, srv.Hostname, rb1.Addr, rb1.Hostname, rb2.Addr, rb2.Hostname, ip)
	if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
		return err
	}
	say("The inventory (%s)", inv)
	fmt.Print(body)

	g := func(args ...string) error {
		argv := append([]string{"-i", inv}, args...)
		fmt.Printf("\n$ gridha %s\n", strings.Join(argv, " "))
		cmd := exec.CommandContext(ctx, gridha, argv...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		return cmd.Run()
	}
	say("What would change on the state server (--check: nothing is written)")
	_ = g("install", "state-server", "--check")
	say("Install the state server: export, snfs user and keys, lbserver20 database and grants")
	if err := g("install", "state-server"); err != nil {
		return err
	}
	say("Install the rb nodes: sshfs mount, state dirs moved behind symlinks, L&B remote, hagd")
	if err := g("install", "rb-node"); err != nil {
		return err
	}
	say("Run it again: nothing changes")
	if err := g("install", "rb-node"); err != nil {
		return err
	}
	say("verify: everything holds (exit code 0)")
	if err := g("verify", "--output", "nagios"); err != nil {
		return err
	}
	if err := g("verify"); err != nil {
		return err
	}

	client := func(args ...string) (string, error) {
		out, err := ui.Exec(ctx, append([]string{clientBin, ip + ":" + jobdPort}, args...)...)
		return strings.TrimSpace(string(out)), err
	}
	say("hagd elects rb1 (highest rank); it brings up %s and starts the service", ip)
	if err := waitFor(ctx, 90*time.Second, func() bool { o, _ := client("GET", "nothing-yet"); return strings.Contains(o, "(via ") }); err != nil {
		return fmt.Errorf("no master answering on %s: %w", ip, err)
	}
	out, _ := rb1.Sh(ctx, "/usr/local/sbin/gridha hagd status")
	fmt.Print(indent(out))

	say("The user submits 5 jobs through %s", ip)
	for i := 1; i <= 5; i++ {
		out, err := client("SUBMIT", fmt.Sprintf("job-%d", i), fmt.Sprintf("sandbox-%d", i))
		if err != nil {
			return fmt.Errorf("submit: %v: %s", err, out)
		}
		fmt.Printf("   SUBMIT job-%d -> %s\n", i, out)
	}

	say("rb1 dies: hagd and the service killed, its cable cut")
	if _, err := rb1.Sh(ctx, "kill -9 $(cat /run/hagd.pid) $(cat /run/rb-jobd.pid)"); err != nil {
		return err
	}
	if err := rb1.LinkDown(); err != nil {
		return err
	}
	killed := time.Now()
	if err := waitFor(ctx, 120*time.Second, func() bool {
		o, err := client("GET", "job-1")
		return err == nil && strings.Contains(o, "via=rb2")
	}); err != nil {
		return fmt.Errorf("rb2 did not take over: %w", err)
	}
	say("rb2 took over after %.1f s; the user finds every job through the same IP", time.Since(killed).Seconds())
	for i := 1; i <= 5; i++ {
		out, err := client("GET", fmt.Sprintf("job-%d", i))
		if err != nil {
			return fmt.Errorf("job-%d lost: %v %s", i, err, out)
		}
		fmt.Printf("   GET job-%d -> %s\n", i, out)
	}
	out, _ = rb2.Sh(ctx, "/usr/local/sbin/gridha hagd status")
	fmt.Print(indent(out))
	n, _ := srv.MySQL(ctx, "SELECT COUNT(*) FROM lbserver20.jobs")
	fmt.Printf("   L&B rows on state1: %s", n)
	say("Demo done: the layout of the 2005 notes, installed, verified and failed over by gridha")
	return nil
}

func waitFor(ctx context.Context, max time.Duration, cond func() bool) error {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) { // bounded by max
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("not within %s", max)
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("   " + l + "\n")
	}
	return b.String()
}
