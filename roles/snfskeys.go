package roles

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/gridha/gridha/inventory"
)

// NodeKey is an rb node's snfs key pair. gridha generates it on the admin
// machine, in the inventory's secrets folder, the first time either
// `install state-server` or `install rb-node` needs it: so the two commands
// work in either order, and the state server's authorized_keys can list
// exactly the inventory's nodes without reading anything from them.
type NodeKey struct {
	Node          string
	PrivatePEM    []byte // OpenSSH private key (secret)
	AuthorizedKey string // "ssh-ed25519 AAAA... gridha-snfs@rb1"
	// Generated says this call created it. Not a want: on a fresh site the
	// state-server role generates the key and rb-node, planned next in the
	// same run, loads it; their keys-file steps must still merge.
	Generated bool `merge:"ignore"`
}

// snfsKeyPath is where node's private key is kept.
func snfsKeyPath(inv *inventory.Inventory, node string) string {
	return filepath.Join(inv.SecretsDir, "snfs", node+".key")
}

// LoadNodeKey reads node's key; when it does not exist yet and create is
// true it generates one (ed25519), else it returns fs.ErrNotExist.
func LoadNodeKey(inv *inventory.Inventory, node string, create bool) (*NodeKey, error) {
	path := snfsKeyPath(inv, node)
	data, err := inventory.ReadPrivateFile(path)
	switch {
	case err == nil:
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("snfs key of %s (%s): %w", node, path, err)
		}
		return &NodeKey{Node: node, PrivatePEM: data, AuthorizedKey: authorizedLine(signer.PublicKey(), node)}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("snfs key of %s: %w", node, err)
	case !create:
		return nil, fmt.Errorf("snfs key of %s (%s): %w", node, path, fs.ErrNotExist)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "gridha-snfs@"+node)
	if err != nil {
		return nil, err
	}
	data = pem.EncodeToMemory(block)
	if err := writeSecretFile(inv.SecretsDir, path, data); err != nil {
		return nil, fmt.Errorf("write snfs key of %s: %w", node, err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &NodeKey{Node: node, PrivatePEM: data, AuthorizedKey: authorizedLine(sshPub, node), Generated: true}, nil
}

func authorizedLine(pub ssh.PublicKey, node string) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " gridha-snfs@" + node
}
