package sshx_test

import (
	"os"
	"testing"

	"github.com/gridha/gridha/testbed"
)

// TestMain lets TestBedSecretWrites run this test binary on a bed host as
// the unprivileged watcher (testbed.StartWatcher).
func TestMain(m *testing.M) {
	testbed.RunWatcherIfAsked()
	os.Exit(m.Run())
}
