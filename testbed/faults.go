package testbed

import (
	"context"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Fault injection beyond Kill and LinkDown: what the state pool's
// end-to-end tests do to a box (issue 13). The machine has no iptables/nft
// tables and no tc actions, so a partition is a veth down (LinkDown) or a
// blackhole route rule inside a host (Blackhole).

// Crash is a box losing power, as far as its software can tell: every
// process of the host is killed with SIGKILL except its init (PID 1) and
// the sshd listener (/run/sshd.pid; it stands for the console an admin
// reaches after the reboot), and the FUSE mounts whose daemons died are
// detached, as a reboot would find them gone. Files and /run stay (pid
// files are stale: init scripts check them). It returns the commands
// killed ("pid comm" lines), for the test log.
func (h *Host) Crash(ctx context.Context) (string, error) {
	// One shell: the pids are read and killed in the host's own PID
	// namespace; the listing skips this shell and its children.
	script := `self=$$; sshd=$(cat /run/sshd.pid 2>/dev/null)
killed=""
for p in /proc/[0-9]*; do
	p=${p#/proc/}
	[ "$p" = 1 ] || [ "$p" = "$self" ] || [ "$p" = "$sshd" ] && continue
	pp=$(awk '/^PPid:/{print $2}' /proc/$p/status 2>/dev/null)
	[ "$pp" = "$self" ] && continue
	killed="$killed$p $(cat /proc/$p/comm 2>/dev/null)
"
	kill -9 "$p" 2>/dev/null
done
printf '%s' "$killed"
sleep 0.2
awk '$3 ~ /^fuse/ {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
true`
	out, err := h.Sh(ctx, script)
	if err != nil {
		return out, fmt.Errorf("%s: crash: %w", h.Name, err)
	}
	return out, nil
}

// Boot is the crashed box starting again: `mount -a` (fstab, _netdev lines
// too), then, in name order, every init script gridha's runs enabled on
// this host (the S links in the host's own /etc/rc2.d, i.e. made after the
// bed came up; the machine's own are not this host's) and extra (init
// script names, started after them). It returns their output.
func (h *Host) Boot(ctx context.Context, extra ...string) (string, error) {
	for _, e := range extra {
		if !daemonNameRE.MatchString(e) {
			return "", fmt.Errorf("%s: boot: bad init script name %q", h.Name, e)
		}
	}
	// The host's upper dir is a path on this machine, which the host
	// cannot see: the links made after the bed came up are listed here.
	links, err := h.enabledHere()
	if err != nil {
		return "", err
	}
	script := "mount -a 2>&1\n"
	for _, l := range links {
		script += "echo 'boot: " + l + " start'; /etc/rc2.d/" + l + " start </dev/null 2>&1\n"
	}
	for _, e := range extra {
		script += "echo 'boot: " + e + " start'; /etc/init.d/" + e + " start </dev/null 2>&1\n"
	}
	script += "true"
	out, err := h.Sh(ctx, script)
	if err != nil {
		return out, fmt.Errorf("%s: boot: %w", h.Name, err)
	}
	return out, nil
}

// enabledHere lists the rc2.d S links in the host's own /etc (its upper
// dir; a link removed there is a whiteout, not a symlink).
func (h *Host) enabledHere() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(h.Upper, "etc", "rc2.d"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: boot: %w", h.Name, err)
	}
	var out []string
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 && strings.HasPrefix(e.Name(), "S") && daemonNameRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// blackholePrio is the priority of Blackhole's rules: before the main table.
const blackholePrio = 90

// Blackhole makes the host drop everything it sends to addrs (`ip rule ...
// blackhole` inside its network namespace): with TCP no connection either
// way, since replies are dropped too. Other hosts keep reaching each other.
func (h *Host) Blackhole(ctx context.Context, addrs ...string) error {
	return h.blackhole(ctx, "add", addrs)
}

// Unblackhole removes the rules Blackhole added for addrs.
func (h *Host) Unblackhole(ctx context.Context, addrs ...string) error {
	return h.blackhole(ctx, "del", addrs)
}

func (h *Host) blackhole(ctx context.Context, op string, addrs []string) error {
	var sb strings.Builder
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("%s: blackhole: %w", h.Name, err)
		}
		fmt.Fprintf(&sb, "ip rule %s to %s prio %s blackhole", op, ip, strconv.Itoa(blackholePrio))
		if op == "del" {
			sb.WriteString(" 2>/dev/null || true")
		}
		sb.WriteString("\n")
	}
	if out, err := h.Sh(ctx, "set -e\n"+sb.String()); err != nil {
		return fmt.Errorf("%s: blackhole %s %s: %w: %s", h.Name, op, strings.Join(addrs, " "), err, out)
	}
	return nil
}
