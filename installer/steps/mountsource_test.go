package steps

import (
	"context"
	"strings"
	"testing"

	"github.com/gridha/gridha/installer"
)

// TestMountSourceSuffix: a GlusterFS volume mounted from another server of
// its pool (the first member was replaced in the inventory) is the same
// volume: only the fstab line is drift, no umount+mount of a mount the
// services hold; without SourceSuffix, or for another volume, the source
// is drift.
func TestMountSourceSuffix(t *testing.T) {
	m := Mount{Source: "fs2:/rbstate", Target: "/mnt/rb-state", FSType: "glusterfs", Options: []string{"_netdev", "nosuid", "nodev"}, Fstab: true, Mounted: true, SourceSuffix: ":/rbstate"}
	facts := func(source string) *installer.Facts {
		f := installer.NewFacts(nil)
		f.SetFile(regular(FstabPath, 0o644, "fs1:/rbstate /mnt/rb-state glusterfs _netdev,nosuid,nodev 0 0\n"))
		f.SetMounts([]installer.MountEntry{{Source: source, Target: "/mnt/rb-state", FSType: "fuse.glusterfs", Options: []string{"rw", "nosuid", "nodev"}}})
		return f
	}
	r := m.CheckApply(context.Background(), auditEnv(facts("fs1:/rbstate")), false)
	if r.Status != installer.StatusDrift || !strings.Contains(r.Message, "fstab line") || strings.Contains(r.Message, "mounted from") {
		t.Errorf("mounted from the replaced member: %s %q, want only the fstab line as drift", r.Status, r.Message)
	}
	r = m.CheckApply(context.Background(), auditEnv(facts("fs1:/other")), false)
	if !strings.Contains(r.Message, "mounted from fs1:/other") {
		t.Errorf("another volume: %s %q, want the source as drift", r.Status, r.Message)
	}
	m.SourceSuffix = ""
	r = m.CheckApply(context.Background(), auditEnv(facts("fs1:/rbstate")), false)
	if !strings.Contains(r.Message, "mounted from fs1:/rbstate") {
		t.Errorf("without SourceSuffix: %s %q, want the source as drift", r.Status, r.Message)
	}
}
