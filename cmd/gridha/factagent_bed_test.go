package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/report"
)

// agentCallLog is where the stand-in /usr/local/sbin/gridha of
// checkFactAgent records each call, on the host (its /tmp is its own, and
// no part of a snapshot).
const agentCallLog = "/tmp/gridha-facts-calls"

// checkFactAgent (on TestVerifyDriftOnBed's converged host): with gridha
// installed as /usr/local/sbin/gridha (this test binary, which is gridha
// when so named; behind a wrapper that logs its calls and exit codes),
// verify calls `gridha facts` once per verify, which answers (exit 0), and
// reports exactly what it reports with the agent off
// (GRIDHA_NO_FACT_AGENT); with an older gridha there (one without
// `facts`: exit 3) verify reports the same again, the shell script
// answering. Nothing is left behind.
func checkFactAgent(t *testing.T, k *kitVerify) {
	t.Helper()
	h := k.host
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sh(t, h, "mkdir -p /usr/local/lib/gridha-agent-test")
	if err := h.CopyIn(exe, "/usr/local/lib/gridha-agent-test/gridha"); err != nil {
		t.Fatal(err)
	}
	// The exit code says whether the agent answered (0) or refused (the
	// script then answered: the same facts, but no proof of the agent).
	wrapper := "#!/bin/sh\n/usr/local/lib/gridha-agent-test/gridha \"$@\"\nrc=$?\necho \"$* rc=$rc\" >> " + agentCallLog + "\nexit $rc\n"
	if err := h.WriteFile("/usr/local/sbin/gridha", []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	defer sh(t, h, "rm -rf /usr/local/sbin/gridha /usr/local/lib/gridha-agent-test "+agentCallLog)
	calls := func() []string {
		out := sh(t, h, "cat "+agentCallLog+" 2>/dev/null; rm -f "+agentCallLog)
		if out == "" {
			return nil
		}
		return strings.Split(out, "\n")
	}
	verify := func(noAgent bool) string {
		t.Helper()
		var out, errb bytes.Buffer
		d := DefaultDeps()
		d.Registry = k.reg
		d.Stdout, d.Stderr, d.Terminal = &out, &errb, nil
		d.Getenv = func(v string) string {
			if v == "GRIDHA_NO_FACT_AGENT" && noAgent {
				return "1"
			}
			return ""
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		code := Run(ctx, []string{"gridha", "verify", "-o", "json", "-i", k.inv}, d)
		var doc report.JSONDocument
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil || code != 0 {
			t.Fatalf("verify (agent off: %v): exit %d, %v\n%s%s", noAgent, code, err, out.String(), errb.String())
		}
		// What a user reads: each step's status and message.
		var b strings.Builder
		for _, hr := range doc.Hosts {
			for _, r := range hr.Results {
				b.WriteString(hr.Name + " " + r.Step + ": " + string(r.Status) + " " + r.Message + "\n")
			}
		}
		return b.String()
	}
	shell := verify(true)
	if c := calls(); len(c) != 0 {
		t.Errorf("verify with the agent off called it: %q", c)
	}
	agent := verify(false)
	if c := calls(); len(c) != 1 || !strings.HasPrefix(c[0], "facts --protocol ") || !strings.HasSuffix(c[0], " rc=0") {
		t.Errorf("verify called the host's gridha %q, want `facts --protocol N` once, answered (rc=0)", c)
	}
	if agent != shell {
		t.Errorf("verify with the agent:\n%s\nwith the shell script:\n%s", agent, shell)
	}
	// An older gridha: unknown command, exit 3 (as before `facts` was).
	old := "#!/bin/sh\necho \"$* rc=3\" >> " + agentCallLog + "\necho 'gridha: unknown command \"facts\" (see gridha --help)' >&2\nexit 3\n"
	if err := h.WriteFile("/usr/local/sbin/gridha", []byte(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := verify(false); got != shell {
		t.Errorf("verify with an older gridha on the host:\n%s\nwith the shell script:\n%s", got, shell)
	}
	if c := calls(); len(c) != 1 {
		t.Errorf("verify called the older gridha %d times, want once", len(c))
	}
}
