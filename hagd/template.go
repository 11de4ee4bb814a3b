package hagd

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gridha/gridha/templates"
)

// ConfigTemplate is what the rb-node role fills to render hagd.conf
// (templates/hagd.conf.tmpl). Zero values take the daemon's defaults.
type ConfigTemplate struct {
	ID      string  // node ID; required (usually the inventory host name)
	Port    int     // 0: DefaultPort
	Groups  []Group // required
	Script  string  // required: absolute path of the service script
	KeyFile string  // required: absolute path of the 0600 key file
	Ifaces  []string
	Debug   *int // nil: DefaultDebug
	Log     string

	Timeout, StopTimeout                             time.Duration
	DT1, DT2, Heartbeat, StatusInterval, Backoff     time.Duration
	Lease                                            string // "": mysql
	LeaseTTL, LeaseRenew, LeaseTimeout               time.Duration
	LeaseFile                                        string
	MySQLHost, MySQLUser, MySQLDB, MySQLPasswordFile string
	Control                                          string
	// ServiceIPs: group -> "address/prefix@iface" hagd adds and removes
	// itself (kernel lifetime bound to the lease).
	ServiceIPs map[string]string
	// Preempt nil: hagd's default (yes).
	Preempt *bool
	// PeersFile: where hagd keeps the replay filter across restarts (""
	// = DefaultPeersFile; "none": not kept).
	PeersFile string
}

type configView struct {
	ID, GroupList, Script, KeyFile, IfaceList, Log   string
	Port, Debug                                      int
	Timeout, StopTimeout                             string
	DT1, DT2, Heartbeat, StatusInterval, Backoff     string
	Lease, LeaseTTL, LeaseRenew, LeaseTimeout        string
	LeaseFile                                        string
	MySQLHost, MySQLUser, MySQLDB, MySQLPasswordFile string
	Control                                          string
	ServiceIPs                                       []string
	Preempt                                          string
	PeersFile                                        string
}

// FormatDuration writes a duration the way hagd.conf reads it ("1.5s").
func FormatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	if d%time.Millisecond == 0 {
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.String()
}

// Render fills the defaults, renders hagd.conf and parses the result, so a
// template that would not start the daemon is an error here. The defaults
// are the daemon's own (Config.FillDefaults), written out so that the file
// says what hagd does.
func (t ConfigTemplate) Render() ([]byte, error) {
	c := Config{Port: t.Port, Timeout: t.Timeout, StopTimeout: t.StopTimeout, Debug: -1,
		DT1: t.DT1, DT2: t.DT2, Heartbeat: t.Heartbeat, StatusInterval: t.StatusInterval, Backoff: t.Backoff,
		Lease: t.Lease, LeaseRenew: t.LeaseRenew, LeaseTimeout: t.LeaseTimeout, MySQLDB: t.MySQLDB, Control: t.Control}
	if t.Debug != nil {
		c.Debug = *t.Debug
	}
	c.FillDefaults()
	f := FormatDuration
	v := configView{ID: t.ID, Script: t.Script, KeyFile: t.KeyFile, Log: t.Log, Port: c.Port, Debug: c.Debug,
		Lease: c.Lease, LeaseFile: t.LeaseFile, MySQLHost: t.MySQLHost, MySQLUser: t.MySQLUser,
		MySQLDB: c.MySQLDB, MySQLPasswordFile: t.MySQLPasswordFile, Control: c.Control,
		IfaceList: strings.Join(t.Ifaces, ", "),
		Timeout:   f(c.Timeout), StopTimeout: f(c.StopTimeout), DT1: f(c.DT1), DT2: f(c.DT2),
		Heartbeat: f(c.Heartbeat), StatusInterval: f(c.StatusInterval), Backoff: f(c.Backoff),
		LeaseRenew: f(c.LeaseRenew), LeaseTimeout: f(c.LeaseTimeout)}
	for _, g := range t.Groups {
		if ip, ok := t.ServiceIPs[g.Name]; ok {
			v.ServiceIPs = append(v.ServiceIPs, g.Name+":"+ip)
		}
	}
	switch t.PeersFile {
	case "":
		v.PeersFile = DefaultPeersFile
	case "none":
	default:
		v.PeersFile = t.PeersFile
	}
	v.Preempt = "yes"
	if t.Preempt != nil && !*t.Preempt {
		v.Preempt = "no"
	}
	// lease_ttl is written only when chosen: left out, hagd derives it from
	// the other timings (Config.DefaultLeaseTTL) when it starts.
	if t.LeaseTTL != 0 {
		v.LeaseTTL = FormatDuration(t.LeaseTTL)
	}
	var gs []string
	for _, g := range t.Groups {
		gs = append(gs, fmt.Sprintf("%s:%d", g.Name, g.Rank))
	}
	v.GroupList = strings.Join(gs, ", ")
	for _, s := range []string{v.ID, v.GroupList, v.Script, v.KeyFile, v.IfaceList, v.Log, v.MySQLHost, v.MySQLUser, v.MySQLDB, v.MySQLPasswordFile, v.LeaseFile, v.Control, strings.Join(v.ServiceIPs, " "), v.PeersFile} {
		if strings.ContainsAny(s, "\n#") {
			return nil, fmt.Errorf("hagd.conf: value %q has a newline or #", s)
		}
	}
	if v.ID == "" || v.GroupList == "" || v.Script == "" || v.KeyFile == "" {
		return nil, fmt.Errorf("hagd.conf: ID, Groups, Script and KeyFile are required")
	}
	b, err := templates.Render("hagd.conf.tmpl", v)
	if err != nil {
		return nil, err
	}
	if _, err := ParseConfig("hagd.conf (rendered)", b); err != nil {
		return nil, err
	}
	return b, nil
}
