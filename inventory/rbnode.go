package inventory

// RBNode is the settings of the rb-node role (roles: rb-node:).
type RBNode struct{}
