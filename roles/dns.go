package roles

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gridha/gridha/dnsupdater"
	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/templates"
)

// DNS is the dns role: MAN05's DNS round robin with a fault-tolerant
// updater. One TSIG key (HMAC-SHA256, generated here, kept in the
// inventory's secrets folder) lets the updaters, and nothing else, change
// the A/AAAA records of the round-robin name on every primary (IBERGRID's
// one primary per site). Phases:
//
//  1. dns-primaries: on each primary, the key in its own file, gridha's
//     zone statement with the update-policy (named.conf.gridha), its include
//     line in named.conf.local, a zone file if there is none, and
//     `rndc reconfig` when any of that changed;
//  2. dns-records: the record set created on each primary with the
//     configured TTL by a signed RFC 2136 update;
//  3. dns-updaters: on each updater host, the gridha binary, the key
//     (0600), the dns-updater configuration, its init script and its
//     logrotate file;
//  4. dns-updater-service: unless a primary of this run failed (the
//     updater would sign for a primary that may not know its key), the
//     service restarted if it runs and its binary, key or configuration
//     changed, enabled at boot and started if it does not run (at most one
//     start or restart per run).
type DNS struct{}

// Name implements Role.
func (DNS) Name() string { return "dns" }

// Summary implements Role.
func (DNS) Summary() string {
	return "BDII DNS round robin: TSIG key, BIND primaries' update-policy, record set, dns-updater service"
}

// DNSPaths are where the role puts things on the primaries.
type DNSPaths struct {
	KeyFile    string // <conf_dir>/gridha-<key>.key
	GridhaConf string // <conf_dir>/named.conf.gridha
	LocalConf  string
	ZoneFile   string
}

// PrimaryPaths derives the primaries' paths from the settings.
func PrimaryPaths(s inventory.DNS) DNSPaths {
	dir := strings.TrimSuffix(s.Bind.ConfDir, "/")
	return DNSPaths{
		KeyFile:    dir + "/gridha-" + strings.TrimSuffix(s.KeyName, ".") + ".key",
		GridhaConf: dir + "/named.conf.gridha",
		LocalConf:  s.Bind.LocalConf,
		ZoneFile:   s.Bind.ZoneFile,
	}
}

// IncludeLine is gridha's line in named.conf.local.
func IncludeLine(gridhaConf string) string {
	return fmt.Sprintf("include %q; // managed by gridha", gridhaConf)
}

// NamedConfData is what named.conf.gridha.tmpl renders.
type NamedConfData struct {
	Path, LocalConf, KeyFile, Group string
	Zone, ZoneFile, Name            string
	KeyNames                        []string // two during a key rotation
}

// ZoneFileData is what bind-zone.db.tmpl renders.
type ZoneFileData struct {
	ZoneFile, Zone, Primary string
	NS                      []string
	TTL                     int
}

// InitScriptData is what dns-updater.init.tmpl renders.
type InitScriptData struct {
	Service, Binary, Config, PIDFile, LogFile string
}

// updaterInitData is what the updater's init script and unit are rendered
// from, on an updater host (binary u.Binary) or in the packages.
func updaterInitData(u inventory.DNSUpdater, binary string) InitScriptData {
	return InitScriptData{
		Service: u.ServiceName, Binary: binary, Config: u.ConfigPath,
		PIDFile: "/run/" + u.ServiceName + ".pid", LogFile: "/var/log/" + u.ServiceName + ".log",
	}
}

