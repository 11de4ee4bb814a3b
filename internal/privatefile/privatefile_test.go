package privatefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	errOpen := errors.New("too open")
	rules := Rules{TooOpen: func(fs.FileMode) error { return errOpen }, Regular: true, Limit: 8}
	write := func(name, data string, mode fs.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if b, err := Read(write("ok", "12345678", 0o600), rules); err != nil || string(b) != "12345678" {
		t.Errorf("0600 file of the limit's size: %q, %v", b, err)
	}
	if _, err := Read(write("open", "x", 0o640), rules); !errors.Is(err, errOpen) {
		t.Errorf("0640 file: %v, want TooOpen's error", err)
	}
	if _, err := Read(write("big", "123456789", 0o600), rules); err == nil || !strings.Contains(err.Error(), "larger than 8 bytes") {
		t.Errorf("file over the limit: %v", err)
	}
	if b, err := Read(filepath.Join(dir, "big"), Rules{TooOpen: rules.TooOpen}); err != nil || len(b) != 9 {
		t.Errorf("no limit: %q, %v", b, err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(sub, rules); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: %v", err)
	}
}
