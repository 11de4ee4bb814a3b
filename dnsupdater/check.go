package dnsupdater

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Status is a Nagios plugin status; its value is the plugin exit code.
type Status int

// Nagios plugin exit codes.
const (
	OK       Status = 0
	Warning  Status = 1
	Critical Status = 2
	Unknown  Status = 3
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// Healthy reports whether a check status lets a BDII serve: OK and WARNING
// do; CRITICAL and UNKNOWN (the check could not tell) do not.
func (s Status) Healthy() bool { return s == OK || s == Warning }

// Result is the outcome of one check of one BDII.
type Result struct {
	Status   Status
	Message  string // one line, for logs and the state file
	Duration time.Duration
}

// Check is one health test. Run must return within ctx's deadline.
type Check interface {
	Name() string
	Run(ctx context.Context, target BDII) Result
}

// LDAPCheck is MAN05's test: the BDII answers on its port within the
// timeout, its UpdateStats entry (found by objectClass under o=infosys, the
// DN varies between versions) was modified within Freshness and reports at
// least MinEntries entries, and optionally a search under QueryBase answers.
type LDAPCheck struct {
	Freshness  time.Duration
	MinEntries int
	QueryBase  string
	// Now is the clock (nil: time.Now); tests of freshness use the BDII's
	// own clock which is this machine's.
	Now func() time.Time
}

// Name implements Check.
func (c *LDAPCheck) Name() string { return "ldap" }

// Run implements Check.
func (c *LDAPCheck) Run(ctx context.Context, t BDII) Result {
	start := time.Now()
	st, msg := c.run(ctx, t)
	return Result{Status: st, Message: msg, Duration: time.Since(start)}
}

func (c *LDAPCheck) run(ctx context.Context, t BDII) (Status, string) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.HostPort())
	if err != nil {
		return Critical, fmt.Sprintf("ldap %s: %v", t.HostPort(), shortErr(err))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	l := ldap.NewConn(nc, false)
	l.Start()
	defer l.Close()
	// Bound every operation by ctx: closing the connection unblocks a search.
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		l.SetTimeout(time.Until(dl))
	}

	req := ldap.NewSearchRequest("o=infosys", ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 10, 0, false,
		"(objectClass=UpdateStats)", []string{"TotalEntries", "modifyTimestamp", "Hostname"}, nil)
	res, err := l.Search(req)
	if err != nil {
		if timedOut(ctx, err) {
			return Critical, fmt.Sprintf("ldap %s: no answer within the check timeout", t.HostPort())
		}
		return Critical, fmt.Sprintf("ldap %s: search o=infosys: %v", t.HostPort(), shortErr(err))
	}
	if len(res.Entries) == 0 {
		return Critical, fmt.Sprintf("ldap %s: no UpdateStats entry under o=infosys (bdii-update not running?)", t.HostPort())
	}
	e := res.Entries[0]
	ts := e.GetEqualFoldAttributeValue("modifyTimestamp")
	if ts == "" {
		return Critical, fmt.Sprintf("ldap %s: %s has no modifyTimestamp", t.HostPort(), e.DN)
	}
	mod, err := parseGeneralizedTime(ts)
	if err != nil {
		return Critical, fmt.Sprintf("ldap %s: %s: modifyTimestamp %q: %v", t.HostPort(), e.DN, ts, err)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	age := now().Sub(mod).Truncate(time.Second)
	if age > c.Freshness {
		return Critical, fmt.Sprintf("ldap %s: UpdateStats is stale: modified %s ago (threshold %s; bdii-update hung?)",
			t.HostPort(), age, c.Freshness)
	}
	total, err := strconv.Atoi(strings.TrimSpace(e.GetEqualFoldAttributeValue("TotalEntries")))
	if err != nil {
		return Critical, fmt.Sprintf("ldap %s: %s: TotalEntries missing or not a number", t.HostPort(), e.DN)
	}
	if total < c.MinEntries {
		return Critical, fmt.Sprintf("ldap %s: TotalEntries %d < minimum %d", t.HostPort(), total, c.MinEntries)
	}
	msg := fmt.Sprintf("ldap %s: TotalEntries %d, updated %s ago", t.HostPort(), total, age)
	if c.QueryBase != "" {
		q := ldap.NewSearchRequest(c.QueryBase, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"1.1"}, nil)
		r, err := l.Search(q)
		if err != nil {
			if timedOut(ctx, err) {
				return Critical, fmt.Sprintf("ldap %s: search %s: no answer within the check timeout", t.HostPort(), c.QueryBase)
			}
			return Critical, fmt.Sprintf("ldap %s: search %s: %v", t.HostPort(), c.QueryBase, shortErr(err))
		}
		msg += fmt.Sprintf(", %s answers (%d entries)", c.QueryBase, len(r.Entries))
	}
	return OK, msg
}

// timedOut tells a timeout (ours, or go-ldap's own, set to the same
// deadline) from other errors.
func timedOut(ctx context.Context, err error) bool {
	var ne net.Error
	if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		return true
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 100*time.Millisecond {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "timed out") || strings.Contains(msg, "i/o timeout")
}

// parseGeneralizedTime parses LDAP GeneralizedTime as slapd writes it
// ("20110615120723Z", optionally with fractions).
func parseGeneralizedTime(s string) (time.Time, error) {
	for _, layout := range []string{"20060102150405Z", "20060102150405.999999Z", "20060102150405Z0700", "20060102150405.999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a GeneralizedTime")
}

func shortErr(err error) string {
	var le *ldap.Error
	if errors.As(err, &le) && le.Err != nil {
		err = le.Err
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// ExecCheck runs a Nagios plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, other
// UNKNOWN; the first line of its output is the message. No shell: the
// placeholders {name}, {address} and {port} are replaced in each argument.
type ExecCheck struct {
	CheckName string
	Argv      []string
}

// Name implements Check.
func (c *ExecCheck) Name() string { return c.CheckName }

// Run implements Check.
func (c *ExecCheck) Run(ctx context.Context, t BDII) Result {
	start := time.Now()
	r := strings.NewReplacer("{name}", t.Name, "{address}", t.Address.String(), "{port}", strconv.Itoa(t.Port))
	argv := make([]string, len(c.Argv))
	for i, a := range c.Argv {
		argv[i] = r.Replace(a)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	res := Result{Duration: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		res.Status, res.Message = Critical, fmt.Sprintf("%s: no answer within the check timeout", c.CheckName)
		return res
	case err == nil:
		res.Status = OK
	case errors.As(err, &ee):
		switch ee.ExitCode() {
		case 1:
			res.Status = Warning
		case 2:
			res.Status = Critical
		default:
			res.Status = Unknown
		}
	default:
		res.Status, res.Message = Unknown, fmt.Sprintf("%s: %v", c.CheckName, err)
		return res
	}
	if line == "" {
		line = "exit " + strconv.Itoa(int(res.Status))
	}
	res.Message = c.CheckName + ": " + line
	return res
}

// ChecksFor builds the checks a configuration asks for: the LDAP check
// first, then each check_command.
func ChecksFor(c *Config) []Check {
	cs := []Check{&LDAPCheck{Freshness: c.Freshness, MinEntries: c.MinEntries, QueryBase: c.QueryBase}}
	for _, cc := range c.Commands {
		cs = append(cs, &ExecCheck{CheckName: cc.Name, Argv: cc.Argv})
	}
	return cs
}
