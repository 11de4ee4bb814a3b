package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gridha/gridha/report"
	"github.com/gridha/gridha/testbed/standins"
)

// TestMain lets the test binary stand for gridha in the shell tests: run as
// "gridha" with GRIDHA_TEST_AS_CLI=1, it is the CLI. On test-bed hosts it is
// gridha too (install rb-node installs os.Executable() as
// /usr/local/sbin/gridha, which runs hagd), and, copied or linked as rb-jobd,
// rb-client or rb-submit, the stand-in RB job service, its client and the
// user's job submitter of the state pool tests. The state pool's shared bed
// (statepool_bed_test.go) is torn down after the tests.
func TestMain(m *testing.M) {
	if os.Getenv("GRIDHA_TEST_AS_CLI") == "1" {
		os.Exit(Run(context.Background(), os.Args, DefaultDeps()))
	}
	var err error
	switch filepath.Base(os.Args[0]) {
	case "gridha":
		os.Exit(Run(context.Background(), os.Args, DefaultDeps()))
	case "rb-jobd":
		err = standins.RunJobd(os.Args[1:])
	case "rb-client":
		err = standins.JobClient(os.Args[1:])
	case "rb-submit":
		err = standins.RunSubmitter(os.Args[1:])
	default:
		code := m.Run()
		sharedPool.down()
		os.Exit(code)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, filepath.Base(os.Args[0])+":", err)
		os.Exit(1)
	}
	os.Exit(0)
}

const completionInventory = `hosts:
  state1: {address: 198.18.1.10, roles: [state-server]}
  rb1: {address: 198.18.1.11, roles: [rb-node]}
  rb2: {address: 198.18.1.12, roles: [rb-node]}
  bdii1: {address: 198.18.1.20, roles: [bdii-client]}
roles:
  rb-node:
    no_such_setting: 1
`

func TestCompleteWords(t *testing.T) {
	inv := writeInventory(t, completionInventory)
	envInv := writeInventory(t, "hosts:\n  env1: {address: 198.18.1.30}\n")
	d := DefaultDeps()
	d.Getenv = func(k string) string {
		if k == "GRIDHA_INVENTORY" {
			return envInv
		}
		return ""
	}
	app := NewApp(d)
	formats := strings.Join(report.Formats, " ")
	for _, c := range []struct{ words, want string }{
		// Commands, and flags before the command.
		{"|", "install verify check plan version completion hagd dns-updater"},
		{"ver", "verify version"},
		{"--ver", "--verbose --version"},
		// Flags after the command (urfave/cli alone completed nothing).
		{"install --ch", "--check"},
		{"install base --check --d", "--diff"},
		{"install --check --ch", ""}, // given once already
		{"verify --ro", ""},          // install's own flag, not verify's
		{"install --ro", "--rotate-key"},
		{"hagd run --conf", "--config"},
		// Flag values: one list with the flag's check.
		{"install --output |", formats},
		{"verify -o j", "json junit"},
		{"verify --output=j", "--output=json --output=junit"},
		{"verify --output = j", "json junit"}, // bash splits at '='
		{"verify --output =", formats},
		{"-o |", formats},
		{"verify --host-key-policy |", "strict accept-new"},
		{"install base --host-key-policy a", "accept-new"},
		{"--concurrency 3 verify --output n", "nagios"},
		// Roles, each once; not offered as a flag's value.
		{"install |", "base bdii-client dns rb-node state-server"},
		{"install base |", "bdii-client dns rb-node state-server"},
		{"verify --check r", "rb-node"},
		{"plan --limit rb1 b", "base bdii-client"},
		{"install --output json |", "base bdii-client dns rb-node state-server"},
		{"completion |", "bash zsh"},
		{"completion bash |", ""},
		{"hagd |", "run check status takeover giveup"},
		// Hosts of the inventory -i names (read though it has a mistake).
		{"-i " + inv + " verify --limit |", "state1 rb1 rb2 bdii1"},
		{"verify -i " + inv + " --limit rb1,", "rb1,state1 rb1,rb2 rb1,bdii1"},
		{"verify --inventory=" + inv + " --limit=r", "--limit=rb1 --limit=rb2"},
		{"verify --inventory = " + inv + " -l b", "bdii1"},
		{"install rb-node -i " + inv + " --state-from |", "rb1 rb2"},
		// ... else $GRIDHA_INVENTORY; no file: nothing (the shell offers files).
		{"verify --limit |", "env1"},
		{"verify -i /nonexistent.yaml --limit |", ""},
		{"verify -i |", ""},
	} {
		words := strings.Fields(strings.ReplaceAll(c.words, "|", " |"))
		if len(words) > 0 && words[len(words)-1] == "|" {
			words[len(words)-1] = ""
		}
		if c.words == "|" {
			words = nil
		}
		got := strings.Join(completeWords(app, d, words), " ")
		if got != c.want {
			t.Errorf("gridha %s<TAB>: got %q, want %q", c.words, got, c.want)
		}
	}
}

// TestBashCompletion sources the script `gridha completion bash` prints in
// a real bash, checks `complete -p`, and completes through it with
// COMP_WORDS/COMP_CWORD as bash sets them (the test binary stands for
// gridha, see TestMain).
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal("bash: ", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "gridha")); err != nil {
		t.Fatal(err)
	}
	inv := writeInventory(t, completionInventory)
	script := `set -e
source <(gridha completion bash)
complete -p gridha
c() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _gridha; echo "${COMPREPLY[*]}"; }
c gridha install --ch
c gridha verify --output ''
c gridha verify --output = j
c gridha -i "$INV" verify --limit rb1,r
c gridha install base ''
`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "GRIDHA_TEST_AS_CLI=1", "INV="+inv)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	want := []string{
		"complete -o bashdefault -o default -F _gridha gridha",
		"--check",
		strings.Join(report.Formats, " "),
		"json junit",
		"rb1,rb2",
		"bdii-client dns rb-node state-server",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bash completion:\n got %q\nwant %q", got, want)
	}
}

// TestZshCompletion runs the function `gridha completion zsh` prints in a
// real zsh, with zsh's own words/CURRENT and compadd/compdef recording what
// they are given (compsys itself needs a terminal).
func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no zsh: scripts/install-deps.sh installs it")
		}
		t.Skip("no zsh")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "gridha")); err != nil {
		t.Fatal(err)
	}
	script := `compdef() { print -r -- "compdef $*" }
compadd() { print -r -- "compadd $*" }
_files() { print -r -- "_files" }
source <(gridha completion zsh)
c() { words=("$@"); CURRENT=${#words}; _gridha }
c gridha install --ch
c gridha verify --output=j
c gridha -i ''
c gridha install base ''
`
	cmd := exec.Command(zsh, "-f", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "GRIDHA_TEST_AS_CLI=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	want := "compdef _gridha gridha\n" +
		"compadd -Q -- --check\n" +
		"compadd -Q -- --output=json --output=junit\n" +
		"_files\n" +
		"compadd -Q -- bdii-client dns rb-node state-server\n"
	if string(out) != want {
		t.Errorf("zsh completion:\n got %q\nwant %q", out, want)
	}
}
