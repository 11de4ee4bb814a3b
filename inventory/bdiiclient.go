package inventory

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// BDIIClient is the settings of the bdii-client role (roles: bdii-client:).
//
//	bdii-client:
//	  bdii_list: [topbdii.ngi.example:2170, topbdii.other.example:2170]
//	  export_bdii_list: false
//
// The order is kept: the first entry is the NGI's default top BDII (MAN05),
// the GFAL clients try the next one only when it fails.
type BDIIClient struct {
	// BDIIList is the failover list, "host:port" each.
	BDIIList []string `yaml:"bdii_list"`
	// ExportBDIIList also exports BDII_LIST with the same value. BDII_LIST is
	// the YAIM variable (site-info.def) that YAIM turns into LCG_GFAL_INFOSYS;
	// clients read only LCG_GFAL_INFOSYS, so this is off unless a site's own
	// scripts read BDII_LIST from the environment.
	ExportBDIIList bool `yaml:"export_bdii_list"`
}

// settingsIssue is one problem in a role's settings: the field path relative
// to the role's settings (e.g. "bdii_list[1]") and what is wrong.
type settingsIssue struct {
	Field string
	Msg   string
}

// Validate reports bad entries of bdii_list (with their line numbers) and an
// empty list when some host plays bdii-client.
func (b *BDIIClient) Validate(c *Checker) {
	for _, is := range b.issues() {
		c.Errorf(is.Field, "%s", is.Msg)
	}
	if len(b.BDIIList) == 0 && c.Inventory() != nil && len(c.Inventory().HostsWithRole("bdii-client")) > 0 {
		c.Errorf("bdii_list", "hosts play bdii-client but bdii_list is empty: list the top BDIIs as host:port, the NGI's default first")
	}
}

// issues checks the settings that can be checked without the hosts.
func (b *BDIIClient) issues() []settingsIssue {
	var out []settingsIssue
	seen := map[string]int{}
	for i, e := range b.BDIIList {
		field := fmt.Sprintf("bdii_list[%d]", i)
		if err := CheckHostPort(e); err != nil {
			out = append(out, settingsIssue{field, err.Error()})
			continue
		}
		if j, dup := seen[strings.ToLower(e)]; dup {
			out = append(out, settingsIssue{field, fmt.Sprintf("%q is already bdii_list[%d]", e, j)})
			continue
		}
		seen[strings.ToLower(e)] = i
	}
	return out
}

// CheckHostPort validates a "host:port" entry of a BDII list: host a DNS
// name or an IP address ("[v6]:port" for IPv6), port a number 1-65535.
func CheckHostPort(s string) error {
	if s != strings.TrimSpace(s) || s == "" {
		return fmt.Errorf("%q: want host:port (e.g. topbdii.example.org:2170)", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port (e.g. topbdii.example.org:2170)", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	if net.ParseIP(host) != nil {
		if strings.Contains(host, ":") && !strings.HasPrefix(s, "[") {
			return fmt.Errorf("%q: write an IPv6 address as [address]:port", s)
		}
		return nil
	}
	if err := CheckDNSName(host); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

// CheckDNSName validates a host name: dot-separated labels of letters,
// digits and hyphens (a trailing dot allowed), at most 253 characters.
func CheckDNSName(name string) error {
	n := strings.TrimSuffix(name, ".")
	if n == "" {
		return fmt.Errorf("empty host name")
	}
	if len(n) > 253 {
		return fmt.Errorf("host name %q is longer than 253 characters", name)
	}
	for _, l := range strings.Split(n, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("host name %q has an empty or too long label", name)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host name %q: a label starts or ends with '-'", name)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("host name %q: character %q not allowed", name, r)
			}
		}
	}
	return nil
}
