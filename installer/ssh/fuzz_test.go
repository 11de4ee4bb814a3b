package sshx

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseIDs: getent passwd/group output, however garbled, fills ids
// without a panic; a well-formed line's id is taken, and the first of two
// lines for one name wins (getent's order is the lookup order).
func FuzzParseIDs(f *testing.F) {
	f.Add("rb", 1000, "root:x:0:0:root:/root:/bin/sh\n#c:x:1\n:x:2\nx:y:z\n")
	f.Add("grp", -1, "a:x\nb:x:99999999999999999999:\n")
	f.Fuzz(func(t *testing.T, name string, id int, any string) {
		parseIDs(map[string]int{}, "passwd", []byte(any))
		if name == "" || name[0] == '#' || strings.ContainsAny(name, ":\n\r") {
			return
		}
		ids := map[string]int{}
		parseIDs(ids, "group", []byte(fmt.Sprintf("%s:x:%d:\n%s:x:%d:\n", name, id, name, id+1)))
		if got, ok := ids["group:"+name]; !ok || got != id || len(ids) != 1 {
			t.Fatalf("%q id %d: got %v", name, id, ids)
		}
	})
}
