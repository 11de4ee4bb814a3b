package inventory

// Base is the settings of the base role (roles: base:).
type Base struct{}
