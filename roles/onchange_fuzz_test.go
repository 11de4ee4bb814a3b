package roles

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzParseNamedState: rndc status output as the reload probe passes it
// on parses without a panic; a file counts as newer than the last reload
// only when named runs, its reload time is known, and the file's mtime is
// after it.
func FuzzParseNamedState(f *testing.F) {
	f.Add(int64(1700000000), int64(1700000001), "/etc/bind/named.conf.gridha", "rndc=0\nconfigured=Fri, 27 Nov 2026 14:00:00 GMT\nmtime=x y\n")
	f.Add(int64(0), int64(-1), "/a b", "rndc=1\nmsg=connection refused\nmtime=5\n")
	f.Fuzz(func(t *testing.T, conf, mtime int64, file, any string) {
		_, _ = parseNamedState(any)
		if conf < 0 || conf > 1<<40 || strings.Contains(file, "\n") {
			return
		}
		c := time.Unix(conf, 0).UTC()
		out := fmt.Sprintf("rndc=0\nconfigured=%s\nmsg=server is up and running\nmtime=%d %s\n", c.Format(time.RFC1123), mtime, file)
		st, err := parseNamedState(out)
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		if !st.Running || !st.Configured.Equal(c) {
			t.Fatalf("%q: got %+v", out, st)
		}
		if newer := len(st.Newer) == 1 && st.Newer[0] == file; newer != (mtime > conf) {
			t.Fatalf("%q: newer %q (mtime %d, configured %d)", out, st.Newer, mtime, conf)
		}
	})
}
