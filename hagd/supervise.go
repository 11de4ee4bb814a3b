package hagd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// WorkerEnv marks the hagd process a supervisor started (`gridha hagd
// run` is a small supervisor by default; see Supervise).
const WorkerEnv = "GRIDHA_HAGD_WORKER"

// Supervised reports whether this process is a supervised hagd worker.
func Supervised() bool { return os.Getenv(WorkerEnv) == "1" }

// Supervise runs hagd as a worker process (this binary, the same
// arguments) and watches it. When the worker dies (kill -9, OOM, panic,
// any exit it was not asked for) the supervisor at once removes the
// service IPs of hagd.conf, so the address does not wait for its kernel
// lifetime, and starts a new worker (whose first action is `stop` for
// every group), after 1 s, doubling up to 30 s while the worker keeps
// dying within a minute. SIGTERM/SIGINT (ctx) are passed on to the worker,
// which stops its services and releases its leases; the supervisor returns
// when it has exited. The supervisor holds no lease and sends nothing:
// killing it (with its worker) leaves the kernel lifetime as the fence.
func Supervise(ctx context.Context, cfg *Config, log *slog.Logger, argv []string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	// The daemon gets SIGTERM (a clean stop and lease release) if the
	// supervisor dies: never an unsupervised daemon beside a new one. The
	// signal is tied to the thread that started the child: keep it.
	runtime.LockOSThread()
	backoff := time.Second
	for {
		cmd := exec.Command(self, argv[1:]...)
		cmd.Args[0] = argv[0] // the same name (a multi-call binary dispatches on it)
		cmd.Env = append(os.Environ(), WorkerEnv+"=1")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		started := time.Now()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("supervisor: start worker: %w", err)
		}
		log.Info("hagd worker started", "pid", cmd.Process.Pid)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			err := <-done
			if err != nil {
				log.Warn("hagd worker exit", "err", err)
			}
			return nil
		case err = <-done:
		}
		if ctx.Err() != nil || err == nil {
			// asked to stop (the signal may reach the worker first,
			// through the process group): a clean exit ends both
			return nil
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 2 {
			// bad configuration: restarting cannot help
			return fmt.Errorf("hagd worker: %w", err)
		}
		log.Error("hagd worker died: removing the service IPs, restarting it", "err", fmt.Sprint(err), "after", time.Since(started).Round(time.Millisecond))
		for g, ip := range cfg.ServiceIPs {
			if derr := delServiceIP(context.Background(), runIP, ip); derr != nil {
				log.Error("removing a service IP", "group", g, "ip", ip.String(), "err", derr)
			} else {
				log.Info("service IP removed", "group", g, "ip", ip.String())
			}
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}
