package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// CPU is the processor time the host's processes used so far: user and
// system time of every live process in its PID namespace, plus what their
// waited-for children used (cutime, cstime). A process that exited was
// waited for by its parent (sshd for a session's shell, the host's init
// for orphans), so the sum covers it. The difference of two readings is
// what the host spent between them (benchmarks: host CPU per verify).
func (h *Host) CPU() (time.Duration, error) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", h.PID))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", h.Name, err)
	}
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, d := range dirs {
		if l, err := os.Readlink(d + "/ns/pid"); err != nil || l != ns {
			continue
		}
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces; fields 14-17
		// (utime stime cutime cstime) are 12-15 after the ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 15 {
			continue
		}
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * clockTick, nil
}
