package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
)

// The direct path answers the gatherer's exact command line as the facts
// command does, and leaves every other command line to Run.
func TestServeFactsDirect(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("hello\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	req := "gridha-facts " + strconv.Itoa(installer.AgentProtocol) + " @@GRIDHA-0123456789abcdef\nP 0 " + strconv.Quote(p) + "\n.\n"
	var want bytes.Buffer
	if err := installer.ServeFacts(context.Background(), installer.AgentProtocol, strings.NewReader(req), &want); err != nil {
		t.Fatal(err)
	}
	args := []string{"gridha", "facts", "--protocol", strconv.Itoa(installer.AgentProtocol)}
	var out, errOut bytes.Buffer
	code, ok := serveFactsDirect(context.Background(), args, strings.NewReader(req), &out, &errOut)
	if !ok || code != 0 || out.String() != want.String() || !strings.Contains(out.String(), "hello\n") {
		t.Fatalf("direct: ok %v code %d out %q err %q; want %q", ok, code, out.String(), errOut.String(), want.String())
	}
	out.Reset()
	code, ok = serveFactsDirect(context.Background(), []string{"gridha", "facts", "--protocol", "999"}, strings.NewReader(req), &out, &errOut)
	if !ok || code != 3 || out.Len() != 0 {
		t.Errorf("another protocol: ok %v code %d out %q, want exit 3 and nothing written", ok, code, out.String())
	}
	for _, a := range [][]string{{"gridha", "verify"}, {"gridha", "facts"}, {"gridha", "facts", "--protocol", "x"}, {"gridha", "-i", "inv", "facts", "--protocol", "1"}} {
		if _, ok := serveFactsDirect(context.Background(), a, strings.NewReader(req), &out, &errOut); ok {
			t.Errorf("%q taken by the direct path, want Run", a)
		}
	}
}
