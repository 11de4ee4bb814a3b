package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/testbed"
)

func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	a := app()
	var out bytes.Buffer
	a.Writer, a.ErrWriter = &out, &out
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := a.RunContext(ctx, append([]string{"gridha-testbed"}, args...))
	return out.String(), err
}

// The command's bed outlives the command (a holder keeps its lock) until down.
func TestUpListDown(t *testing.T) {
	testbed.Require(t)
	out, err := runApp(t, "up", "--hosts", "cli1,cli2")
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^bed (\d+) up`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("up printed:\n%s", out)
	}
	id, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = testbed.Clean(context.Background(), id, true) })
	for _, want := range []string{"cli1.testbed.gridha", "identity_file: ", "known_hosts: ", "hosts:\n  cli1:\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q:\n%s", want, out)
		}
	}
	if !testbed.InUse(id) {
		t.Errorf("bed %d not held after up", id)
	}
	if out, err := runApp(t, "list"); err != nil || !regexp.MustCompile(`(?m)^`+m[1]+` +in use .*cli1,cli2`).MatchString(out) {
		t.Errorf("list: %v\n%s", err, out)
	}
	b, err := testbed.Load(id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Host("cli2").Sh(context.Background(), "hostname"); err != nil || strings.TrimSpace(got) != "cli2.testbed.gridha" {
		t.Errorf("loaded bed's cli2: %q, %v", got, err)
	}
	if out, err := runApp(t, "down", "--id", m[1]); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if testbed.InUse(id) {
		t.Errorf("bed %d still held after down", id)
	}
	beds, _ := testbed.List(context.Background())
	for _, bi := range beds {
		if bi.ID == id {
			t.Errorf("bed %d still listed after down: %+v", id, bi)
		}
	}
}
