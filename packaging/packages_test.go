// Package packaging_test checks what `make dist` built (make test builds it
// first): the binaries, the .rpm's files and scriptlets (rpm -qlp, rpm -qp
// --scripts), and the .deb installed with dpkg -i on a test-bed host.
package packaging_test

import (
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/testbed"
)

// dist is where make dist writes, from this package's folder.
const dist = "../dist"

// artifact returns the one file of dist matching pattern, failing (CI) or
// skipping the test when make dist has not run.
func artifact(t *testing.T, pattern string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dist, pattern))
	if len(m) == 1 {
		return m[0]
	}
	msg := "dist/" + pattern + ": " + strings.Join(m, ", ") + ": run make dist (make test does)"
	if len(m) > 1 {
		t.Fatal(msg)
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestBinaries: one static ELF per architecture, stamped.
func TestBinaries(t *testing.T) {
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		p := artifact(t, "gridha-linux-"+arch)
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", p, f.Machine, machine)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (%v)", p, prog.Type)
			}
		}
		f.Close()
	}
	if runtime.GOARCH != "amd64" {
		return
	}
	out := run(t, artifact(t, "gridha-linux-amd64"), "--version")
	// make dist stamps version, commit and date: not "dev", not "unknown".
	if !regexp.MustCompile(`^gridha \S+ \(commit [0-9a-f]{7,}, built \d{4}-\d\d-\d\dT`).MatchString(out) || strings.HasPrefix(out, "gridha dev ") {
		t.Errorf("--version: %q", out)
	}
}

// packageFiles are the files both packages install (zsh's folder differs).
var packageFiles = []string{
	"/etc/gridha/gridha.yaml",
	"/etc/init.d/gridha-dns-updater",
	"/etc/init.d/hagd",
	"/etc/logrotate.d/gridha-dns-updater",
	"/etc/logrotate.d/hagd",
	"/usr/lib/systemd/system/gridha-dns-updater.service",
	"/usr/lib/systemd/system/hagd.service",
	"/usr/sbin/gridha",
	"/usr/share/bash-completion/completions/gridha",
	"/usr/share/doc/gridha/CHANGELOG.md",
	"/usr/share/doc/gridha/README.md",
	"/usr/share/doc/gridha/examples/bdii-dns.yaml",
	"/usr/share/doc/gridha/examples/minimal.yaml",
	"/usr/share/doc/gridha/examples/multigroup.yaml",
	"/usr/share/man/man1/gridha-hagd.1.gz",
	"/usr/share/man/man1/gridha-install.1.gz",
	"/usr/share/man/man1/gridha-verify.1.gz",
	"/usr/share/man/man1/gridha.1.gz",
}

var configFiles = []string{
	"/etc/gridha/gridha.yaml", "/etc/init.d/gridha-dns-updater", "/etc/init.d/hagd",
	"/etc/logrotate.d/gridha-dns-updater", "/etc/logrotate.d/hagd",
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func missing(have, want []string) []string {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	var out []string
	for _, w := range want {
		if !set[w] {
			out = append(out, w)
		}
	}
	return out
}

// TestRPM reads the .rpm of each architecture with Debian's rpm: files,
// modes, configuration files (kept when edited), architecture and the
// scriptlets.
func TestRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no rpm: scripts/install-deps.sh installs it")
		}
		t.Skip("no rpm (Debian package rpm)")
	}
	for _, rpmArch := range []string{"x86_64", "aarch64"} {
		p := artifact(t, "gridha-*."+rpmArch+".rpm")
		files := lines(run(t, "rpm", "-qlp", p))
		if m := missing(files, append(packageFiles, "/usr/share/zsh/site-functions/_gridha")); len(m) > 0 {
			t.Errorf("%s lacks %v; has %v", p, m, files)
		}
		for _, f := range files {
			if strings.HasPrefix(f, "/usr/share/zsh/vendor-completions") || strings.Contains(f, "/usr/local/") {
				t.Errorf("%s holds %s", p, f)
			}
		}
		if got := lines(run(t, "rpm", "-qcp", p)); strings.Join(got, " ") != strings.Join(configFiles, " ") {
			t.Errorf("%s configuration files %v, want %v", p, got, configFiles)
		}
		q := run(t, "rpm", "-qp", "--qf", "%{NAME} %{ARCH} %{VERSION}\n", p)
		if !strings.HasPrefix(q, "gridha "+rpmArch+" ") || !regexp.MustCompile(`^gridha \S+ [0-9]`).MatchString(q) {
			t.Errorf("%s: %q", p, q)
		}
		modes := run(t, "rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILENAMES}\n]", p)
		for _, w := range []string{"-rwxr-xr-x root /usr/sbin/gridha", "-rwxr-xr-x root /etc/init.d/hagd", "-rw-r--r-- root /etc/gridha/gridha.yaml"} {
			if !strings.Contains(modes, w+"\n") {
				t.Errorf("%s: no %q in\n%s", p, w, modes)
			}
		}
		scripts := run(t, "rpm", "-qp", "--scripts", p)
		for _, w := range []string{
			"postinstall scriptlet (using /bin/sh):", "systemctl daemon-reload", "systemctl try-restart gridha-dns-updater.service",
			"hagd still runs the previous gridha",
			"preuninstall scriptlet (using /bin/sh):", `"/etc/init.d/$s" stop`, "remove|0)",
			"postuninstall scriptlet (using /bin/sh):",
		} {
			if !strings.Contains(scripts, w) {
				t.Errorf("%s scriptlets lack %q:\n%s", p, w, scripts)
			}
		}
		for _, script := range []string{"postinstall.sh", "preremove.sh", "postremove.sh"} {
			run(t, "sh", "-n", script)
		}
	}
}

