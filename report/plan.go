package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/gridha/gridha/installer"
)

// WritePlan writes what `gridha plan` shows: for each host (sorted), the
// steps it would get, phase by phase in run order, each with the role that
// planned it. describe adds a note after the host name (address, roles);
// roleOf may be nil. Nothing here knows whether a step would change
// anything: that needs the host (install --check).
func WritePlan(w io.Writer, p *installer.Plan, describe func(host string) string, roleOf func(host, stepID string) string) error {
	var b strings.Builder
	hosts := p.Hosts()
	total := 0
	for i, h := range hosts {
		if i > 0 {
			b.WriteString("\n")
		}
		n := 0
		for _, ph := range p.Phases {
			n += len(ph.Steps[h])
		}
		total += n
		note := ""
		if describe != nil {
			if d := describe(h); d != "" {
				note = " (" + d + ")"
			}
		}
		fmt.Fprintf(&b, "%s%s: %d steps\n", h, note, n)
		for _, ph := range p.Phases {
			steps := ph.Steps[h]
			if len(steps) == 0 {
				continue
			}
			fmt.Fprintf(&b, "  phase %s\n", ph.Name)
			for _, s := range steps {
				role := ""
				if roleOf != nil {
					role = roleOf(h, s.ID())
				}
				if role == "" {
					role = UnknownRole
				}
				fmt.Fprintf(&b, "    %-14s %s\n", "["+role+"]", s.ID())
			}
		}
	}
	fmt.Fprintf(&b, "\n%d hosts, %d steps; nothing was contacted (gridha install ROLE --check shows what would change)\n", len(hosts), total)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	return nil
}
