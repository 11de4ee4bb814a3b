package testbed

import (
	"crypto/ed25519"
	"encoding/pem"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// writeKeyPair writes an OpenSSH private key (0600) at path and its public
// key at path+".pub"; it returns the public key's authorized_keys line.
func writeKeyPair(path string, priv ed25519.PrivateKey, pub ed25519.PublicKey, comment string) (string, error) {
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		return "", err
	}
	return line, nil
}
