package roles

import (
	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/inventory"
)

// poolPlan is the state-server role on a pool (slide 5: "can survive a
// failure of any box"), used when the role is on more than one host: the
// files half (statepool_fs.go: a GlusterFS replicated volume with TLS) and
// the database half (a Galera cluster, statepool_db*.go) in place of the
// single server's export, snfs account and MySQL.
func poolPlan(inv *inventory.Inventory, opts Options) (*installer.Plan, error) {
	fsPhases, err := poolFSPhases(inv, opts)
	if err != nil {
		return nil, err
	}
	dbPhases, err := poolDBPhases(inv, opts)
	if err != nil {
		return nil, err
	}
	return &installer.Plan{Phases: append(fsPhases, dbPhases...)}, nil
}
