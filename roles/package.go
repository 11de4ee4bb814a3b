package roles

import (
	"io/fs"
	"time"

	"github.com/gridha/gridha/hagd"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/templates"
)

// PackageBinary is where the .deb and .rpm install gridha: /usr/sbin, as
// its daemons and install are for root (install rb-node copies gridha to
// GridhaBinary, /usr/local/sbin, on nodes installed without the package).
const PackageBinary = "/usr/sbin/gridha"

// packageStopWait is how long the packaged hagd init script and unit wait
// for hagd to stop its groups: the package cannot know how many groups a
// node serves (install rb-node computes it from the inventory); 120 s
// covers 18 groups at hagd's default stop_timeout (5 s), plus 30 s.
func packageStopWait() time.Duration { return hagd.ExitWait(hagd.DefaultStopTimeout, 18) }

// PackagedFile is one file of the packages that gridha renders.
type PackagedFile struct {
	Path    string // where the package installs it
	Mode    fs.FileMode
	Content []byte
}

// PackageFiles are the daemons' files of the .deb and .rpm: the hagd init
// script, unit and logrotate file, and the DNS updater's, rendered from the
// templates install rb-node and install dns use, with the inventory's
// defaults (hagd.conf in /opt/lcg/etc, the updater as gridha-dns-updater
// reading /etc/gridha/dns-updater.conf) and gridha at PackageBinary.
func PackageFiles() ([]PackagedFile, error) {
	var rb inventory.RBNode
	rb.SetDefaults()
	var dns inventory.DNS
	dns.SetDefaults()
	u := dns.Updater
	hagdData := struct {
		Binary, Config string
		StopTimeoutSec int
	}{PackageBinary, rb.HAGD.Config, int(packageStopWait() / time.Second)}
	upd := updaterInitData(u, PackageBinary)
	files := []struct {
		path     string
		mode     fs.FileMode
		template string
		data     any
	}{
		{HAGDInitScript, 0o755, "hagd.init.tmpl", hagdInitData(PackageBinary, rb.HAGD.Config, int(packageStopWait()/(100*time.Millisecond)))},
		{"/usr/lib/systemd/system/hagd.service", 0o644, "hagd.service.tmpl", hagdData},
		{HAGDLogrotate, 0o644, "hagd.logrotate.tmpl", hagdLogrotateData()},
		{"/etc/init.d/" + u.ServiceName, 0o755, "dns-updater.init.tmpl", upd},
		{"/usr/lib/systemd/system/" + u.ServiceName + ".service", 0o644, "dns-updater.service.tmpl", upd},
		{"/etc/logrotate.d/" + u.ServiceName, 0o644, "dns-updater.logrotate.tmpl", upd},
	}
	out := make([]PackagedFile, 0, len(files))
	for _, f := range files {
		b, err := templates.RenderPackaged(f.template, f.data)
		if err != nil {
			return nil, err
		}
		out = append(out, PackagedFile{Path: f.path, Mode: f.mode, Content: b})
	}
	return out, nil
}
