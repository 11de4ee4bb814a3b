package roles

import (
	"fmt"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
)

// RBNode is the `rb-node` role: a Resource Broker service provider whose
// state lives on the state server (slides 4-8, 12-13). This file is the
// storage half (snfs user, shared mount, cron, services, state-dir
// migration, /etc/sysconfig/edg, the L&B copy); the HA half (lcg-ha,
// hagd.conf, the service script, hagd) is haSteps in rbnode_ha.go.
type RBNode struct{}

// NewRBNode returns the role.
func NewRBNode() *RBNode { return &RBNode{} }

// Name is the role's name.
func (RBNode) Name() string { return "rb-node" }

// Summary is one line for --help.
func (RBNode) Summary() string {
	return "RB service provider: snfs user and shared mount, RB services off at boot, state dirs moved to the state server, remote L&B database, hagd (replaces rb-ha-install-helper.sh)"
}

// Plan builds the rb nodes' steps (work in progress).
func (r RBNode) Plan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	return nil, fmt.Errorf("rb-node: not implemented yet")
}
