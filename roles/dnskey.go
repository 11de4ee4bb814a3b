package roles

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/gridha/gridha/internal/lazyre"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gridha/gridha/internal/atomicfile"
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
	keyNameRe   = lazyre.New(`(?m)^\s*key\s+"?([A-Za-z0-9._-]+?)\.?"?\s*\{`)
	keyAlgRe    = lazyre.New(`(?m)^\s*algorithm\s+"?([A-Za-z0-9-]+)"?\s*;`)
	keySecretRe = lazyre.New(`(?m)^\s*secret\s+"([A-Za-z0-9+/=]+)"\s*;`)
)

// ParseBINDKey reads a key file written by BINDFile (or tsig-keygen). The
// error never quotes the file.
func ParseBINDKey(data []byte) (TSIGKey, error) {
	n := keyNameRe().FindSubmatch(data)
	a := keyAlgRe().FindSubmatch(data)
	s := keySecretRe().FindSubmatch(data)
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

// PendingTSIGKeyPath is where the new key of a rotation waits, on the admin
// machine, until every primary and updater uses it.
func PendingTSIGKeyPath(inv *inventory.Inventory, keyName string) string {
	return TSIGKeyPath(inv, keyName) + ".next"
}

// RotatedKeyName is the name the next key of a rotation takes. BIND needs
// the old and the new key at once during the switch, and key names must
// differ: a rotation toggles between the inventory's key_name and
// <first label>-alt<rest>.
func RotatedKeyName(keyName, current string) string {
	base := strings.TrimSuffix(keyName, ".")
	first, rest, _ := strings.Cut(base, ".")
	alt := first + "-alt"
	if rest != "" {
		alt += "." + rest
	}
	if strings.EqualFold(strings.TrimSuffix(current, "."), base) {
		return alt
	}
	return base
}

// TSIGKeys are the dns role's keys: the one in use and, while a rotation
// is under way, the new one (Pending).
type TSIGKeys struct {
	Active  TSIGKey
	Pending *TSIGKey
}

// LoadTSIGKeys returns the keys kept in the inventory's secrets folder.
// With readOnly (verify, --check) nothing is written: a missing key, or the
// new key of a rotation, is generated in memory only. Otherwise a missing
// key is created and rotate creates the new key beside the active one
// (<key>.next, 0600, folder 0700) before any host is touched; it replaces
// the active key only once every host uses it (rotationCommit), so a run
// that fails half-way leaves both, and the next run, with or without
// --rotate-key, goes on with the same new key.
func LoadTSIGKeys(inv *inventory.Inventory, keyName string, rotate, readOnly bool) (TSIGKeys, error) {
	var keys TSIGKeys
	base := strings.TrimSuffix(keyName, ".")
	load := func(path string) (*TSIGKey, error) {
		data, err := inventory.ReadPrivateFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("TSIG key: %w", err)
		}
		k, err := ParseBINDKey(data)
		if err != nil {
			return nil, fmt.Errorf("TSIG key %s: %w", path, err)
		}
		if !strings.EqualFold(k.Name, base) && !strings.EqualFold(k.Name, RotatedKeyName(base, base)) {
			return nil, fmt.Errorf("TSIG key %s: names key %q, want %q (or %q during a rotation)", path, k.Name, base, RotatedKeyName(base, base))
		}
		return &k, nil
	}
	path, next := TSIGKeyPath(inv, keyName), PendingTSIGKeyPath(inv, keyName)
	active, err := load(path)
	if err != nil {
		return keys, err
	}
	if active == nil {
		k, err := GenerateTSIGKey(base)
		if err != nil {
			return keys, err
		}
		if !readOnly {
			if err := writeSecretFile(inv.SecretsDir, path, k.BINDFile()); err != nil {
				return keys, fmt.Errorf("TSIG key: %w", err)
			}
		}
		active = &k
	}
	keys.Active = *active
	if keys.Pending, err = load(next); err != nil {
		return keys, err
	}
	if keys.Pending != nil && strings.EqualFold(keys.Pending.Name, keys.Active.Name) {
		return keys, fmt.Errorf("TSIG key %s has the name of the active key %s; remove it to start the rotation again", next, path)
	}
	if rotate && keys.Pending == nil {
		k, err := GenerateTSIGKey(RotatedKeyName(base, keys.Active.Name))
		if err != nil {
			return keys, err
		}
		if !readOnly {
			if err := writeSecretFile(inv.SecretsDir, next, k.BINDFile()); err != nil {
				return keys, fmt.Errorf("TSIG key: %w", err)
			}
		}
		keys.Pending = &k
	}
	return keys, nil
}

// writeSecretFile writes data to path (0600, from its first byte) through a
// temporary file and a rename, creating path's folder (0700) when needed.
// dir is the secrets folder path is in: created 0700, and made 0700 when
// others could read it.
func writeSecretFile(dir, path string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
