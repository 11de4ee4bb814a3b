package inventory_test

import (
	"fmt"

	"github.com/gridha/gridha/inventory"
)

func ExampleParse() {
	inv, err := inventory.Parse("gridha.yaml", []byte(`
defaults:
  user: root
hosts:
  state1:
    address: 198.18.1.10
    hostname: state1.example.org
    roles: [state-server]
  rb1:
    address: 198.18.1.11
    roles: [rb-node]
    user: gridadm
    become: sudo
roles:
  state-server:
    mysql: {password_file: secrets/lbserver20.pw}
  rb-node:
    groups: {rb: {service_ip: 198.18.1.100/24, iface: eth0}}
    nodes: {rb1: {rb: 100}}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, h := range inv.Hosts {
		fmt.Println(h.Name, h.Address, h.Hostname, h.SSH.User, h.SSH.Become, h.SSH.ConnectTimeout, h.Roles)
	}
	// Output:
	// state1 198.18.1.10 state1.example.org root  10s [state-server]
	// rb1 198.18.1.11 198.18.1.11 gridadm sudo 10s [rb-node]
}

func ExampleParse_errors() {
	_, err := inventory.Parse("gridha.yaml", []byte(`
defaults:
  port: ssh
hosts:
  rb1:
    adress: 198.18.1.11
    roles: [rb-nod]
    password: hunter2
`))
	fmt.Println(err)
	// Output:
	// gridha.yaml:3:9: defaults.port: expected a number, got 'ssh'
	// gridha.yaml:5:3: hosts.rb1.address: required: the IP address or DNS name gridha connects to
	// gridha.yaml:6:5: hosts.rb1.adress: unknown key 'adress', did you mean 'address'?
	// gridha.yaml:7:13: hosts.rb1.roles[0]: unknown role 'rb-nod', did you mean 'rb-node'?
	// gridha.yaml:8:5: hosts.rb1.password: unknown key 'password': secrets are never inline, and this section has no password_file
}

func ExampleInventory_ResolveLimit() {
	inv, _ := inventory.Parse("/etc/gridha/gridha.yaml", []byte(`
hosts:
  rb1: {address: 198.18.1.11}
  rb2: {address: 198.18.1.12}
  state1: {address: 198.18.1.10}
`))
	fmt.Println(inv.ResolveLimit([]string{"state1,rb*"}))
	fmt.Println(inv.ResolveLimit([]string{"rb3"}))
	// Output:
	// [rb1 rb2 state1] <nil>
	// [] --limit: no host 'rb3' in /etc/gridha/gridha.yaml, did you mean 'rb1'?
}
