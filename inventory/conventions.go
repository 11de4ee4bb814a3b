package inventory

import (
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/gridha/gridha/internal/privatefile"
)

// Conventions every role settings struct (inventory/<role>.go) follows:
//   - fields carry `yaml:"snake_case"` tags; the decoder rejects unknown keys
//     (suggesting the nearest valid one) and records each field's position;
//   - an optional `SetDefaults()` method fills defaults after decoding;
//   - an optional `Validate(c *Checker)` method reports errors by field path
//     relative to the struct (e.g. c.Errorf("mysql.database", "...")), which
//     the Checker turns into file:line:col: roles.<role>.<field>: message;
//   - secrets are never inline: a secret is a SecretRef in a key ending in
//     `_file` (a path, relative to the inventory's folder) or given as
//     "env:NAME" (read from the environment of the gridha process).

// SecretRef points at a secret: a file path or an environment variable.
type SecretRef struct {
	Path string // absolute after Load
	Env  string
}

// IsSet reports whether the reference names anything.
func (s SecretRef) IsSet() bool { return s.Path != "" || s.Env != "" }

// String describes the reference without its value (safe to log).
func (s SecretRef) String() string {
	if s.Env != "" {
		return "env:" + s.Env
	}
	return s.Path
}

// Read returns the secret with surrounding white space trimmed. The error
// names the file or variable, never the value.
func (s SecretRef) Read() (string, error) {
	switch {
	case s.Env != "":
		v, ok := os.LookupEnv(s.Env)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("secret environment variable %s is not set", s.Env)
		}
		return strings.TrimSpace(v), nil
	case s.Path != "":
		b, err := ReadPrivateFile(s.Path)
		if err != nil {
			return "", fmt.Errorf("secret file: %w", err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.Path)
		}
		return v, nil
	}
	return "", fmt.Errorf("no secret reference set")
}

// ReadPrivateFile reads a secret file of the admin machine, refusing one
// that group or others may read or write, as ssh refuses such a private
// key: the error names the file, its mode and the chmod to run. The mode is
// checked on the opened file, so it is the one whose content is returned.
func ReadPrivateFile(path string) ([]byte, error) {
	return privatefile.Read(path, privatefile.Rules{TooOpen: func(perm fs.FileMode) error {
		return fmt.Errorf("%s has mode %04o: group or others may read it, and gridha (like ssh) refuses such a secret file; run: chmod 600 %s", path, perm, path)
	}})
}

// ParseSecretRef parses "env:NAME" or a path (made absolute against dir).
func ParseSecretRef(value, dir string) (SecretRef, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return SecretRef{}, fmt.Errorf("empty secret reference")
	}
	if name, ok := strings.CutPrefix(value, "env:"); ok {
		if name == "" {
			return SecretRef{}, fmt.Errorf("env: needs a variable name")
		}
		return SecretRef{Env: name}, nil
	}
	if strings.HasPrefix(value, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			value = home + value[1:]
		}
	}
	if !strings.HasPrefix(value, "/") {
		value = dir + "/" + value
	}
	return SecretRef{Path: value}, nil
}
