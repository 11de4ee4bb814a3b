package inventory

// StateServer is the settings of the state-server role (roles: state-server:).
type StateServer struct{}
