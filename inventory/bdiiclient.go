package inventory

// BDIIClient is the settings of the bdii-client role (roles: bdii-client:).
type BDIIClient struct{}