// Plan implements Role.
func (DNS) Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	s := inv.Roles.DNS
	players := inv.HostsWithRole("dns")
	if len(players) == 0 {
		return &installer.Plan{}, nil
	}
	// The inventory checked the settings (inventory/dns.go): zone, name,
	// primaries and bdiis set, the TTL, every host named, every BDII with
	// an IP address, the updater's timings.
	rotationPending := false
	if _, err := os.Stat(PendingTSIGKeyPath(inv, s.KeyName)); err == nil {
		rotationPending = true
	}
	if (opts.RotateKey || rotationPending) && len(opts.Limit) > 0 {
		for _, h := range players {
			if !opts.InLimit(h.Name) {
				what := "--rotate-key replaces"
				if !opts.RotateKey {
					what = "a TSIG key rotation is under way (" + PendingTSIGKeyPath(inv, s.KeyName) + "): it replaces"
				}
				return nil, fmt.Errorf("dns: %s the key on every primary and updater: "+
					"%s is outside --limit (run without --limit, or include every dns host)", what, h.Name)
			}
		}
	}
	zone := strings.TrimSuffix(s.ZoneFQDN(), ".")
	fqdn := s.FQDN()
	var want []netip.Addr
	for i, b := range s.BDIIs {
		a, err := netip.ParseAddr(s.BDIIAddress(inv, b))
		if err != nil {
			return nil, fmt.Errorf("dns: bdiis[%d] (%s): %w", i, b.Name, err)
		}
		want = append(want, a.Unmap())
	}
	// Everything that can fail is checked before the key is created or
	// rotated on the admin machine.
	u := s.Updater
	var source string
	var initScript, unit, rotate []byte
	var cfg *dnsupdater.Config
	if len(s.Updaters) > 0 {
		cfg = UpdaterConfig(inv, s)
		// What the updater will read must load (the inventory checked
		// its rules; this is the updater's own parser, as hagd.conf's
		// rendering parses its result).
		check := *cfg
		check.SetDefaults()
		if err := check.Validate(); err != nil {
			return nil, fmt.Errorf("dns: dns-updater configuration: %w", err)
		}
		source = u.BinarySource
		if source == "" && u.Service == "enabled" {
			exe, err := os.Executable()
			if err != nil || !strings.HasPrefix(filepath.Base(exe), "gridha") || strings.HasSuffix(exe, ".test") {
				return nil, fmt.Errorf("dns: the running program (%s) is not gridha: set roles.dns.updater.binary_source "+
					"to the gridha binary to install on updater hosts, or none", exe)
			}
			source = exe
		}
		var err error
		if initScript, err = templates.Render("dns-updater.init.tmpl", updaterInitData(u, u.Binary)); err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
		if rotate, err = templates.Render("dns-updater.logrotate.tmpl", updaterInitData(u, u.Binary)); err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
		if unit, err = templates.Render("dns-updater.service.tmpl", updaterInitData(u, u.Binary)); err != nil {
			return nil, fmt.Errorf("dns: %w", err)
		}
	}
	keys, err := LoadTSIGKeys(inv, s.KeyName, opts.RotateKey, opts.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	// A rotation goes in two steps so that every updater can always sign
	// with a key every primary accepts: the primaries accept the old and
	// the new key; then, only if every primary got there, the updaters
	// switch to the new key; then, only if every updater switched, the
	// primaries drop the old key and the admin machine's copy is replaced.
	// A host that fails or is unreachable stops the rotation where it is
	// (a working state); the next run goes on from there.
	key := keys.Active
	primaryKeys := []TSIGKey{key}
	updaterKey := key
	if keys.Pending != nil {
		primaryKeys = append(primaryKeys, *keys.Pending)
		updaterKey = *keys.Pending
	}
	if cfg != nil {
		cfg.TSIGKeyName = strings.ToLower(updaterKey.Name) + "."
	}
	paths := PrimaryPaths(s)
	var inLimit []string // the primaries this run converges
	for _, name := range s.Primaries {
		if opts.InLimit(name) {
			inLimit = append(inLimit, name)
		}
	}

	primaries := installer.Phase{Name: "dns-primaries", Steps: map[string][]installer.Step{}}
	records := installer.Phase{Name: "dns-records", Steps: map[string][]installer.Step{}}
	updaters := installer.Phase{Name: "dns-updaters", Steps: map[string][]installer.Step{}}
	// The service steps probe the init script, so they run in a phase after
	// the one that writes it.
	services := installer.Phase{Name: "dns-updater-service", Steps: map[string][]installer.Step{}}
	finish := installer.Phase{Name: "dns-rotation-finish", Steps: map[string][]installer.Step{}}
	commit := installer.Phase{Name: "dns-rotation-commit", Steps: map[string][]installer.Step{}}

	// NS records of a zone gridha creates: every primary.
	var ns []string
	for _, name := range s.Primaries {
		ns = append(ns, hostFQDN(inv.Host(name)))
	}
	for _, h := range limitedHosts(inv, s.Primaries, opts) {
		primaryFiles := func(ks []TSIGKey) (keyFile, conf []byte, err error) {
			var names []string
			for _, k := range ks {
				keyFile = append(keyFile, k.BINDFile()...)
				names = append(names, k.Name)
			}
			conf, err = templates.Render("named.conf.gridha.tmpl", NamedConfData{
				Path: paths.GridhaConf, LocalConf: paths.LocalConf, KeyFile: paths.KeyFile, Group: s.Bind.Group,
				Zone: zone, ZoneFile: paths.ZoneFile, KeyNames: names, Name: fqdn,
			})
			if err != nil {
				return nil, nil, fmt.Errorf("dns: %s: %w", h.Name, err)
			}
			return keyFile, conf, nil
		}
		keyFile, conf, err := primaryFiles(primaryKeys)
		if err != nil {
			return nil, err
		}
		zoneData, err := templates.Render("bind-zone.db.tmpl", ZoneFileData{
			ZoneFile: paths.ZoneFile, Zone: zone + ".", Primary: hostFQDN(h), NS: ns, TTL: s.TTL,
		})
		if err != nil {
			return nil, fmt.Errorf("dns: %s: %w", h.Name, err)
		}
		include := IncludeLine(paths.GridhaConf)
		includeRe := fmt.Sprintf("include %q;", paths.GridhaConf)
		primaries.Steps[h.Name] = []installer.Step{
			zoneConflict{Zone: zone, ConfDir: s.Bind.ConfDir, Own: paths.GridhaConf},
			// named owns the zone file once it runs: written only when missing.
			steps.File{Path: paths.ZoneFile, Content: zoneData, Mode: 0o644, Owner: s.Bind.Group, Group: s.Bind.Group, CreateOnly: true},
			installer.Notify(withSecrets(steps.File{Path: paths.KeyFile, Content: keyFile, Mode: 0o640, Owner: "root", Group: s.Bind.Group, Secret: true}, primaryKeys), groupNamed),
			installer.Notify(steps.File{Path: paths.GridhaConf, Content: conf, Mode: 0o644, Owner: "root", Group: s.Bind.Group}, groupNamed),
			installer.Notify(ownedLines{
				Path: paths.LocalConf,
				Want: []ownedLine{{Key: "include", Line: include}},
				Owns: func(line string) (string, bool) {
					if strings.HasPrefix(strings.TrimSpace(line), includeRe) {
						return "include", true
					}
					return "", false
				},
				Mode: 0o644, Owner: "root", Group: s.Bind.Group,
			}, groupNamed),
			namedReload([]string{paths.KeyFile, paths.GridhaConf, paths.LocalConf}),
			// Last: reached only when every step above succeeded (a failed
			// step skips the rest of the host's steps).
			primaryDone,
		}
		addr := s.Bind.UpdateAddress
		if s.UpdateVia == "controller" {
			addr = net.JoinHostPort(h.Address, "53")
		}
		records.Steps[h.Name] = []installer.Step{rrsetStep{
			Zone: zone + ".", Name: fqdn, TTL: uint32(s.TTL), Want: want, Key: key, Via: s.UpdateVia, Addr: addr,
		}}
		if keys.Pending != nil {
			newKeyFile, newConf, err := primaryFiles([]TSIGKey{*keys.Pending})
			if err != nil {
				return nil, err
			}
			finish.Steps[h.Name] = []installer.Step{
				primariesOK(inLimit, "the primaries keep accepting the old key"),
				updatersOK(s.Updaters),
				installer.Notify(withSecrets(steps.File{Path: paths.KeyFile, Content: newKeyFile, Mode: 0o640, Owner: "root", Group: s.Bind.Group, Secret: true}, primaryKeys), groupNamed),
				installer.Notify(steps.File{Path: paths.GridhaConf, Content: newConf, Mode: 0o644, Owner: "root", Group: s.Bind.Group}, groupNamed),
				namedReload([]string{paths.KeyFile, paths.GridhaConf, paths.LocalConf}),
				primaryFinished,
			}
		}
	}
	if keys.Pending != nil && len(inLimit) > 0 {
		commit.Steps[inLimit[0]] = []installer.Step{rotationCommit{
			Key: "TSIG key", Kind: primaryFinished.kind, Hosts: inLimit, Who: "primary ",
			Active: TSIGKeyPath(inv, s.KeyName), Pending: PendingTSIGKeyPath(inv, s.KeyName),
			Done: "every primary and updater uses the new TSIG key; " + TSIGKeyPath(inv, s.KeyName) + " holds it, the old key is gone",
		}}
	}

	// The updater's files notify its restart, which only a managed
	// service has (service: enabled); otherwise the service is the
	// administrator's, as are its restarts.
	notifyUpdater := func(st installer.Step) installer.Step {
		if u.Service != "enabled" {
			return st
		}
		return installer.Notify(st, groupUpdater)
	}
	if len(s.Updaters) > 0 {
		for _, h := range limitedHosts(inv, s.Updaters, opts) {
			var st []installer.Step
			if keys.Pending != nil {
				// The new key only once every primary accepts it.
				st = append(st, primariesOK(inLimit, "the updater keeps the old key"))
			}
			st = append(st, steps.Dir{Path: filepath.Dir(u.ConfigPath), Mode: 0o755, Owner: "root", Group: "root"})
			if filepath.Dir(u.KeyPath) != filepath.Dir(u.ConfigPath) {
				st = append(st, steps.Dir{Path: filepath.Dir(u.KeyPath), Mode: 0o755, Owner: "root", Group: "root"})
			}
			if source != "" && source != "none" {
				st = append(st, notifyUpdater(steps.Copy{Path: u.Binary, Source: source, Mode: 0o755, Owner: "root", Group: "root"}))
			}
			st = append(st,
				notifyUpdater(withSecrets(steps.File{Path: u.KeyPath, Content: updaterKey.BINDFile(), Mode: 0o600, Owner: "root", Group: "root", Secret: true}, primaryKeys)),
				notifyUpdater(steps.File{Path: u.ConfigPath, Content: cfg.Marshal(), Mode: 0o644, Owner: "root", Group: "root"}),
				notifyUpdater(steps.File{Path: "/etc/init.d/" + u.ServiceName, Content: initScript, Mode: 0o755, Owner: "root", Group: "root"}),
				notifyUpdater(systemdUnit{Path: "/etc/systemd/system/" + u.ServiceName + ".service", Content: unit}),
				steps.File{Path: "/etc/logrotate.d/" + u.ServiceName, Content: rotate, Mode: 0o644, Owner: "root", Group: "root"},
			)
			updaters.Steps[h.Name] = st
			if u.Service == "enabled" {
				// The restart comes first and only restarts a running
				// updater: a stopped one is started once, by the Service
				// step, with the new key and configuration (never a start
				// and then a restart in one run).
				services.Steps[h.Name] = []installer.Step{
					primariesOK(inLimit, "it keeps running as it was"),
					steps.Restart{Service: u.ServiceName, On: groupUpdater},
					steps.Service{Name: u.ServiceName, Boot: steps.BootEnabled, State: steps.StateRunning},
					updaterDone,
				}
			} else {
				updaters.Steps[h.Name] = append(updaters.Steps[h.Name], updaterDone)
			}
		}
	}
	phases := []installer.Phase{primaries, records, updaters, services}
	if keys.Pending != nil {
		phases = append(phases, finish, commit)
	}
	return &installer.Plan{Phases: phases}, nil
}

