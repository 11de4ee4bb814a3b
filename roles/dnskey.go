package roles

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/gridha/gridha/inventory"
)

// TSIGKey is the HMAC-SHA256 key that authorises dynamic updates of the
// round-robin name (MAN05: "updates are authorized based on keys").
type TSIGKey struct {
	Name   string // without the final dot, e.g. "gridha-topbdii"
	Secret string // base64
}

// TSIGAlgorithm is the only algorithm gridha generates.
const TSIGAlgorithm = "hmac-sha256"

// tsigKeyBytes is the secret's length: the HMAC-SHA256 output size, what
// tsig-keygen uses.
const tsigKeyBytes = 32

// GenerateTSIGKey makes a new random key (crypto/rand).
func GenerateTSIGKey(name string) (TSIGKey, error) {
	b := make([]byte, tsigKeyBytes)
	if _, err := rand.Read(b); err != nil {
		return TSIGKey{}, fmt.Errorf("generate TSIG key: %w", err)
	}
	return TSIGKey{Name: strings.TrimSuffix(name, "."), Secret: base64.StdEncoding.EncodeToString(b)}, nil
}

// BINDFile renders the key in BIND's key-statement syntax, the format of
// the secrets folder's copy, the primaries' include file, nsupdate -k and
// the dns-updater's tsig_key_file.
func (k TSIGKey) BINDFile() []byte {
	return fmt.Appendf(nil, "key \"%s\" {\n\talgorithm %s;\n\tsecret \"%s\";\n};\n", k.Name, TSIGAlgorithm, k.Secret)
}

var (
	keyNameRe   = regexp.MustCompile(`(?m)^\s*key\s+"?([A-Za-z0-9._-]+?)\.?"?\s*\{`)
	keyAlgRe    = regexp.MustCompile(`(?m)^\s*algorithm\s+"?([A-Za-z0-9-]+)"?\s*;`)
	keySecretRe = regexp.MustCompile(`(?m)^\s*secret\s+"([A-Za-z0-9+/=]+)"\s*;`)
)

// ParseBINDKey reads a key file written by BINDFile (or tsig-keygen). The
// error never quotes the file.
func ParseBINDKey(data []byte) (TSIGKey, error) {
	n := keyNameRe.FindSubmatch(data)
	a := keyAlgRe.FindSubmatch(data)
	s := keySecretRe.FindSubmatch(data)
	if n == nil || a == nil || s == nil {
		return TSIGKey{}, errors.New("not a BIND key statement (key \"name\" { algorithm ...; secret \"...\"; };)")
	}
	if !strings.EqualFold(string(a[1]), TSIGAlgorithm) {
		return TSIGKey{}, fmt.Errorf("algorithm %s: gridha uses %s", a[1], TSIGAlgorithm)
	}
	raw, err := base64.StdEncoding.DecodeString(string(s[1]))
	if err != nil || len(raw) < 16 {
		return TSIGKey{}, errors.New("the secret is not base64 of at least 16 bytes")
	}
	return TSIGKey{Name: string(n[1]), Secret: string(s[1])}, nil
}

// TSIGKeyPath is where the key lives on the admin machine.
func TSIGKeyPath(inv *inventory.Inventory, keyName string) string {
	return filepath.Join(inv.SecretsDir, "tsig-"+strings.TrimSuffix(keyName, ".")+".key")
}

// LoadOrCreateTSIGKey returns the key kept in the inventory's secrets folder.
// With readOnly (verify, --check) nothing is written: a missing key, or the
// new key of a rotation, is generated in memory only, so the run reports
// every key file as one to change. Otherwise a missing key is created, and
// rotate replaces an existing one, before any host is touched (file 0600,
// folder 0700): a run that fails half-way leaves the new key on the admin
// machine and the next run converges the hosts to it.
func LoadOrCreateTSIGKey(inv *inventory.Inventory, keyName string, rotate, readOnly bool) (key TSIGKey, created bool, err error) {
	path := TSIGKeyPath(inv, keyName)
	data, err := inventory.ReadPrivateFile(path)
	switch {
	case err == nil && !rotate:
		k, perr := ParseBINDKey(data)
		if perr != nil {
			return TSIGKey{}, false, fmt.Errorf("TSIG key %s: %w", path, perr)
		}
		if !strings.EqualFold(k.Name, strings.TrimSuffix(keyName, ".")) {
			return TSIGKey{}, false, fmt.Errorf("TSIG key %s: names key %q, want %q", path, k.Name, keyName)
		}
		return k, false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return TSIGKey{}, false, fmt.Errorf("TSIG key: %w", err)
	}
	k, err := GenerateTSIGKey(keyName)
	if err != nil {
		return TSIGKey{}, false, err
	}
	if readOnly {
		return k, true, nil
	}
	if err := writeSecretFile(inv.SecretsDir, path, k.BINDFile()); err != nil {
		return TSIGKey{}, false, fmt.Errorf("TSIG key: %w", err)
	}
	return k, true, nil
}

// writeSecretFile writes data to path (0600) through a temporary file and a
// rename, creating dir (0700) when needed.
func writeSecretFile(dir, path string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(dir, ".tsig-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
