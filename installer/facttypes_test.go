package installer

import (
	"os"
	"os/exec"
	"testing"
)

func TestServiceState(t *testing.T) {
	tests := []struct {
		name, out        string
		installed, en, r bool
	}{
		{"debian enabled running", "init=sysv-debian\nload=loaded\nlink=/etc/rc0.d/K01x\nlink=/etc/rc2.d/S01x\nstatus=0\n", true, true, true},
		{"debian disabled (K links only)", "init=sysv-debian\nload=loaded\nlink=/etc/rc2.d/K01x\nlink=/etc/rcS.d/S01x\nstatus=3\n", true, false, false},
		{"redhat rc.d", "init=sysv-redhat\nload=loaded\nlink=/etc/rc.d/rc3.d/S99x\nstatus=1\n", true, true, false},
		{"not installed", "init=sysv-debian\nload=not-found\n", false, false, false},
		{"systemd enabled", "init=systemd\nload=loaded\nboot=enabled\nstatus=0\n", true, true, true},
		{"systemd masked", "init=systemd\nload=masked\nboot=masked\nstatus=3\n", true, false, false},
		{"systemd missing", "init=systemd\nload=not-found\nboot=\nstatus=4\n", false, false, false},
	}
	for _, tc := range tests {
		st := ParseServiceState(tc.out)
		if st.Installed != tc.installed || st.Enabled != tc.en || st.Running != tc.r {
			t.Errorf("%s: %+v", tc.name, st)
		}
	}
	for code, want := range map[int]string{0: "running", 1: "dead, pid file exists", 3: "not running", 4: "status unknown", 7: "status exit 7"} {
		if got := LSBStatusText(code); got != want {
			t.Errorf("LSB %d: %q", code, got)
		}
		if LSBRunning(code) != (code == 0) {
			t.Errorf("LSBRunning(%d)", code)
		}
	}
}

func TestParseUserState(t *testing.T) {
	out := "pw=edguser:x:999:999:EDG user:/home/edguser:/bin/sh\ngid=edguser\nhome=/home/edguser\n" +
		"/home/edguser|directory|755|edguser|edguser\n/home/edguser/.ssh|directory|700|edguser|edguser\n" +
		"/home/edguser/.ssh/authorized_keys|regular file|600|edguser|edguser\nak=a2V5Cg==\n"
	st := ParseUserState(out)
	if !st.Exists || st.Home != "/home/edguser" || st.Shell != "/bin/sh" || st.Group != "edguser" ||
		!st.HomeStat.Exists || st.SSHStat.Mode != "700" || st.AKStat.Kind != "regular file" || string(st.Keys) != "key\n" {
		t.Errorf("%+v", st)
	}
	if st := ParseUserState("home=/home/new\n"); st.Exists || st.Home != "/home/new" || st.HomeStat.Exists {
		t.Errorf("absent user: %+v", st)
	}
}

// TestMountProbeReadsProcMounts: the mount probe, read by sh alone, gives
// /proc/mounts byte for byte (what cat gave).
func TestMountProbeReadsProcMounts(t *testing.T) {
	want, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Skip(err)
	}
	got, err := exec.Command("/bin/sh", "-c", MountsProbe().script()).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("mount probe gave\n%s\nwant\n%s", got, want)
	}
}
