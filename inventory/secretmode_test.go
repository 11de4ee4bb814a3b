package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretFileMode: a secret file group or others may read is refused
// with its mode and the chmod to run, as ssh refuses such a key.
func TestSecretFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "lb.pw")
	if err := os.WriteFile(p, []byte("hunter22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := SecretRef{Path: p}
	if v, err := ref.Read(); err != nil || v != "hunter22" {
		t.Fatalf("0600: %q %v", v, err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		v, err := ref.Read()
		if err == nil || v != "" || !strings.Contains(err.Error(), "run: chmod 600 "+p) || strings.Contains(err.Error(), "hunter22") {
			t.Errorf("mode %04o: %q %v", mode, v, err)
		}
	}
	if err := os.Chmod(p, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := ref.Read(); err != nil {
		t.Errorf("0400: %v", err)
	}
}
