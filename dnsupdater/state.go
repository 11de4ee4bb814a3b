package dnsupdater

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// State is what the updater saw and did in its last cycle; the daemon writes
// it to the state file after every cycle and `gridha dns-updater status`
// reads it. JSON, no secrets.
type State struct {
	Time         time.Time      `json:"time"`
	Status       Status         `json:"-"`
	StatusText   string         `json:"status"`
	Message      string         `json:"message"`
	Zone         string         `json:"zone"`
	Name         string         `json:"name"`
	Interval     string         `json:"interval"`
	FailAfter    int            `json:"fail_after"`
	RecoverAfter int            `json:"recover_after"`
	Stopped      bool           `json:"stopped,omitempty"`
	BDIIs        []BDIIState    `json:"bdiis"`
	Primaries    []PrimaryState `json:"primaries"`
}

// BDIIState is one BDII address's last check and damping state.
type BDIIState struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Healthy bool   `json:"healthy"`
	Check   string `json:"check"`
	Damper
	Reason string `json:"reason,omitempty"` // why it last entered or left service
}

// PrimaryState is one primary's record set after the cycle.
type PrimaryState struct {
	Addr    string   `json:"primary"`
	Records []string `json:"records"`
	Changes []Change `json:"changes,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Change is one DNS change made in the cycle.
type Change struct {
	Op      string `json:"op"` // add | remove | ttl
	Address string `json:"address,omitempty"`
	Reason  string `json:"reason"`
}

// NagiosLine is the one-line plugin output, with performance data: BDIIs
// in service and primaries in sync.
func (s *State) NagiosLine() string {
	in, ok := 0, 0
	for _, b := range s.BDIIs {
		if b.InService {
			in++
		}
	}
	for _, p := range s.Primaries {
		if p.Error == "" {
			ok++
		}
	}
	return fmt.Sprintf("DNS-UPDATER %s - %s | bdiis_in_service=%d;;;0;%d primaries_in_sync=%d;;;0;%d",
		s.Status, s.Message, in, len(s.BDIIs), ok, len(s.Primaries))
}

// SaveState writes st to path atomically (0644: it holds no secret).
func SaveState(path string, st *State) error {
	st.StatusText = st.Status.String()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".dns-updater.state.*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// LoadState reads a state file; (nil, nil) when it does not exist.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	st.Status = Unknown
	for _, s := range []Status{OK, Warning, Critical, Unknown} {
		if s.String() == st.StatusText {
			st.Status = s
		}
	}
	return &st, nil
}

// WriteReport prints st for an admin: the Nagios line, then one line per
// BDII and per primary.
func (s *State) WriteReport(w io.Writer) {
	fmt.Fprintln(w, s.NagiosLine())
	fmt.Fprintf(w, "last cycle: %s\n", s.Time.Format(time.RFC3339))
	for _, b := range s.BDIIs {
		h := "healthy"
		if !b.Healthy {
			h = "FAILING"
		}
		fmt.Fprintf(w, "bdii %-20s %-8s %s; %s\n", b.Name+"/"+b.Address, h,
			b.Damper.Describe(s.FailAfter, s.RecoverAfter), b.Check)
	}
	for _, p := range s.Primaries {
		recs := strings.Join(p.Records, " ")
		if recs == "" {
			recs = "(none read)"
		}
		line := fmt.Sprintf("primary %-22s records: %s", p.Addr, recs)
		if p.Error != "" {
			line += "; ERROR: " + p.Error
		}
		fmt.Fprintln(w, line)
		for _, c := range p.Changes {
			fmt.Fprintf(w, "  %s %s: %s\n", c.Op, c.Address, c.Reason)
		}
	}
}
