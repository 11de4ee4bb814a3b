package main

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestManPages: gridha(1) and one page per visible command, generated from
// the command tree: every flag, subcommand and role of --help is in them,
// and man(1) renders them.
func TestManPages(t *testing.T) {
	d := DefaultDeps()
	d.Version, d.Date = "1.2.3", "2026-11-27T10:00:00Z"
	app := NewApp(d)
	pages, err := manPages(app, d.Version, d.Date)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"gridha.1"}
	for _, c := range app.Commands {
		if !c.Hidden {
			want = append(want, "gridha-"+c.Name+".1")
		}
	}
	if got := manPageNames(pages); strings.Join(got, " ") != strings.Join(sortedCopy(want), " ") {
		t.Fatalf("pages %v, want %v", got, want)
	}
	for name, page := range pages {
		s := string(page)
		title := strings.ToUpper(strings.TrimSuffix(name, ".1"))
		if !strings.Contains(s, ".TH "+title+` 1 "2026-11-27" "gridha 1.2.3"`) || !strings.Contains(s, ".SH NAME\n"+strings.TrimSuffix(name, ".1")+` \- `) {
			t.Errorf("%s: no title or NAME:\n%.300s", name, s)
		}
		if strings.Contains(s, "__package-files") || strings.Contains(s, "__complete") {
			t.Errorf("%s documents a hidden command", name)
		}
	}
	for _, c := range []struct{ page, want string }{
		{"gridha.1", `\fB--inventory\fP, \fB-i\fP \fIFILE\fP`},
		{"gridha.1", `\fB--version\fP`},
		{"gridha.1", `\fBgridha-install\fP(1)`},
		{"gridha-install.1", `\fB--check\fP`},
		{"gridha-install.1", `\fB--state-from\fP \fINODE\fP`},
		{"gridha-install.1", "rb-node       RB service provider"}, // the roles table, preformatted
		{"gridha-verify.1", "\n--output nagios prints one plugin line"},
		{"gridha-hagd.1", ".SS takeover GROUP"},
		{"gridha-dns-updater.1", ".SS run"},
	} {
		if !strings.Contains(string(pages[c.page]), c.want) {
			t.Errorf("%s lacks %q", c.page, c.want)
		}
	}
	man, err := exec.LookPath("man")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no man(1): scripts/install-deps.sh installs man-db")
		}
		t.Skip("no man(1) to render the pages (man-db; scripts/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "gridha-install.1")
	if err := os.WriteFile(p, pages["gridha-install.1"], 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(man, "-l", p)
	cmd.Env = append(os.Environ(), "MANWIDTH=100", "MAN_KEEP_FORMATTING=0", "PAGER=cat")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("man -l: %v\n%s", err, out)
	}
	// man writes bold and underline as overstrikes ("c\bc") when not on
	// a terminal.
	out = regexp.MustCompile(".\b").ReplaceAll(out, nil)
	for _, w := range []string{"GRIDHA-INSTALL(1)", "gridha install [OPTIONS] ROLE [ROLE...]", "--state-from NODE"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("man -l gridha-install.1 lacks %q:\n%s", w, out)
		}
	}
}

// TestPackageFilesCommand: the hidden build step writes the pages gzipped,
// the completion scripts and the daemons' files, with their modes.
func TestPackageFilesCommand(t *testing.T) {
	dir := t.TempDir()
	if r := runCLI(t, t.Context(), nil, "__package-files", dir); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for p, mode := range map[string]os.FileMode{
		"usr/share/man/man1/gridha.1.gz": 0o644, "usr/share/man/man1/gridha-hagd.1.gz": 0o644,
		"usr/share/bash-completion/completions/gridha": 0o644, "usr/share/zsh/_gridha": 0o644,
		"etc/init.d/hagd": 0o755, "etc/init.d/gridha-dns-updater": 0o755,
		"usr/lib/systemd/system/hagd.service": 0o644, "etc/logrotate.d/hagd": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", p, fi.Mode().Perm(), mode)
		}
	}
	f, err := os.Open(filepath.Join(dir, "usr/share/man/man1/gridha.1.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(b), ".TH GRIDHA 1") {
		t.Errorf("gridha.1.gz: %v %.100q", err, b)
	}
	if r := runCLI(t, t.Context(), nil, "--help"); strings.Contains(r.stdout, "__package-files") {
		t.Errorf("--help shows the hidden build step:\n%s", r.stdout)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
