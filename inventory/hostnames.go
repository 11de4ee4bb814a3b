package inventory

import "go.yaml.in/yaml/v3"

// NamedHost is a host as HostList reads it: its name and the roles it
// lists.
type NamedHost struct {
	Name  string
	Roles []string
}

// HostList reads the hosts of an inventory (file order) without validating
// anything else: shell completion reads it at every <TAB>, and an
// inventory with a mistake elsewhere still names its hosts. Merge keys and
// aliases are not followed. Data that is not YAML gives no hosts.
func HostList(data []byte) []NamedHost {
	root, err := readYAML("", data)
	if err != nil || root == nil || root.Kind != yaml.MappingNode {
		return nil
	}
	var out []NamedHost
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "hosts" || root.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		hosts := root.Content[i+1].Content
		for j := 0; j+1 < len(hosts); j += 2 {
			k, v := hosts[j], hosts[j+1]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" || !hostNameRe().MatchString(k.Value) {
				continue
			}
			h := NamedHost{Name: k.Value}
			if v.Kind == yaml.MappingNode {
				for m := 0; m+1 < len(v.Content); m += 2 {
					if v.Content[m].Value == "roles" && v.Content[m+1].Kind == yaml.SequenceNode {
						for _, r := range v.Content[m+1].Content {
							if r.Kind == yaml.ScalarNode {
								h.Roles = append(h.Roles, r.Value)
							}
						}
					}
				}
			}
			out = append(out, h)
		}
	}
	return out
}
