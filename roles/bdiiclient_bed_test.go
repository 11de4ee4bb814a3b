package roles

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
	"github.com/gridha/gridha/testbed"
)

// A grid-env.sh as YAIM left it on a gLite UI (plain exports).
const yaimGridEnv = `# grid-env.sh written by YAIM (config_glite_ui)
export GLITE_LOCATION=/opt/glite
export LCG_GFAL_INFOSYS=old-topbdii.example.org:2170
export X509_CERT_DIR=/etc/grid-security/certificates
export LCG_GFAL_INFOSYS=older.example.org:2170
`

func clientInventory(t *testing.T, bed *testbed.Bed, exportBDIIList bool) *inventory.Inventory {
	t.Helper()
	body := bed.HostsYAML(map[string][]string{"ui1": {"bdii-client"}, "wn1": {"bdii-client"}}) + fmt.Sprintf(`
roles:
  bdii-client:
    bdii_list:
      - topbdii.ngi.example.org:2170
      - topbdii.other.example.org:2170
    export_bdii_list: %v
`, exportBDIIList)
	inv, err := inventory.Load(bed.WriteInventory(t, body))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestBDIIClientOnBed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	bed := testbed.New(t, "ui1", "wn1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ui1, wn1 := bed.MustHost("ui1"), bed.MustHost("wn1")
	if err := ui1.WriteFile(GridEnvSh, []byte(yaimGridEnv), 0o644); err != nil {
		t.Fatal(err)
	}
	const want = "topbdii.ngi.example.org:2170,topbdii.other.example.org:2170"

	inv := clientInventory(t, bed, false)
	rep := bedRun(t, ctx, inv, BDIIClient{}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed, installer.StatusDrift, installer.StatusMissing, installer.StatusSkipped)

	// ui1's YAIM file: other lines kept, one LCG_GFAL_INFOSYS in place of the first.
	got := dnsReadFile(t, ui1, GridEnvSh)
	wantFile := strings.Replace(yaimGridEnv, "export LCG_GFAL_INFOSYS=old-topbdii.example.org:2170\n",
		"export LCG_GFAL_INFOSYS=\""+want+"\" # managed by gridha\n", 1)
	wantFile = strings.Replace(wantFile, "export LCG_GFAL_INFOSYS=older.example.org:2170\n", "", 1)
	if got != wantFile {
		t.Errorf("ui1 grid-env.sh:\n%s\nwant:\n%s", got, wantFile)
	}
	for _, h := range []*testbed.Host{ui1, wn1} {
		for _, f := range []string{GridEnvSh, GridEnvCsh} {
			if a := dnsFileAttrs(t, ctx, h, f); a != "644 root:root" {
				t.Errorf("%s:%s is %s", h.Name, f, a)
			}
		}
		// Login shells, sh and csh, see the list.
		out, err := h.Exec(ctx, "bash", "-lc", "echo $LCG_GFAL_INFOSYS")
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s: bash -l: %q %v", h.Name, out, err)
		}
		// tcsh takes -l only as its sole flag: su - gives a real csh login shell.
		out, err = h.Exec(ctx, "su", "-", "root", "-s", "/bin/tcsh", "-c", "echo $LCG_GFAL_INFOSYS")
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s: tcsh login: %q %v", h.Name, out, err)
		}
		out, _ = h.Exec(ctx, "bash", "-lc", "echo ${BDII_LIST-unset}")
		if strings.TrimSpace(string(out)) != "unset" {
			t.Errorf("%s: BDII_LIST exported without export_bdii_list: %q", h.Name, out)
		}
	}

	// Second run: nothing to do.
	rep = bedRun(t, ctx, inv, BDIIClient{}, Options{}, installer.ModeApply)
	for _, r := range rep.Results {
		if r.Status != installer.StatusOK {
			t.Errorf("second run: %s %s: %s", r.Host, r.Step, r.Status)
		}
	}

	// export_bdii_list on, then off again: gridha's BDII_LIST line comes and goes.
	rep = bedRun(t, ctx, clientInventory(t, bed, true), BDIIClient{}, Options{}, installer.ModeApply)
	requireNo(t, rep, installer.StatusFailed)
	out, err := wn1.Exec(ctx, "su", "-", "root", "-s", "/bin/tcsh", "-c", "echo $BDII_LIST")
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("tcsh BDII_LIST: %q %v", out, err)
	}
	bedRun(t, ctx, inv, BDIIClient{}, Options{}, installer.ModeApply)
	if strings.Contains(dnsReadFile(t, wn1, GridEnvCsh), "BDII_LIST") {
		t.Error("BDII_LIST line left after export_bdii_list was turned off")
	}

	// verify reports a hand edit of gridha's line.
	if _, err := ui1.Sh(ctx, `sed -i 's/topbdii.ngi/elsewhere/' `+GridEnvSh); err != nil {
		t.Fatal(err)
	}
	st := statuses(bedRun(t, ctx, inv, BDIIClient{}, Options{ReadOnly: true}, installer.ModeAudit))
	if st["ui1 lines "+GridEnvSh] != installer.StatusDrift || st["wn1 lines "+GridEnvSh] != installer.StatusOK {
		t.Errorf("verify after a hand edit: %v", st)
	}

	// A second assignment overrides gridha's for the shell that reads the
	// file: drift for verify; install leaves one line with the wanted
	// value, or, for a line it does not edit, refuses and says which.
	bedRun(t, ctx, inv, BDIIClient{}, Options{}, installer.ModeApply)
	for _, c := range []struct{ file, line string }{
		{GridEnvSh, `export "LCG_GFAL_INFOSYS=evil.example.org:2170"`},
		{GridEnvSh, `LCG_GFAL_INFOSYS='evil.example.org:2170'`},
		{GridEnvCsh, `setenv LCG_GFAL_INFOSYS evil.example.org:2170`},
		{GridEnvSh, `X=1; LCG_GFAL_INFOSYS=evil.example.org:2170`},
	} {
		if _, err := wn1.Sh(ctx, "printf '%s\\n' "+installer.ShellQuote(c.line)+" >> "+c.file); err != nil {
			t.Fatal(err)
		}
		st := statuses(bedRun(t, ctx, inv, BDIIClient{}, Options{ReadOnly: true}, installer.ModeAudit))
		if st["wn1 lines "+c.file] != installer.StatusDrift {
			t.Errorf("%s appended to %s: verify says %s", c.line, c.file, st["wn1 lines "+c.file])
		}
		rep := bedRun(t, ctx, inv, BDIIClient{}, Options{}, installer.ModeApply)
		if strings.HasPrefix(c.line, "X=1") {
			var msg string
			for _, r := range rep.Results {
				if r.Host == "wn1" && r.Step == "lines "+GridEnvSh {
					msg = string(r.Status) + " " + r.Message
				}
			}
			if !strings.HasPrefix(msg, "failed") || !strings.Contains(msg, "LCG_GFAL_INFOSYS set 2 times") {
				t.Errorf("a line gridha does not edit: %s", msg)
			}
			if _, err := wn1.Sh(ctx, "sed -i '$d' "+c.file); err != nil {
				t.Fatal(err)
			}
			continue
		}
		requireNo(t, rep, installer.StatusFailed)
		n := 0
		for _, l := range strings.Split(dnsReadFile(t, wn1, c.file), "\n") {
			if !strings.HasPrefix(l, "#") && strings.Contains(l, "LCG_GFAL_INFOSYS") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s after install with %s appended: %d lines set LCG_GFAL_INFOSYS", c.file, c.line, n)
		}
		out, err := wn1.Exec(ctx, "bash", "-lc", "echo $LCG_GFAL_INFOSYS")
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("bash -l after install with %s appended: %q %v", c.line, out, err)
		}
	}
}