// limitedHosts are the hosts names (the role's list; the inventory
// checked each is a host) that pass --limit, in their order.
func limitedHosts(inv *inventory.Inventory, names []string, opts Options) []*inventory.Host {
	var out []*inventory.Host
	for _, name := range names {
		if h := inv.Host(name); h != nil && opts.InLimit(h.Name) {
			out = append(out, h)
		}
	}
	return out
}

// UpdaterConfig is the dns-updater configuration the updater hosts get.
func UpdaterConfig(inv *inventory.Inventory, s inventory.DNS) *dnsupdater.Config {
	u := s.Updater
	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }
	c := &dnsupdater.Config{
		Zone:          s.ZoneFQDN(),
		Name:          s.FQDN(),
		TTL:           sec(s.TTL),
		TSIGKeyName:   s.KeyFQDN(),
		TSIGAlgorithm: TSIGAlgorithm,
		TSIGKeyFile:   u.KeyPath,
		Interval:      sec(u.Interval),
		FailAfter:     u.FailAfter,
		RecoverAfter:  u.RecoverAfter,
		Freshness:     sec(u.Freshness),
		MinEntries:    u.MinEntries,
		QueryBase:     u.QueryBase,
		CheckTimeout:  sec(u.CheckTimeout),
		DNSTimeout:    sec(u.DNSTimeout),
		StateFile:     u.StateFile,
	}
	for _, name := range s.Primaries {
		if h := inv.Host(name); h != nil {
			c.Primaries = append(c.Primaries, net.JoinHostPort(h.Address, "53"))
		}
	}
	for _, b := range s.BDIIs {
		a, err := netip.ParseAddr(s.BDIIAddress(inv, b))
		if err != nil {
			continue
		}
		name := b.Name
		if name == "" {
			name = a.String()
		}
		c.BDIIs = append(c.BDIIs, dnsupdater.BDII{Name: name, Address: a.Unmap(), Port: b.Port})
	}
	for _, cc := range u.CheckCommands {
		c.Commands = append(c.Commands, dnsupdater.CommandCheck{Name: cc.Name, Argv: cc.Argv})
	}
	// Marshal writes only what is set: the updater applies its own defaults
	// to what the inventory left out.
	return c
}

func hostFQDN(h *inventory.Host) string {
	if h == nil {
		return ""
	}
	n := h.Hostname
	if n == "" {
		n = h.Address
	}
	if net.ParseIP(n) != nil {
		// An address is no name server name: set the host's hostname in
		// the inventory. A placeholder outside the zone keeps it loadable.
		return h.Name + ".invalid."
	}
	return strings.TrimSuffix(n, ".") + "."
}
