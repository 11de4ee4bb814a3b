// Package privatefile reads secret files the way ssh reads a private key:
// refused when group or others may access them. Both the admin machine's
// secrets (inventory) and hagd's key and password files are read so.
package privatefile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Rules say what Read refuses besides a mode giving group or others access.
type Rules struct {
	// TooOpen is the error for such a mode (each caller names its own fix).
	TooOpen func(perm fs.FileMode) error
	Regular bool  // refuse anything but a regular file
	Limit   int64 // refuse a file larger than Limit bytes (0: no limit)
}

// Read returns path's content. The mode is checked on the opened file, so
// it is the one whose content is returned.
func Read(path string, r Rules) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if r.Regular && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, r.TooOpen(perm)
	}
	var in io.Reader = f
	if r.Limit > 0 {
		in = io.LimitReader(f, r.Limit+1)
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Limit > 0 && int64(len(b)) > r.Limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, r.Limit)
	}
	return b, nil
}
