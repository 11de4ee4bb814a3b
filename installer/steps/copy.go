package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/gridha/gridha/installer"
)

// Copy is a file on the host that must be a byte-for-byte copy of a local
// file (for example the gridha binary itself, os.Executable()). Unlike File
// it never reads the remote content: the probe returns the remote file's
// SHA-256, which is compared with the local file's, so a 15 MB binary is
// sent only when it differs. After writing, the remote hash is checked
// again.
//
// Hashing an 18 MB binary costs about 0.1 CPU-second on the host, more than
// the rest of an rb node's verify: so the host keeps the hash it verified
// after the copy in CopySums, with the file's inode, size, mtime and ctime
// (nanoseconds). The probe hashes again only when one of those differs: any
// write, chmod, chown or rename changes the ctime, which only the kernel
// sets. The local side's hash is computed once per run and source file.
type Copy struct {
	Path   string      // on the host
	Source string      // on the machine running gridha
	Mode   fs.FileMode // 0: leave an existing file's mode (new files get 0755)
	Owner  string      // "": leave (new files: the login user, root)
	Group  string
}

// CopySums is the file on the host where Copy keeps the hashes it verified
// (installer.FileHashProbe reads them): lines "SHA256 INODE SIZE MTIME
// CTIME PATH".
const CopySums = installer.HashCache

// ID implements installer.Step.
func (c Copy) ID() string { return "copy " + c.Path }

// cacheable: a path the sums file can hold (one field, read by sh's read).
func (c Copy) cacheable() bool { return installer.HashCacheable(c.Path) }

// recordScript hashes the file again and, when it is want and the file did
// not change meanwhile, keeps the hash in CopySums. It prints "H hash".
func (c Copy) recordScript(want string) string {
	return fmt.Sprintf(`p=%s c=%s w=%s
k1=$(stat -c '%%i %%s %%.9Y %%.9Z' "$p") || exit 1
h=$(sha256sum < "$p") || exit 1; h=${h%%%% *}
echo "H $h"
k2=$(stat -c '%%i %%s %%.9Y %%.9Z' "$p") || exit 1
[ "$h" = "$w" ] && [ "$k1" = "$k2" ] || exit 0
mkdir -p "${c%%/*}" || exit 0
{ if [ -f "$c" ]; then while read -r s i z m t q; do [ "$q" = "$p" ] || printf '%%s %%s %%s %%s %%s %%s\n' "$s" "$i" "$z" "$m" "$t" "$q"; done < "$c"; fi
  printf '%%s %%s %%s\n' "$h" "$k2" "$p"; } > "$c.tmp" && chmod 644 "$c.tmp" && mv -f "$c.tmp" "$c"
exit 0`, installer.ShellQuote(c.Path), CopySums, want)
}

// Probes implements installer.Step.
func (c Copy) Probes() []installer.Probe { return []installer.Probe{c.probe()} }

func (c Copy) probe() installer.Probe { return installer.FileHashProbe(c.Path) }

// copyFact is what the probe found: the file's metadata and its hash.
func (c Copy) copyFact(env *installer.Env) (installer.FileFact, string, error) {
	ff, err := env.Facts.FileHash(c.Path)
	return ff, ff.SHA256, err
}

