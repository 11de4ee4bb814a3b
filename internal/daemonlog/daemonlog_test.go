package daemonlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"log/syslog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStderrText(t *testing.T) {
	var buf bytes.Buffer
	log, closeLog, err := New(Options{Stderr: &buf, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	log.Info("transition", "group", "rb1", "from", "slave")
	log.Debug("not shown")
	got := buf.String()
	if !strings.HasPrefix(got, "time=") || !strings.Contains(got, ` level=INFO msg=transition group=rb1 from=slave`+"\n") ||
		strings.Contains(got, "not shown") {
		t.Errorf("stderr text:\n%s", got)
	}
}

func TestJournaldJSONHasNoTime(t *testing.T) {
	// The journal's stream is the file whose device:inode JOURNAL_STREAM
	// names; a SysV script's log file, with the variable inherited, is not.
	journal, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer journal.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(journal.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"JOURNAL_STREAM": fmt.Sprintf("%d:%d", st.Dev, st.Ino)}
	log, _, err := New(Options{Stderr: journal, Format: FormatJSON, Level: slog.LevelDebug, Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	log.With("node", "rb1").Debug("packet", "from", "198.18.0.12")
	b, err := os.ReadFile(journal.Name())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not one JSON line: %v\n%s", err, b)
	}
	if _, ok := m["time"]; ok || m["level"] != "DEBUG" || m["msg"] != "packet" || m["node"] != "rb1" || m["from"] != "198.18.0.12" {
		t.Errorf("journald JSON line: %v", m)
	}

	other, err := os.Create(filepath.Join(t.TempDir(), "hagd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	log, _, _ = New(Options{Stderr: other, Getenv: func(k string) string { return env[k] }})
	log.Info("transition")
	if b, _ := os.ReadFile(other.Name()); !strings.HasPrefix(string(b), "time=") {
		t.Errorf("stderr redirected to a file under systemd lost its time: %q", b)
	}
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hagd.log")
	if err := os.WriteFile(path, []byte("old line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		log, closeLog, err := New(Options{Target: path})
		if err != nil {
			t.Fatal(err)
		}
		log.Warn("lease lost", "run", i)
		if err := closeLog(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "level=WARN msg=\"lease lost\""); n != 2 || !strings.Contains(string(b), "run=1") {
		t.Errorf("log file (appended twice):\n%s", b)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&^0o640 != 0 {
		t.Errorf("log file mode %v, want at most 0640", st.Mode().Perm())
	}
}

// TestSyslog reads what a real syslog socket receives: RFC 3164 lines with
// facility daemon, the record's level as severity, the tag, no time= field.
func TestSyslog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	log, closeLog, err := New(Options{Target: TargetSyslog, Tag: "gridha-hagd", Level: slog.LevelDebug,
		Syslog: func(p syslog.Priority, tag string) (*syslog.Writer, error) {
			return syslog.Dial("unixgram", sock, p, tag)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	l := log.With("group", "rb1")
	l.Error("script failed", "exit", 1)
	l.Warn("lease late")
	l.Info("transition")
	l.Debug("packet")
	// <facility*8+severity>: daemon=3; err=3, warning=4, info=6, debug=7.
	want := []string{"<27>", "<28>", "<30>", "<31>"}
	msgs := []string{`level=ERROR msg="script failed" group=rb1 exit=1`, `level=WARN msg="lease late" group=rb1`,
		`level=INFO msg=transition group=rb1`, `level=DEBUG msg=packet group=rb1`}
	buf := make([]byte, 4096)
	for i := range want {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		got := string(buf[:n])
		if !strings.HasPrefix(got, want[i]) || !strings.Contains(got, " gridha-hagd[") ||
			!strings.HasSuffix(strings.TrimRight(got, "\n"), msgs[i]) || strings.Contains(got, "time=") {
			t.Errorf("datagram %d: %q, want prefix %s and suffix %s", i, got, want[i], msgs[i])
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Target: "relative.log"}, {Format: "xml"}, {Target: "journald"}} {
		if _, _, err := New(o); err == nil {
			t.Errorf("%+v: accepted", o)
		}
	}
}
