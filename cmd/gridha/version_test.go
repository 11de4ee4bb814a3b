package main

import (
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	vcs := func(mainVersion string, kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/gridha/gridha", Version: mainVersion}}
		for i := 0; i+1 < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	rev := "d2e832bd2f724d90a98764aba86dcf06f8a60ccc"
	for _, c := range []struct {
		name          string
		ldV, ldC, ldD string
		info          *debug.BuildInfo
		want          buildVersion
	}{
		{"make build stamps all three", "v1.2.0", "abc1234", "2026-11-27T10:00:00Z",
			vcs("(devel)", "vcs.revision", rev), buildVersion{"v1.2.0", "abc1234", "2026-11-27T10:00:00Z"}},
		{"go install module@v1.2.3", "", "", "", vcs("v1.2.3"), buildVersion{"v1.2.3", "unknown", ""}},
		{"go build in a git checkout", "", "", "",
			vcs("v0.0.0-20261127135334-d2e832bd2f72", "vcs", "git", "vcs.revision", rev, "vcs.time", "2026-11-27T13:53:34Z", "vcs.modified", "false"),
			buildVersion{"v0.0.0-20261127135334-d2e832bd2f72", "d2e832bd2f72", "2026-11-27T13:53:34Z"}},
		{"modified checkout", "", "", "", vcs("(devel)", "vcs.revision", rev, "vcs.modified", "true"),
			buildVersion{"dev", "d2e832bd2f72-dirty", ""}},
		{"nothing known", "", "", "", vcs("(devel)"), buildVersion{"dev", "unknown", ""}},
		{"no build info", "", "", "", nil, buildVersion{"dev", "unknown", ""}},
	} {
		if got := resolveVersion(c.ldV, c.ldC, c.ldD, c.info); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestVersionFlag: --version (before any command, or with one) prints the
// line `gridha version` prints and exits 0; -v stays --verbose.
func TestVersionFlag(t *testing.T) {
	want := runCLI(t, context.Background(), nil, "version")
	if want.code != 0 || !strings.HasPrefix(want.stdout, "gridha 1.2.3 (commit abc1234, ") {
		t.Fatalf("version: %d %q", want.code, want.stdout)
	}
	for _, args := range [][]string{{"--version"}, {"--version", "verify"}} {
		r := runCLI(t, context.Background(), nil, args...)
		if r.code != 0 || r.stdout != want.stdout || r.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q (want %q), stderr %q", args, r.code, r.stdout, want.stdout, r.stderr)
		}
	}
	r := runCLI(t, context.Background(), nil, "-v", "verify", "-i", "/nonexistent/gridha.yaml")
	if r.code != 3 || strings.Contains(r.stdout, "gridha 1.2.3") {
		t.Errorf("-v is --verbose, not --version: exit %d %q", r.code, r.stdout)
	}
}
