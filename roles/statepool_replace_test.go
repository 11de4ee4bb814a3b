package roles

import (
	"strings"
	"testing"
)

func TestPlanBrickReplacement(t *testing.T) {
	have := []string{"fs1:/b", "fs2:/b", "fs3:/b"}
	for _, c := range []struct {
		name    string
		want    []string
		arbiter bool
		old     string
		err     string
	}{
		{name: "same", want: []string{"fs1:/b", "fs2:/b", "fs3:/b"}},
		// A replaced brick keeps its place in the volume, wherever the
		// new member is listed: the same bricks in another order are the same.
		{name: "same, other order", want: []string{"fs2:/b", "fs1:/b", "fs3:/b"}},
		{name: "fs3 replaced by fs4", want: []string{"fs1:/b", "fs2:/b", "fs4:/b"}, old: "fs3:/b"},
		{name: "fs1 replaced, new one listed last", want: []string{"fs2:/b", "fs3:/b", "fs4:/b"}, old: "fs1:/b"},
		{name: "two at once", want: []string{"fs1:/b", "fs4:/b", "fs5:/b"}, err: "2 members replaced at once"},
		{name: "layout", want: []string{"fs1:/b", "fs2:/b"}, err: "does not change the volume's layout"},
		{name: "moved folder", want: []string{"fs1:/b", "fs2:/b", "fs3:/c"}, err: "does not move bricks"},
		{name: "arbiter replaced", want: []string{"fs1:/b", "fs2:/b", "fs4:/b"}, arbiter: true, old: "fs3:/b"},
		{name: "data brick replaced, arbiter stays", want: []string{"fs1:/b", "fs4:/b", "fs3:/b"}, arbiter: true, old: "fs2:/b"},
		{name: "arbiter role moves", want: []string{"fs1:/b", "fs3:/b", "fs4:/b"}, arbiter: true, err: "move the arbiter role"},
	} {
		r, err := planBrickReplacement("rbstate", have, c.want, c.arbiter)
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error with %q", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.old == "" && r != nil:
			t.Errorf("%s: replacement %+v, want none", c.name, r)
		case c.old != "" && (r == nil || r.Old != c.old):
			t.Errorf("%s: replacement %+v, want of %s", c.name, r, c.old)
		}
	}
}

func TestReplaceRefusal(t *testing.T) {
	have := []string{"fs1:/b", "fs2:/b", "fs3:/b"}
	r := &brickReplacement{Old: "fs3:/b", New: "fs4:/b"}
	good := func() replaceFacts {
		return replaceFacts{Online: map[string]bool{"fs1:/b": true, "fs2:/b": true}, NewPeerConnected: true,
			// Written while fs3 was gone: pending on the two others, fs3's
			// list unknown.
			Heal: map[string][]string{"fs1:/b": {"g1", "g2"}, "fs2:/b": {"g1", "g2"}}}
	}
	if err := replaceRefusal("rbstate", r, have, false, good()); err != nil {
		t.Errorf("fs3 lost, fs1 and fs2 online with entries pending for it: %v", err)
	}
	for _, c := range []struct {
		name    string
		mod     func(*replaceFacts)
		arbiter bool
		r       *brickReplacement
		err     string
	}{
		{name: "a second member missing", mod: func(f *replaceFacts) { f.Online["fs2:/b"] = false }, err: "fs2:/b offline too"},
		{name: "new member not a peer", mod: func(f *replaceFacts) { f.NewPeerConnected = false }, err: "fs4 is not a connected peer"},
		{name: "split brain", mod: func(f *replaceFacts) { f.SplitBrain = 1 }, err: "split-brain"},
		{name: "old one reachable with pending heals", mod: func(f *replaceFacts) { f.OldPeerConnected = true; f.Heal["fs3:/b"] = []string{} }, err: "still reachable and may hold the only copy"},
		{name: "old one's brick online, its list unknown", mod: func(f *replaceFacts) {
			f.Online["fs3:/b"] = true
			f.Heal = map[string][]string{"fs1:/b": {}, "fs2:/b": {}}
		}, err: "its own list unknown"},
		{name: "arbiter: the data brick lacks an entry", arbiter: true, r: &brickReplacement{Old: "fs1:/b", New: "fs4:/b"},
			mod: func(f *replaceFacts) {
				f.Online = map[string]bool{"fs2:/b": true, "fs3:/b": true}
				f.Heal = map[string][]string{"fs2:/b": {"g1"}, "fs3:/b": {"g1", "g9"}}
			}, err: "1 entries pending heal on the arbiter fs3:/b are not on fs2:/b (e.g. g9)"},
	} {
		f := good()
		c.mod(&f)
		rr := r
		if c.r != nil {
			rr = c.r
		}
		err := replaceRefusal("rbstate", rr, have, c.arbiter, f)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want a refusal with %q", c.name, err, c.err)
		}
	}
	// A planned retirement: the old member up, nothing pending anywhere.
	f := good()
	f.OldPeerConnected, f.Online["fs3:/b"] = true, true
	f.Heal = map[string][]string{"fs1:/b": {}, "fs2:/b": {}, "fs3:/b": {}}
	if err := replaceRefusal("rbstate", r, have, false, f); err != nil {
		t.Errorf("planned retirement with nothing pending: %v", err)
	}
	// Arbiter layout, data brick lost: the remaining data brick lists
	// everything the arbiter does.
	f = good()
	f.Online = map[string]bool{"fs2:/b": true, "fs3:/b": true}
	f.Heal = map[string][]string{"fs2:/b": {"g1", "g2"}, "fs3:/b": {"g2"}}
	if err := replaceRefusal("rbstate", &brickReplacement{Old: "fs1:/b", New: "fs4:/b"}, have, true, f); err != nil {
		t.Errorf("arbiter layout, the data brick has it all: %v", err)
	}
}
