package roles

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// The hagd key rotation (install rb-node --rotate-key). hagd signs with
// hagd.key and also accepts the keys of hagd.key.accept, re-reading both
// within a second of a change (hagd/README.md), so the rotation needs no
// restart. It goes in three phases, each a single file written atomically
// per node, and each only once every node got through the one before:
//  1. hagd.key.accept = new and old key (every node accepts both);
//  2. hagd.key = the new key (each node signs with it, still accepts the old);
//  3. hagd.key.accept removed (the old key is refused);
//
// then the pending key replaces the active one in the secrets folder. A node
// that fails or is unreachable stops the rotation where it is: between any
// two of these states every node accepts what every other node signs with.
// The next run, with or without --rotate-key, goes on with the same key.
const (
	phaseHAGDKeyAccept = "rb-hagd-key-accept"
	phaseHAGDKeySwitch = "rb-hagd-key-switch"
	phaseHAGDKeyFinish = "rb-hagd-key-finish"
	phaseHAGDKeyCommit = "rb-hagd-key-commit"
)

// PendingHAGDKeyPath is where the new key of a hagd key rotation waits on
// the admin machine until every node uses it.
func PendingHAGDKeyPath(inv *inventory.Inventory) string { return hagdKeyPath(inv) + ".next" }

// HAGDAcceptKeyPath is the node's file of keys hagd accepts besides its own.
func HAGDAcceptKeyPath(rb inventory.RBNode) string { return HAGDKeyPath(rb) + ".accept" }

// hagdRotation is the state of a hagd key rotation: nil when none is under way.
type hagdRotation struct {
	Old, New []byte
}

// loadHAGDRotation returns the rotation under way, or starts one (rotate:
// the new key is written to PendingHAGDKeyPath, 0600, before any node is
// touched; read-only, it is kept in memory only).
func loadHAGDRotation(inv *inventory.Inventory, rotate, readOnly bool) (*hagdRotation, error) {
	rb := inv.Roles.RBNode
	p := PendingHAGDKeyPath(inv)
	_, statErr := os.Stat(p)
	pending := statErr == nil
	if !rotate && !pending {
		return nil, nil
	}
	if rb.HAGD.KeyFile.IsSet() {
		return nil, fmt.Errorf("hagd key rotation: roles.rb-node.hagd.key_file is set: gridha rotates only the key it generates (%s); replace your key file and run install rb-node", hagdKeyPath(inv))
	}
	old, err := LoadHAGDKey(inv, !readOnly)
	if readOnly && !pending && errors.Is(err, fs.ErrNotExist) {
		return nil, nil // --check on a first install: no key to rotate yet (reported missing)
	}
	if err != nil {
		return nil, err
	}
	if pending {
		data, err := inventory.ReadPrivateFile(p)
		if err != nil {
			return nil, fmt.Errorf("hagd key rotation: %w", err)
		}
		v := strings.TrimSpace(string(data))
		if len(v) < 16 || v == string(old) {
			return nil, fmt.Errorf("hagd key rotation: %s is shorter than 16 bytes or the active key: remove it to start the rotation again", p)
		}
		return &hagdRotation{Old: old, New: []byte(v)}, nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	key := hex.EncodeToString(raw)
	if readOnly {
		// --check --rotate-key: the new key lives in memory only, so the
		// report shows what the rotation would change; nothing is written.
		return &hagdRotation{Old: old, New: []byte(key)}, nil
	}
	if err := writeSecretFile(inv.SecretsDir, p, []byte(key+"\n")); err != nil {
		return nil, fmt.Errorf("hagd key rotation: %s: %w", p, err)
	}
	return &hagdRotation{Old: old, New: []byte(key)}, nil
}

// hagdRotationPhases are the rotation's phases for nodes.
func hagdRotationPhases(inv *inventory.Inventory, rot *hagdRotation, nodes []string) []installer.Phase {
	rb := inv.Roles.RBNode
	keyPath, acceptPath := HAGDKeyPath(rb), HAGDAcceptKeyPath(rb)
	accept := installer.Phase{Name: phaseHAGDKeyAccept, Steps: map[string][]installer.Step{}}
	sw := installer.Phase{Name: phaseHAGDKeySwitch, Steps: map[string][]installer.Step{}}
	finish := installer.Phase{Name: phaseHAGDKeyFinish, Steps: map[string][]installer.Step{}}
	both := fmt.Appendf(nil, "%s\n%s\n", rot.New, rot.Old)
	secret := func(s installer.Step) installer.Step {
		return withSecret{withSecret{s, string(rot.Old)}, string(rot.New)}
	}
	for _, n := range nodes {
		accept.Steps[n] = []installer.Step{
			secret(installer.Notify(steps.File{Path: acceptPath, Content: both, Mode: 0o600, Owner: "root", Group: "root", Secret: true}, notifyHAGDKey)),
			hagdKeyWait{},
			doneMarker{hagdAccepted},
		}
		sw.Steps[n] = []installer.Step{
			allDone(hagdAccepted, nodes, "the node keeps signing with the old key"),
			secret(installer.Notify(steps.File{Path: keyPath, Content: append(append([]byte(nil), rot.New...), '\n'), Mode: 0o600, Owner: "root", Group: "root", Secret: true}, notifyHAGDKey)),
			hagdKeyWait{},
			doneMarker{hagdSwitched},
		}
		finish.Steps[n] = []installer.Step{
			allDone(hagdSwitched, nodes, "the old key stays accepted"),
			installer.Notify(steps.Absent{Path: acceptPath}, notifyHAGDKey),
			hagdKeyWait{},
			doneMarker{hagdFinished},
		}
	}
	commit := installer.Phase{Name: phaseHAGDKeyCommit, Steps: map[string][]installer.Step{
		nodes[0]: {rotationCommit{Key: "hagd key", Kind: hagdFinished, Hosts: nodes,
			Active: hagdKeyPath(inv), Pending: PendingHAGDKeyPath(inv),
			Done: "every rb node signs with and accepts only the new hagd key; " + hagdKeyPath(inv) + " holds it"}},
	}}
	return []installer.Phase{accept, sw, finish, commit}
}

const (
	hagdAccepted = "hagd-key-accepted"
	hagdSwitched = "hagd-key-switched"
	hagdFinished = "hagd-key-finished"
)

// hagdKeyWait gives a running hagd the time to re-read its key files (it
// looks once a second) after this run changed one, so that the next phase
// never relies on a key a node has not loaded yet.
type hagdKeyWait struct{}

func (hagdKeyWait) ID() string                { return "hagd reloads its key files" }
func (hagdKeyWait) Probes() []installer.Probe { return nil }
func (hagdKeyWait) Handles() []string         { return []string{notifyHAGDKey} }
func (w hagdKeyWait) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	if !apply || !env.Notified(notifyHAGDKey) {
		return installer.OK("")
	}
	res, err := env.Conn.Run(ctx, "sleep 2", nil)
	if err == nil {
		err = res.Err("sleep")
	}
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, w.ID(), err))
	}
	return installer.OK("")
}

// allDone stops the rest of a node's rotation steps (in an install) unless
// every node of the rotation got through the previous phase in this run.
func allDone(kind string, nodes []string, what string) hostsDone {
	return hostsDone{Name: "every node: " + kind, Kind: kind, Hosts: nodes, InstallOnly: true,
		Before: "hagd key rotation stopped here: ", After: " did not get through the previous step in this run; " + what + ": re-run when it is back"}
}