// hagdConf is a one-node multigroup: the node elects itself master of
// group rb and runs the service script.
const hagdConf = `id = pkg1
group = rb:10
script = /opt/pkgtest/service
key = /opt/lcg/etc/hagd.key
timeout = 5s
stop_timeout = 2s
dt1 = 1s
dt2 = 300ms
heartbeat = 200ms
status_interval = 500ms
lease = file
lease_file = /var/lib/hagd-lease
lease_ttl = 3s
lease_renew = 300ms
lease_timeout = 300ms
`

// serviceScript stands for lcg-ha-service: it records each call.
const serviceScript = `#!/bin/sh
echo "$1 $2" >> /var/log/pkgtest-service.log
case "$1" in
start) touch /run/pkgtest-up ;;
stop) rm -f /run/pkgtest-up ;;
status) [ -e /run/pkgtest-up ] || exit 3 ;;
esac
exit 0
`

// TestDebOnBed installs the .deb with dpkg -i on a test-bed host (whose
// /usr, /etc and /var, dpkg's database included, are its own overlays: the
// machine's are untouched), then checks what an admin would: the package
// is installed, gridha --version, man gridha, completion, the example
// inventory, the packaged hagd init script starts hagd, which elects itself
// and runs the service, and stops it; dpkg -r removes the binary, keeps the
// edited configuration.
func TestDebOnBed(t *testing.T) {
	deb := artifact(t, "gridha_*_"+runtime.GOARCH+".deb")
	_, machineHad := os.Stat("/usr/sbin/gridha")
	bed := testbed.New(t, "pkg1")
	h := bed.MustHost("pkg1")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sh := func(script string) string {
		t.Helper()
		out, err := h.Sh(ctx, script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return strings.TrimSpace(out)
	}
	if err := h.CopyIn(deb, "/root/gridha.deb"); err != nil {
		t.Fatal(err)
	}
	// man-db's trigger re-indexes every page of the machine (20 s on a
	// loaded machine); man finds the pages without the index.
	sh("rm -f /var/lib/man-db/auto-update")
	start := time.Now()
	t.Logf("dpkg -i:\n%s", sh("dpkg -i /root/gridha.deb 2>&1"))
	t.Logf("dpkg -i took %v", time.Since(start).Round(time.Millisecond))
	if os.IsNotExist(machineHad) {
		if _, err := os.Stat("/usr/sbin/gridha"); err == nil {
			t.Fatal("dpkg -i in the host wrote the machine's /usr/sbin/gridha")
		}
	}

	if s := sh("dpkg-query -W -f '${Status} ${Version}' gridha"); !strings.HasPrefix(s, "install ok installed ") {
		t.Errorf("dpkg-query: %q", s)
	}
	if s := sh("command -v gridha; gridha --version"); !regexp.MustCompile(`^/usr/sbin/gridha\ngridha \S+ \(commit [0-9a-f]{7,}, built `).MatchString(s) {
		t.Errorf("gridha --version: %q", s)
	}
	// man(1) as a user runs it, through the pager (cat), formatting off.
	man := sh("MANPAGER=cat MANWIDTH=100 man gridha 2>&1 | col -b")
	for _, w := range []string{"GRIDHA(1)", "gridha - install, verify and run high availability", "--inventory, -i FILE", "gridha-install(1)"} {
		if !strings.Contains(man, w) {
			t.Errorf("man gridha lacks %q:\n%s", w, man)
		}
	}
	if s := sh("MANPAGER=cat man -w gridha-hagd"); s != "/usr/share/man/man1/gridha-hagd.1.gz" {
		t.Errorf("man -w gridha-hagd: %q", s)
	}
	comp := sh(`bash --norc -c 'source /usr/share/bash-completion/completions/gridha; COMP_WORDS=(gridha install --ch); COMP_CWORD=2; _gridha; echo "${COMPREPLY[*]}"'`)
	if comp != "--check" {
		t.Errorf("packaged bash completion of 'gridha install --ch': %q", comp)
	}
	if s := sh("stat -c '%a %U' /etc/gridha/gridha.yaml; grep -c 'roles:' /etc/gridha/gridha.yaml"); !strings.HasPrefix(s, "644 root\n") {
		t.Errorf("/etc/gridha/gridha.yaml: %q", s)
	}
	if s := sh("cat /var/lib/dpkg/info/gridha.conffiles"); strings.Join(lines(s), " ") != strings.Join(configFiles, " ") {
		t.Errorf("conffiles: %q", s)
	}

	// The hosts run no systemd: the units are checked by systemd's own
	// parser (unknown keys, bad values, an ExecStart that is not there).
	// It also reads the other units on the host and warns about them
	// (Debian's garb.service: "Special user nobody"); only what it says
	// of ours counts.
	for _, u := range []string{"hagd.service", "gridha-dns-updater.service"} {
		out, err := h.Sh(ctx, "systemd-analyze verify /usr/lib/systemd/system/"+u+" 2>&1")
		var ours []string
		for _, l := range lines(out) {
			if strings.Contains(l, u) {
				ours = append(ours, l)
			}
		}
		if err != nil || len(ours) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", u, err, out)
		}
	}

	// The packaged init script starts hagd from /usr/sbin/gridha.
	for p, c := range map[string]string{"/opt/lcg/etc/hagd.conf": hagdConf, "/opt/pkgtest/service": serviceScript} {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, "service") {
			mode = 0o755
		}
		sh("mkdir -p " + filepath.Dir(p))
		if err := h.WriteFile(p, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	sh("umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /opt/lcg/etc/hagd.key")
	t.Logf("%s", sh("/etc/init.d/hagd start"))
	defer h.Sh(context.Background(), "/etc/init.d/hagd stop") //nolint:errcheck // cleanup; asserted below
	if s := sh("/etc/init.d/hagd status; readlink /proc/$(cat /run/hagd.pid)/exe"); !strings.HasSuffix(s, "\n/usr/sbin/gridha") {
		t.Errorf("hagd status: %q", s)
	}
	master := false
	for i := 0; i < 60 && !master; i++ { // bounded: 60 × 250 ms
		out, _ := h.Sh(ctx, "gridha hagd status -c /opt/lcg/etc/hagd.conf 2>&1; cat /var/log/pkgtest-service.log 2>/dev/null")
		master = strings.Contains(out, "master") && strings.Contains(out, "start rb")
		if !master {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if !master {
		t.Fatalf("hagd from the package did not become master and start the service:\n%s\n%s",
			sh("gridha hagd status -c /opt/lcg/etc/hagd.conf 2>&1 || :"), sh("cat /var/log/hagd.log"))
	}
	// An upgrade (here: the same package again) leaves a running hagd
	// alone, so the master keeps its services, and says so.
	pid := sh("cat /run/hagd.pid")
	calls := sh("wc -l < /var/log/pkgtest-service.log") // hagd stops before its first start
	if out := sh("dpkg -i /root/gridha.deb 2>&1"); !strings.Contains(out, "hagd still runs the previous gridha") {
		t.Errorf("dpkg -i over a running hagd:\n%s", out)
	}
	if s := sh("cat /run/hagd.pid; tail -n +$((" + calls + " + 1)) /var/log/pkgtest-service.log | grep -c '^stop' || :"); s != pid+"\n0" {
		t.Errorf("the upgrade restarted hagd or its service (pid %s, then pid and service calls %q)\n%s", pid, s, sh("cat /var/log/pkgtest-service.log"))
	}

	t.Logf("%s", sh("/etc/init.d/hagd stop"))
	if s := sh("/etc/init.d/hagd status || echo exit=$?; cat /var/log/pkgtest-service.log; ls /run/pkgtest-up 2>&1 || :"); !strings.Contains(s, "exit=3") ||
		!strings.Contains(s, "stop rb") || !strings.Contains(s, "No such file") {
		t.Errorf("after /etc/init.d/hagd stop: %q", s)
	}

	// dpkg -r: the binary goes, the edited configuration stays.
	sh("echo '# edited' >> /etc/gridha/gridha.yaml")
	sh("dpkg -r gridha 2>&1")
	if s := sh("ls /usr/sbin/gridha 2>&1 || :; tail -n1 /etc/gridha/gridha.yaml; dpkg-query -W -f '${Status}' gridha"); !strings.Contains(s, "No such file") ||
		!strings.Contains(s, "# edited\ndeinstall ok config-files") {
		t.Errorf("after dpkg -r: %q", s)
	}
}
