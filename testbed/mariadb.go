package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// MariaDBSocket is where the host's MariaDB listens for local clients (root
// logs in over it by unix_socket authentication).
const MariaDBSocket = "/run/mysqld/mysqld.sock"

// StartMariaDB starts the host's own MariaDB server as the daemon "mariadb"
// (log in /var/log/testbed-mariadb.log): it initialises an empty datadir
// /var/lib/mysql first if needed (root@localhost by unix_socket, no test
// database), listens on the host's address and 127.0.0.1, port 3306, and on
// MariaDBSocket, reads the host's /etc/mysql configuration, and returns once
// it answers queries. extra arguments go to mariadbd after the test bed's
// own (a later --bind-address wins).
func (h *Host) StartMariaDB(ctx context.Context, extra ...string) error {
	if _, err := h.Exec(ctx, "test", "-d", "/var/lib/mysql/mysql"); err != nil {
		if err := h.initMariaDB(ctx); err != nil {
			return fmt.Errorf("%s: mariadb: init datadir: %w", h.Name, err)
		}
	}
	if _, err := h.Exec(ctx, "chown", "mysql:mysql", "/run/mysqld"); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	argv := append([]string{"mariadbd", "--user=mysql", "--bind-address=" + h.Addr + ",127.0.0.1", "--socket=" + MariaDBSocket}, extra...)
	if err := h.Start(ctx, "mariadb", argv...); err != nil {
		return fmt.Errorf("mariadb: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		_, err := h.Exec(wctx, "mariadb", "--socket="+MariaDBSocket, "-N", "-e", "SELECT 1")
		if err == nil {
			break
		}
		if !h.Running(wctx, "mariadb") {
			log, _ := h.ReadFile("/var/log/testbed-mariadb.log")
			return fmt.Errorf("%s: mariadb exited:\n%s", h.Name, tailLines(log, 20))
		}
		select {
		case <-wctx.Done():
			log, _ := h.ReadFile("/var/log/testbed-mariadb.log")
			return fmt.Errorf("%s: mariadb not answering: %v\n%s", h.Name, err, tailLines(log, 20))
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
	return waitTCP(wctx, h.Addr+":3306")
}

// StopMariaDB stops the host's MariaDB server (SIGTERM: a clean shutdown).
func (h *Host) StopMariaDB(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return h.Stop("mariadb")
}

// MySQL runs SQL as root over the host's unix socket and returns the rows
// (tab-separated, no header).
func (h *Host) MySQL(ctx context.Context, sql string) (string, error) {
	out, err := h.ExecInput(ctx, []byte(sql), "mariadb", "--socket="+MariaDBSocket, "-N", "-B")
	return string(out), err
}

// initMariaDB fills the host's /var/lib/mysql with a copy of a freshly
// initialised datadir, made once per machine and MariaDB version.
func (h *Host) initMariaDB(ctx context.Context) error {
	tmpl, err := mariaDBTemplate(ctx)
	if err != nil {
		return err
	}
	dst := fmt.Sprintf("/proc/%d/root/var/lib/mysql/", h.PID)
	if _, err := run(ctx, "cp", "-a", tmpl+"/.", dst); err != nil {
		return err
	}
	return nil
}

func mariaDBTemplate(ctx context.Context) (string, error) {
	ver, err := run(ctx, "mariadbd", "--version")
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(ver))
	v := "unknown"
	if len(f) >= 3 {
		v = f[2]
	}
	cache := filepath.Join(BaseDir, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "mariadb-"+v)
	if _, err := os.Stat(filepath.Join(dir, "mysql")); err == nil {
		return dir, nil
	}
	lock, err := os.OpenFile(filepath.Join(cache, "mariadb.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "mysql")); err == nil {
		return dir, nil
	}
	tmp := dir + ".new"
	os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	if _, err := run(ctx, "chown", "mysql:mysql", tmp); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+tmp, "--user=mysql",
		"--auth-root-authentication-method=socket", "--skip-test-db")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mariadb-install-db: %w\n%s", err, tailLines(out, 20))
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

func tailLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
