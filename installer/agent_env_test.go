package installer

import (
	"reflect"
	"testing"
)

// The init scripts the agent runs for a status get the session's
// environment, not the agent's own Go settings.
func TestWithoutAgentEnv(t *testing.T) {
	in := []string{"PATH=/bin", "GOMAXPROCS=1", "GOGC=off", "GOMEMLIMIT=64MiB", "GOGCX=1", "LANG=C"}
	got := withoutAgentEnv(in)
	if want := []string{"PATH=/bin", "GOGCX=1", "LANG=C"}; !reflect.DeepEqual(got, want) {
		t.Errorf("withoutAgentEnv = %q, want %q", got, want)
	}
	if in[1] != "GOMAXPROCS=1" {
		t.Errorf("input changed: %q", in)
	}
}