// CheckApply implements installer.Step.
func (c Copy) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	want, size, err := localSHA256(env, c.Source)
	if err != nil {
		return failed(env, c.ID(), fmt.Errorf("local source: %w", err))
	}
	ff, got, err := c.copyFact(env)
	if err != nil {
		return failed(env, c.ID(), err)
	}
	if ff.Kind == installer.KindDir || ff.Kind == installer.KindOther {
		return failed(env, c.ID(), fmt.Errorf("%s is %s, not a regular file; refusing to replace it", c.Path, kindName(ff)))
	}
	short := func(s string) string {
		if len(s) > 12 {
			return s[:12]
		}
		return s
	}
	attrWant := attrs{Mode: c.Mode, Owner: c.Owner, Group: c.Group}
	var diffs, fix []string
	var props []installer.PropertyDrift
	contentDiffers := !ff.Exists || ff.Kind == installer.KindSymlink || got != want
	switch {
	case !ff.Exists:
	case ff.Kind == installer.KindSymlink:
		diffs = append(diffs, "is "+kindName(ff)+", want a regular file")
		props = append(props, installer.Prop("kind", "regular file", kindWord(ff)))
	case got != want:
		diffs = append(diffs, fmt.Sprintf("sha256 %s, want %s (%s)", short(got), short(want), c.Source))
		props = append(props, installer.Prop("content", "sha256 "+short(want), "sha256 "+short(got)))
	}
	if ff.Exists && ff.Kind == installer.KindFile {
		ad, ap, f := attrDiffs(ff, attrWant)
		diffs, props, fix = append(diffs, ad...), append(props, ap...), f
	}
	if ff.Exists && len(diffs) == 0 {
		return installer.OK("sha256 " + short(want))
	}
	msg := c.Path + ": " + strings.Join(diffs, "; ")
	if !apply {
		if !ff.Exists {
			r := installer.MissingProps(c.Path+" does not exist", installer.Prop("kind", "regular file", "absent"))
			r.Expected, r.Found = "copy of "+c.Source+" (sha256 "+short(want)+")", "absent"
			return r
		}
		r := installer.DriftProps(msg, props...)
		r.Expected, r.Found = "sha256 "+short(want)+", "+expectedAttrs(attrWant), "sha256 "+short(got)+", "+foundAttrs(ff)
		return r
	}
	var data []byte
	mode, owner, group := c.Mode, c.Owner, c.Group
	if contentDiffers {
		// Read only now: many hosts at once must not each hold a copy
		// of a big binary just to compare it.
		if data, err = os.ReadFile(c.Source); err != nil {
			return failed(env, c.ID(), fmt.Errorf("local source: %w", err))
		}
		if ff.Kind == installer.KindFile {
			if mode == 0 {
				mode = ff.Mode
			}
			owner, group = or(owner, ff.Owner), or(group, ff.Group)
		}
		if mode == 0 {
			mode = 0o755
		}
	}
	if err := writeOrFix(ctx, env, c.Path, contentDiffers, data, mode, owner, group, fix); err != nil {
		return failed(env, c.ID(), err)
	}
	if c.cacheable() {
		res, err := sh(ctx, env, "check and record the sha256 of "+c.Path, c.recordScript(want), nil)
		if err != nil {
			return failed(env, c.ID(), err)
		}
		if after := strings.TrimSpace(strings.TrimPrefix(string(res.Stdout), "H ")); after != want {
			return failed(env, c.ID(), fmt.Errorf("%s: sha256 after writing is %s, want %s", c.Path, short(after), short(want)))
		}
		if err := env.Reprobe(ctx, c.probe()); err != nil {
			return failed(env, c.ID(), err)
		}
	} else {
		if err := env.Reprobe(ctx, c.probe()); err != nil {
			return failed(env, c.ID(), err)
		}
		if _, after, err := c.copyFact(env); err != nil {
			return failed(env, c.ID(), err)
		} else if after != want {
			return failed(env, c.ID(), fmt.Errorf("%s: sha256 after writing is %s, want %s", c.Path, short(after), short(want)))
		}
	}
	if !ff.Exists {
		return installer.Changed(fmt.Sprintf("copied %s (%d bytes, sha256 %s)", c.Source, size, short(want)))
	}
	return installer.Changed(msg)
}

// localSHA256 is fileSHA256 once per run, source file and version of it:
// thirty hosts need not hash the same 18 MB binary thirty times.
func localSHA256(env *installer.Env, path string) (string, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", 0, err
	}
	type sum struct {
		hex  string
		size int64
	}
	key := fmt.Sprintf("steps/copy-sha256\x00%s\x00%d\x00%d", path, st.Size(), st.ModTime().UnixNano())
	v, shared, err := installer.Shared(env, key, func() (sum, error) {
		h, n, err := fileSHA256(path)
		return sum{h, n}, err
	})
	if err != nil {
		return "", 0, err
	}
	if !shared {
		return fileSHA256(path)
	}
	return v.hex, v.size, nil
}

// fileSHA256 hashes a local file without holding it in memory.
func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
