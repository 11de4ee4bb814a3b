package inventory

// DNS is the settings of the dns role (roles: dns:).
type DNS struct{}
