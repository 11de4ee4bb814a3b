package hagd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The service IP as a kernel-held lease. hagd adds a group's address with
// a Linux address lifetime (valid_lft = preferred_lft = T whole seconds)
// and extends it after every successful lease renewal, so that the kernel
// itself removes the address before the lease can pass to another node,
// even if hagd is killed -9, OOM-killed or frozen (SIGSTOP). T is chosen
// from the lease deadline D the machine gives (the lease's earliest expiry
// on the database clock, less the margin and clock-rate drift):
//
//	T = floor(D - now - KernelSlack), and after the call returned at
//	instant a, a + T + KernelSlack <= D must still hold
//
// (a frozen hagd may resume between computing T and the call: the check
// after the call catches that, and the address is removed instead).

// ErrFenced is reported when the lease deadline is too close to give the
// service IP even one second of kernel lifetime: the address was removed.
var ErrFenced = errors.New("lease too close to its deadline: service IP removed")

// IPCommand runs `ip` (a variable for tests of the daemon without root).
type IPCommand func(ctx context.Context, args ...string) error

func runIP(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipLifetime is the whole seconds of lifetime the kernel may give the
// address at now so that it is gone by deadline (0: none possible).
func ipLifetime(now, deadline time.Time) int {
	room := deadline.Sub(now) - KernelSlack
	if room < time.Second {
		return 0
	}
	return int(room / time.Second)
}

// setServiceIP adds or extends ip so that the kernel drops it by deadline
// (zero deadline: no lease, the address is permanent). It returns whether
// the address may be up, and ErrFenced (after removing it) when the
// deadline leaves no room.
func setServiceIP(ctx context.Context, run IPCommand, ip ServiceIP, deadline time.Time) (bool, error) {
	if deadline.IsZero() {
		err := run(ctx, "addr", "replace", ip.Prefix.String(), "dev", ip.Dev)
		return err == nil, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		t := ipLifetime(time.Now(), deadline)
		if t == 0 {
			break
		}
		lft := strconv.Itoa(t)
		err := run(ctx, "addr", "replace", ip.Prefix.String(), "dev", ip.Dev, "valid_lft", lft, "preferred_lft", lft)
		after := time.Now()
		if err != nil {
			if derr := delServiceIP(ctx, run, ip); derr != nil {
				return true, fmt.Errorf("%w; removing it: %v", err, derr)
			}
			return false, err
		}
		if !after.Add(time.Duration(t)*time.Second + KernelSlack).After(deadline) {
			return true, nil
		}
		// The call took so long (a frozen or starved hagd) that the
		// lifetime may reach past the deadline: shorten it or remove.
	}
	if err := delServiceIP(ctx, run, ip); err != nil {
		return true, fmt.Errorf("%w (removal failed: %v)", ErrFenced, err)
	}
	return false, ErrFenced
}

// delServiceIP removes ip; an address that is not there is no error.
func delServiceIP(ctx context.Context, run IPCommand, ip ServiceIP) error {
	err := run(ctx, "addr", "del", ip.Prefix.String(), "dev", ip.Dev)
	if err != nil {
		// "Address not found", "Cannot assign requested address" (older
		// kernels), a device gone: what counts is that it is not there.
		if up, lerr := hasServiceIP(ip); lerr == nil && !up {
			return nil
		}
	}
	return err
}

// hasServiceIP reports whether ip is on its interface now.
func hasServiceIP(ip ServiceIP) (bool, error) {
	ifc, err := net.InterfaceByName(ip.Dev)
	if err != nil {
		if strings.Contains(err.Error(), "no such network interface") {
			return false, nil
		}
		return false, err
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(net.IP(ip.Prefix.Addr().AsSlice())) {
			return true, nil
		}
	}
	return false, nil
}
