package sshx

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// authMethods gathers the keys to offer: the identity file named in the
// inventory first, then the ssh-agent's keys, then the default identity
// files that exist. The returned func closes the agent connection; call it
// once the handshake is over.
func (d *Dialer) authMethods(t *target) ([]ssh.AuthMethod, func(), error) {
	var signers []ssh.Signer
	seen := map[string]bool{}
	add := func(s ssh.Signer) {
		k := string(s.PublicKey().Marshal())
		if !seen[k] {
			seen[k] = true
			signers = append(signers, s)
		}
	}

	agentSigners, closeAgent, agentErr := d.agentSigners()
	agentHas := map[string]bool{}
	for _, s := range agentSigners {
		agentHas[string(s.PublicKey().Marshal())] = true
	}

	var defaults []ssh.Signer
	for _, id := range t.identities {
		s, err := loadIdentity(id.path)
		switch {
		case err == nil:
			if id.required {
				add(s)
			} else {
				defaults = append(defaults, s)
			}
		case id.required && errors.Is(err, fs.ErrNotExist):
			closeAgent()
			return nil, nil, fmt.Errorf("identity file %s (from the inventory) does not exist", id.path)
		case errors.Is(err, fs.ErrNotExist):
			// Default identities are optional.
		default:
			var pm *ssh.PassphraseMissingError
			if errors.As(err, &pm) {
				if pm.PublicKey != nil && agentHas[string(pm.PublicKey.Marshal())] {
					continue // the agent signs with it
				}
				if id.required {
					closeAgent()
					return nil, nil, fmt.Errorf("identity file %s is protected by a passphrase and ssh-agent does not hold it: load it with ssh-add %s", id.path, id.path)
				}
				d.logf("%s: skipping identity file %s: protected by a passphrase and not in ssh-agent", t.name, id.path)
				continue
			}
			if id.required {
				closeAgent()
				return nil, nil, fmt.Errorf("identity file %s: %w", id.path, err)
			}
			d.logf("%s: skipping identity file %s: %v", t.name, id.path, err)
		}
	}
	for _, s := range agentSigners {
		add(s)
	}
	for _, s := range defaults {
		add(s)
	}
	if len(signers) == 0 {
		closeAgent()
		why := "no ssh-agent (SSH_AUTH_SOCK is not set)"
		if agentErr != nil {
			why = agentErr.Error()
		} else if agentSigners != nil || d.agentSocket() != "" {
			why = "ssh-agent holds no key"
		}
		return nil, nil, fmt.Errorf("no SSH key to log in as %s: %s and no identity file found (~/.ssh/id_ed25519, id_rsa, id_ecdsa); set ssh.identity_file in the inventory", t.user, why)
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, closeAgent, nil
}

func (d *Dialer) agentSocket() string {
	switch d.opts.AgentSocket {
	case "none":
		return ""
	case "":
		return os.Getenv("SSH_AUTH_SOCK")
	}
	return d.opts.AgentSocket
}

// agentSigners lists the agent's keys. The agent connection stays open
// until the returned func is called (the signers need it).
func (d *Dialer) agentSigners() ([]ssh.Signer, func(), error) {
	sock := d.agentSocket()
	if sock == "" {
		return nil, func() {}, nil
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, func() {}, fmt.Errorf("ssh-agent at %s: %w", sock, err)
	}
	signers, err := agent.NewClient(c).Signers()
	if err != nil {
		c.Close()
		return nil, func() {}, fmt.Errorf("ssh-agent at %s: %w", sock, err)
	}
	return signers, func() { c.Close() }, nil
}

// loadIdentity parses a private key file. A passphrase-protected key gives
// *ssh.PassphraseMissingError (with its public key when the format has it,
// or from the .pub file beside it).
func loadIdentity(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	if err == nil {
		return s, nil
	}
	var pm *ssh.PassphraseMissingError
	if errors.As(err, &pm) && pm.PublicKey == nil {
		if pub, rerr := os.ReadFile(path + ".pub"); rerr == nil {
			if k, _, _, _, perr := ssh.ParseAuthorizedKey(bytes.TrimSpace(pub)); perr == nil {
				pm.PublicKey = k
			}
		}
	}
	return nil, err
}
