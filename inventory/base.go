package inventory

import "strings"

// Base is the settings of the base role (roles: base:), a small role that
// marks a host as managed by gridha:
//
//	base:
//	  motd: "rb1: gLite Resource Broker, HA pair with rb2 (managed by gridha)"
//
// Every host playing base gets /etc/gridha/ (0755), /etc/gridha/host.conf
// (its inventory name, FQDN and roles) and /var/lib/gridha/ (0700); with
// motd set, /etc/motd holds that one line.
type Base struct {
	// Motd is one line written to /etc/motd ("" leaves /etc/motd alone).
	Motd string `yaml:"motd"`
}

// Validate checks that motd is one printable line.
func (b *Base) Validate(c *Checker) {
	if strings.ContainsAny(b.Motd, "\n\r") {
		c.Errorf("motd", "must be one line (use a YAML plain or quoted scalar, not a block)")
	}
	for _, r := range b.Motd {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			c.Errorf("motd", "holds a control character (%U)", r)
			break
		}
	}
}
