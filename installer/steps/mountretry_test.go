package steps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMountCommandRetries runs the mount command that Apply sends, with a
// mount(8) stand-in on PATH that refuses its first calls as a busy sshd
// would: a network mount is tried 3 times and succeeds on the third, fails
// when the server refuses a fourth time, and a local file system is tried
// once.
func TestMountCommandRetries(t *testing.T) {
	if testing.Short() {
		t.Skip("sleeps 3 s per case")
	}
	for _, c := range []struct {
		fstype  string
		refuse  int
		wantOK  bool
		wantRun int
	}{
		{"fuse.sshfs", 2, true, 3},
		{"fuse.sshfs", 3, false, 3},
		{"glusterfs", 1, true, 2},
		{"fuse.bindfs", 1, false, 1},
	} {
		dir := t.TempDir()
		count := filepath.Join(dir, "count")
		fake := "#!/bin/sh\nn=$(cat " + count + " 2>/dev/null || echo 0); n=$((n+1)); echo $n > " + count + "\n" +
			"[ $n -gt " + string(rune('0'+c.refuse)) + " ] || { echo 'read: Connection reset by peer' >&2; exit 1; }\n"
		if err := os.WriteFile(filepath.Join(dir, "mount"), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", mountCommand(c.fstype, "ro", "snfs@198.18.0.10:/", filepath.Join(dir, "mnt")))
		cmd.Env = append(os.Environ(), "PATH="+dir+":/usr/bin:/bin")
		out, err := cmd.CombinedOutput()
		runs, _ := os.ReadFile(count)
		if (err == nil) != c.wantOK || strings.TrimSpace(string(runs)) != string(rune('0'+c.wantRun)) {
			t.Errorf("%s refused %d times: err %v, mount ran %q times, want ok=%v after %d\n%s", c.fstype, c.refuse, err, strings.TrimSpace(string(runs)), c.wantOK, c.wantRun, out)
		}
	}
}
