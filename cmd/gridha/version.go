package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// Set by `make build`/`make dist` with -ldflags "-X main.version=... -X
// main.commit=... -X main.date=...". Left empty, the build information the
// Go toolchain records (module version for `go install ...@v1.2.3`,
// vcs.revision and vcs.time for a build in a git checkout) is used, so that
// a `go install` build does not call itself "dev".
var (
	version string
	commit  string
	date    string
)

// buildVersion is what `gridha version` and `gridha --version` print.
type buildVersion struct {
	Version, Commit, Date string
}

// resolveVersion picks the stamped values first, then the build
// information, then "dev"/"unknown".
func resolveVersion(ldVersion, ldCommit, ldDate string, info *debug.BuildInfo) buildVersion {
	v := buildVersion{Version: ldVersion, Commit: ldCommit, Date: ldDate}
	if info != nil {
		var rev, when string
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if v.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v.Version = info.Main.Version
		}
		if v.Commit == "" && rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if modified {
				rev += "-dirty"
			}
			v.Commit = rev
		}
		if v.Date == "" {
			v.Date = when
		}
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	return v
}

// stampedVersion is this binary's version.
func stampedVersion() buildVersion {
	info, _ := debug.ReadBuildInfo()
	return resolveVersion(version, commit, date, info)
}

// versionLine is the one line of `gridha version`.
func versionLine(d Deps) string {
	parts := []string{"commit " + d.Commit}
	if d.Date != "" {
		parts = append(parts, "built "+d.Date)
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("gridha %s (%s)\n", d.Version, strings.Join(parts, ", "))
}

func versionCommand(d Deps) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print gridha's version, commit and build date (also: gridha --version)",
		Action: func(c *cli.Context) error {
			fmt.Fprint(c.App.Writer, versionLine(d))
			return nil
		},
	}
}

// flagVersion is the app's own --version: urfave/cli's built-in one is
// also -v, which is --verbose here.
const flagVersion = "version"

func versionFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagVersion, Usage: "print the version and exit (as: gridha version)"}
}
