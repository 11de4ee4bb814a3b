package sshx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kevinburke/ssh_config"
)

// sshConfig is a parsed ssh_config file; a nil *sshConfig (no file) answers
// "" to every question.
type sshConfig struct {
	path string
	cfg  *ssh_config.Config
}

func (d *Dialer) sshConfig() (*sshConfig, error) {
	d.cfgOnce.Do(func() { d.cfg, d.cfgErr = d.loadSSHConfig() })
	return d.cfg, d.cfgErr
}

func (d *Dialer) loadSSHConfig() (*sshConfig, error) {
	p := d.opts.SSHConfigFile
	if p == "none" {
		return nil, nil
	}
	explicit := p != ""
	if !explicit {
		if d.home == "" {
			return nil, nil
		}
		p = filepath.Join(d.home, ".ssh", "config")
	} else {
		p = d.localPath(p, false)
	}
	f, err := os.Open(p)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", p, err)
	}
	return &sshConfig{path: p, cfg: cfg}, nil
}

// get returns the first value of key for alias ("" when unset).
func (c *sshConfig) get(alias, key string) string {
	if c == nil {
		return ""
	}
	v, err := c.cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return v
}

// getAll returns every value of key for alias (IdentityFile may repeat).
func (c *sshConfig) getAll(alias, key string) []string {
	if c == nil {
		return nil
	}
	v, err := c.cfg.GetAll(alias, key)
	if err != nil {
		return nil
	}
	return v
}
