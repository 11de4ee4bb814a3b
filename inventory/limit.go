package inventory

import (
	"fmt"
	"path"
	"strings"
)

// ResolveLimit turns the --limit values into host names, in inventory
// order and without repeats. Each value may hold several names separated
// by commas, and a name may be a shell-style pattern (rb*, state[12]). No
// values means every host. An unknown name (or a pattern matching nothing)
// is an error suggesting the nearest host name.
func (inv *Inventory) ResolveLimit(names []string) ([]string, error) {
	var wanted []string
	for _, v := range names {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				wanted = append(wanted, n)
			}
		}
	}
	all := make([]string, len(inv.Hosts))
	for i, h := range inv.Hosts {
		all[i] = h.Name
	}
	if len(wanted) == 0 {
		return all, nil
	}
	picked := map[string]bool{}
	var problems []string
	for _, w := range wanted {
		matched := false
		for _, h := range all {
			ok := h == w
			if !ok && strings.ContainsAny(w, "*?[") {
				ok, _ = path.Match(w, h)
			}
			if ok {
				picked[h], matched = true, true
			}
		}
		if matched {
			continue
		}
		if s := Nearest(w, all); s != "" {
			problems = append(problems, fmt.Sprintf("--limit: no host %s in %s, did you mean %s?", quoteValue(w), inv.Path, quoteValue(s)))
		} else {
			problems = append(problems, fmt.Sprintf("--limit: no host %s in %s (hosts: %s)", quoteValue(w), inv.Path, strings.Join(all, ", ")))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	var out []string
	for _, h := range all {
		if picked[h] {
			out = append(out, h)
		}
	}
	return out, nil
}
