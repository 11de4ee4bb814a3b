package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/gridha/gridha/roles"
)

// packageFilesCommand writes what the .deb and .rpm hold besides the binary
// and the example inventories (make dist runs it, see scripts/dist.sh):
// the man pages, the completion scripts and the daemons' init scripts,
// systemd units and logrotate files, under DIR as they are installed
// (DIR/usr/share/man/man1/gridha.1.gz, ...). Hidden: it is a build step.
func packageFilesCommand(d Deps) *cli.Command {
	return &cli.Command{
		Name:      "__package-files",
		Hidden:    true,
		ArgsUsage: "DIR",
		Usage:     "write the man pages, completions and daemon files of the packages under DIR (make dist)",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return badInputf("__package-files: which folder?")
			}
			files, err := packageFiles(c.App, d)
			if err != nil {
				return err
			}
			dir := c.Args().First()
			for _, f := range files {
				p := filepath.Join(dir, f.Path)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(p, f.Content, f.Mode); err != nil {
					return err
				}
				// WriteFile keeps the mode of a file already there.
				if err := os.Chmod(p, f.Mode); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// packageFiles lists the generated files of the packages.
func packageFiles(app *cli.App, d Deps) ([]roles.PackagedFile, error) {
	pages, err := manPages(app, d.Version, d.Date)
	if err != nil {
		return nil, err
	}
	var out []roles.PackagedFile
	for _, name := range manPageNames(pages) {
		gz, err := gzipped(pages[name])
		if err != nil {
			return nil, err
		}
		out = append(out, roles.PackagedFile{Path: "/usr/share/man/man1/" + name + ".gz", Mode: 0o644, Content: gz})
	}
	// zsh looks in vendor-completions on Debian, site-functions on EL:
	// the packages map this one file to each (packaging/nfpm.yaml).
	out = append(out,
		roles.PackagedFile{Path: "/usr/share/bash-completion/completions/gridha", Mode: 0o644, Content: []byte(bashCompletion)},
		roles.PackagedFile{Path: "/usr/share/zsh/_gridha", Mode: 0o644, Content: []byte(zshCompletion)},
	)
	daemons, err := roles.PackageFiles()
	if err != nil {
		return nil, err
	}
	return append(out, daemons...), nil
}

// gzipped compresses b with no name and no time in the header, so that
// two builds give the same bytes.
func gzipped(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}
