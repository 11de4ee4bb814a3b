package steps

import (
	"context"
	"testing"

	"github.com/gridha/gridha/installer"
)

// TestCreateOnly: a create-only File or Dir leaves whatever is at its path
// as it is (other content, mode, owner), and is missing only when nothing
// is there; the plain steps report the same host as drift.
func TestCreateOnly(t *testing.T) {
	env := func(path string, ff installer.FileFact) *installer.Env {
		ff.Path = path
		facts := installer.NewFacts(nil)
		facts.SetFile(ff)
		meta := ff
		meta.Content, meta.ContentKnown = nil, false
		facts.SetFileMeta(meta)
		return &installer.Env{Host: "h", Facts: facts}
	}
	none := installer.FileFact{}
	ctx := context.Background()
	other := installer.FileFact{Exists: true, Kind: installer.KindFile, Mode: 0o600, Owner: "root", Group: "root",
		Size: 6, Content: []byte("other\n"), ContentKnown: true}
	zone := File{Path: "/z.db", Content: []byte("zone\n"), Mode: 0o644, Owner: "bind", Group: "bind", CreateOnly: true}
	if r := zone.CheckApply(ctx, env(zone.Path, other), false); r.Status != installer.StatusOK {
		t.Errorf("create-only file over another file: %s %s", r.Status, r.Message)
	}
	if r := zone.CheckApply(ctx, env(zone.Path, none), false); r.Status != installer.StatusMissing {
		t.Errorf("create-only file, nothing there: %s", r.Status)
	}
	zone.CreateOnly = false
	if r := zone.CheckApply(ctx, env(zone.Path, other), false); r.Status != installer.StatusDrift {
		t.Errorf("plain file over another file: %s", r.Status)
	}
	if zone.ID() == (File{Path: "/z.db", CreateOnly: true}).ID() {
		t.Error("a create-only file has the ID of a managed one")
	}

	moved := installer.FileFact{Exists: true, Kind: installer.KindDir, Mode: 0o2770, UID: 1000, GID: 1000, Owner: "lb", Group: "lb"}
	share := Dir{Path: "/srv/share", Mode: 0o755, Owner: "root", Group: "root", CreateOnly: true}
	if r := share.CheckApply(ctx, env(share.Path, moved), false); r.Status != installer.StatusOK {
		t.Errorf("create-only dir over a moved state's folder: %s %s", r.Status, r.Message)
	}
	if r := share.CheckApply(ctx, env(share.Path, none), false); r.Status != installer.StatusMissing {
		t.Errorf("create-only dir, nothing there: %s", r.Status)
	}
	if r := share.CheckApply(ctx, env(share.Path, other), false); r.Status != installer.StatusFailed {
		t.Errorf("create-only dir over a file: %s", r.Status)
	}
	share.CreateOnly = false
	if r := share.CheckApply(ctx, env(share.Path, moved), false); r.Status != installer.StatusDrift {
		t.Errorf("plain dir over a moved state's folder: %s", r.Status)
	}
}
