// Package standins installs, on test-bed hosts, stand-ins for software that no
// longer exists: the gLite RB daemons and their init scripts
// (glite-rb-daemon, rb-service.init) and sec_rpc's snfshost and rpc_psrv.
// Each file's header says which real program it stands for.
package standins

import (
	"context"
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/gridha/gridha/testbed"
)

//go:embed glite-rb-daemon rb-service.init snfshost rpc_psrv
var files embed.FS

// RBStateDirs maps each gLite RB service to the state folder its stand-in
// writes into (slide 8's folders).
var rbStateDirs = map[string]string{
	"edg-wl-ns":           "/var/edgwl",
	"edg-wl-wm":           "/var/edgwl",
	"edg-wl-jc":           "/var/edgwl",
	"edg-wl-lm":           "/var/edgwl",
	"edg-wl-locallogger":  "/var/edgwl",
	"edg-wl-bkserverd":    "/var/edgwl",
	"edg-wl-proxyrenewal": "/opt/edg/var/spool/edg-wl-renewd",
	"myproxy":             "/var/myproxy",
	"condor":              "/opt/condor/var/condor",
}

// RBStateDir is the state folder the stand-in of service writes into ("" for
// an unknown service).
func RBStateDir(service string) string { return rbStateDirs[service] }

// RBServices lists the services the stand-ins know, sorted.
func RBServices() []string {
	out := make([]string, 0, len(rbStateDirs))
	for s := range rbStateDirs {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// InstallRB installs the glite-rb-daemon stand-in and an init script
// /etc/init.d/<service> for each service, enabled at boot (update-rc.d
// defaults) and, when start, started: each then keeps writing job files
// into its state folder.
func InstallRB(ctx context.Context, h *testbed.Host, start bool, services ...string) error {
	daemon, err := files.ReadFile("glite-rb-daemon")
	if err != nil {
		return err
	}
	if err := h.WriteFile("/usr/local/sbin/glite-rb-daemon", daemon, 0o755); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	tmpl, err := files.ReadFile("rb-service.init")
	if err != nil {
		return err
	}
	for _, s := range services {
		dir := rbStateDirs[s]
		if dir == "" {
			return fmt.Errorf("no stand-in for RB service %q (known: %s)", s, strings.Join(RBServices(), ", "))
		}
		script := strings.NewReplacer("@NAME@", s, "@DIR@", dir).Replace(string(tmpl))
		if err := h.WriteFile(path.Join("/etc/init.d", s), []byte(script), 0o755); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		cmd := "update-rc.d " + s + " defaults >/dev/null 2>&1 || { for l in 2 3 4 5; do mkdir -p /etc/rc$l.d; ln -sf ../init.d/" + s + " /etc/rc$l.d/S90" + s + "; done; }"
		if start {
			cmd += " && /etc/init.d/" + s + " start"
		}
		if out, err := h.Sh(ctx, cmd); err != nil {
			return fmt.Errorf("%s: install %s: %v: %s", h.Name, s, err, out)
		}
	}
	return nil
}

// InstallSecRPC installs the snfshost and rpc_psrv stand-ins in
// /usr/local/sbin. Both record their arguments in SecRPCLog.
func InstallSecRPC(h *testbed.Host) error {
	for _, n := range []string{"snfshost", "rpc_psrv"} {
		data, err := files.ReadFile(n)
		if err != nil {
			return err
		}
		if err := h.WriteFile("/usr/local/sbin/"+n, data, 0o755); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return nil
}

// SecRPCLog is where the sec_rpc stand-ins record their calls.
const SecRPCLog = "/var/log/standin-sec_rpc.log"
