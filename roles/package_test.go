package roles

import (
	"strings"
	"testing"

	"github.com/gridha/gridha/templates"
)

// TestPackageFiles: the packaged init scripts are the ones install writes
// (same template, same paths) but for gridha's path and the header, and
// every file runs gridha from PackageBinary.
func TestPackageFiles(t *testing.T) {
	files, err := PackageFiles()
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]PackagedFile{}
	for _, f := range files {
		byPath[f.Path] = f
		if strings.Contains(string(f.Content), "Managed by gridha") || !strings.Contains(string(f.Content), "Installed by the gridha package") {
			t.Errorf("%s: wrong header:\n%s", f.Path, f.Content)
		}
		if strings.Contains(string(f.Content), GridhaBinary) {
			t.Errorf("%s runs %s, not %s", f.Path, GridhaBinary, PackageBinary)
		}
	}
	for _, p := range []string{"/etc/init.d/hagd", "/usr/lib/systemd/system/hagd.service", "/etc/logrotate.d/hagd",
		"/etc/init.d/gridha-dns-updater", "/usr/lib/systemd/system/gridha-dns-updater.service", "/etc/logrotate.d/gridha-dns-updater"} {
		if _, ok := byPath[p]; !ok {
			t.Errorf("no %s in %v", p, files)
		}
	}
	installed, err := templates.Render("hagd.init.tmpl", hagdInitData(GridhaBinary, "/opt/lcg/etc/hagd.conf", 1200))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(string(installed), GridhaBinary, PackageBinary)
	got := string(byPath[HAGDInitScript].Content)
	if strip(got) != strip(want) || byPath[HAGDInitScript].Mode != 0o755 {
		t.Errorf("packaged hagd init script differs from install rb-node's beyond header and binary:\n%s\n---\n%s", got, want)
	}
	unit := string(byPath["/usr/lib/systemd/system/hagd.service"].Content)
	for _, w := range []string{"ExecStart=/usr/sbin/gridha hagd run -c /opt/lcg/etc/hagd.conf\n", "TimeoutStopSec=120\n", "KillMode=process\n"} {
		if !strings.Contains(unit, w) {
			t.Errorf("hagd.service lacks %q:\n%s", w, unit)
		}
	}
	if u := string(byPath["/usr/lib/systemd/system/gridha-dns-updater.service"].Content); !strings.Contains(u,
		"ExecStart=/usr/sbin/gridha dns-updater run --config /etc/gridha/dns-updater.conf\n") {
		t.Errorf("dns updater unit:\n%s", u)
	}
}

// strip drops the comment lines that are the header.
func strip(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "# Managed by gridha") || strings.HasPrefix(l, "# and replaced by") ||
			strings.HasPrefix(l, "# Installed by the gridha package") || strings.HasPrefix(l, "# kept on upgrade") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
