package inventory

import (
	"path/filepath"
	"testing"
)

// Every commented example in inventory-examples/ must load cleanly.
func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../inventory-examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d examples, want at least 3", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			inv, err := Load(f)
			if err != nil {
				t.Fatalf("%v", err)
			}
			if len(inv.Hosts) == 0 {
				t.Errorf("no hosts")
			}
		})
	}
}
