package roles

import (
	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
)

// haSteps are the HA half of the rb-node role for node (lcg-ha, hagd.conf,
// the service script, hagd enabled and running). They run in the last phase
// of the plan, after the node's state is on the shared storage.
//
// Stub: the HA engineer replaces this file.
func (RBNode) haSteps(inv *inventory.Inventory, node *inventory.Host, opts Options) ([]installer.Step, error) {
	return nil, nil
}
