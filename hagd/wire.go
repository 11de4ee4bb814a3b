package hagd

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Wire format of a heartbeat (version 1), all integers big endian:
//
//	"HAGD" | version u8 | reserved u8
//	idLen u8 | node ID
//	boot nonce u64 | sequence u64 | timestamp i64 (Unix ns)
//	count u8, then per group:
//	    tag [16] | rank u16 | state u8 | flags u8 | targetLen u8 | target node ID
//	HMAC-SHA256 [32] over everything before it
//
// The tag is HMAC-SHA256(key, "hagd group v1\x00" + name)[:16], so group
// names never travel in clear text (slide 13). The MAC key is derived from
// the shared key, which never travels either. A receiver checks the MAC
// before it parses anything else, then drops replays and stale packets per
// sender (ReplayFilter).

// State is a provider's state in one group (slides 10 and 11).
type State uint8

// States. Down is only ever sent: it is the last message of a daemon that
// exits cleanly, so that peers need not wait ΔT1.
const (
	StateInitial  State = 1 // no group master known
	StateNormal   State = 2 // a group master is known; our service is stopped
	StateTakeover State = 3 // broadcasting takeover for ΔT2, then starting the service
	StateMaster   State = 4 // group master: the service is up
	StateGiveup   State = 5 // stopping the service, then broadcasting giveup for ΔT2
	StateFailed   State = 6 // start, status or lease failed: service stopped, not a candidate
	StateDown     State = 7 // leaving (clean shutdown)
)

var stateNames = [...]string{"?", "initial", "normal", "takeover", "master", "giveup", "failed", "down"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Flag bits of a group entry.
const (
	flagCandidate uint8 = 1 << 0 // the sender stands for election in this group
)

const (
	wireVersion = 1
	tagLen      = 16
	macLen      = sha256.Size
	maxGroups   = 32
	maxIDLen    = 64
	// MaxPacket bounds a heartbeat; a bigger datagram is not ours.
	MaxPacket = 4 + 2 + 1 + maxIDLen + 24 + 1 + maxGroups*(tagLen+5+maxIDLen) + macLen
)

// Errors of Decode and ReplayFilter.Check, for counting.
var (
	ErrNotHAGD    = errors.New("not a hagd packet")
	ErrBadMAC     = errors.New("bad signature (forged, corrupted or another key)")
	ErrMalformed  = errors.New("malformed packet")
	ErrReplay     = errors.New("replayed or out-of-order packet")
	ErrDuplicate  = errors.New("duplicate packet (heard on two interfaces?)")
	ErrStale      = errors.New("packet timestamp too far from our clock")
	ErrUnknownVer = errors.New("unsupported packet version")
)

// GroupEntry is one group's part of a heartbeat.
type GroupEntry struct {
	Group     string // resolved by Decode from the tag; "" for a group we do not serve
	Tag       [tagLen]byte
	Rank      int
	State     State
	Candidate bool
	// Target is a node ID: in giveup, the successor the master hands over
	// to (manual takeover); in normal/initial, the master this node asks to
	// give the group up (manual takeover request). Empty otherwise.
	Target string
}

// Message is one heartbeat.
type Message struct {
	From   string
	Nonce  uint64 // random per daemon start
	Seq    uint64 // strictly increasing per nonce
	Time   time.Time
	Groups []GroupEntry
}

// Codec signs and verifies heartbeats with the shared key.
type Codec struct {
	macKey []byte
	tagKey []byte
	tags   map[[tagLen]byte]string
}

// NewCodec derives the MAC and tag keys from the shared key and learns the
// tags of the given groups.
func NewCodec(key []byte, groups []string) *Codec {
	c := &Codec{
		macKey: derive(key, "hagd mac v1"),
		tagKey: derive(key, "hagd group v1"),
		tags:   map[[tagLen]byte]string{},
	}
	for _, g := range groups {
		c.tags[c.Tag(g)] = g
	}
	return c
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Tag is the on-wire name of a group.
func (c *Codec) Tag(group string) [tagLen]byte {
	m := hmac.New(sha256.New, c.tagKey)
	m.Write([]byte(group))
	var t [tagLen]byte
	copy(t[:], m.Sum(nil))
	return t
}

// Encode serialises and signs m. Group entries are tagged from Group.
func (c *Codec) Encode(m *Message) ([]byte, error) {
	if len(m.From) == 0 || len(m.From) > maxIDLen {
		return nil, fmt.Errorf("encode: node ID length %d", len(m.From))
	}
	if len(m.Groups) > maxGroups {
		return nil, fmt.Errorf("encode: %d groups (max %d)", len(m.Groups), maxGroups)
	}
	b := make([]byte, 0, 128)
	b = append(b, 'H', 'A', 'G', 'D', wireVersion, 0)
	b = append(b, byte(len(m.From)))
	b = append(b, m.From...)
	b = binary.BigEndian.AppendUint64(b, m.Nonce)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixNano()))
	b = append(b, byte(len(m.Groups)))
	for _, g := range m.Groups {
		if g.Rank < 0 || g.Rank > 65535 || len(g.Target) > maxIDLen {
			return nil, fmt.Errorf("encode: bad group entry")
		}
		t := g.Tag
		if g.Group != "" {
			t = c.Tag(g.Group)
		}
		b = append(b, t[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(g.Rank))
		var fl uint8
		if g.Candidate {
			fl |= flagCandidate
		}
		b = append(b, byte(g.State), fl, byte(len(g.Target)))
		b = append(b, g.Target...)
	}
	mac := hmac.New(sha256.New, c.macKey)
	mac.Write(b)
	return mac.Sum(b), nil
}

// Decode verifies the signature of a packet, then parses it. It never
// parses a byte of an unauthenticated packet beyond the magic.
func (c *Codec) Decode(p []byte) (*Message, error) {
	if len(p) < 6 || string(p[:4]) != "HAGD" {
		return nil, ErrNotHAGD
	}
	if p[4] != wireVersion {
		return nil, ErrUnknownVer
	}
	if len(p) < 6+1+24+1+macLen || len(p) > MaxPacket {
		return nil, ErrMalformed
	}
	body, sig := p[:len(p)-macLen], p[len(p)-macLen:]
	mac := hmac.New(sha256.New, c.macKey)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sig) {
		return nil, ErrBadMAC
	}
	r := reader{b: body[6:]}
	m := &Message{}
	m.From = string(r.bytes(int(r.u8())))
	m.Nonce = r.u64()
	m.Seq = r.u64()
	m.Time = time.Unix(0, int64(r.u64()))
	n := int(r.u8())
	if n > maxGroups {
		return nil, ErrMalformed
	}
	for i := 0; i < n && !r.bad; i++ {
		var g GroupEntry
		copy(g.Tag[:], r.bytes(tagLen))
		g.Rank = int(r.u16())
		g.State = State(r.u8())
		fl := r.u8()
		g.Candidate = fl&flagCandidate != 0
		g.Target = string(r.bytes(int(r.u8())))
		g.Group = c.tags[g.Tag]
		m.Groups = append(m.Groups, g)
	}
	if r.bad || len(r.b) != 0 || m.From == "" || len(m.From) > maxIDLen {
		return nil, ErrMalformed
	}
	for _, g := range m.Groups {
		if g.State < StateInitial || g.State > StateDown {
			return nil, ErrMalformed
		}
	}
	return m, nil
}

type reader struct {
	b   []byte
	bad bool
}

func (r *reader) bytes(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	v := r.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16() uint16 {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint16(v)
}

func (r *reader) u64() uint64 {
	v := r.bytes(8)
	if v == nil {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// ReplayFilter drops authentic packets that are replays or too old. Per
// sender it remembers the boot nonce, the highest sequence number and the
// newest timestamp accepted: a packet of the current boot must carry a
// higher sequence number; a packet of another boot must be newer than
// anything accepted from that sender so far; with MaxSkew set, a packet
// stamped further than MaxSkew from the receiver's clock is dropped (this
// covers a receiver that restarted and so forgot the senders).
type ReplayFilter struct {
	MaxSkew time.Duration
	peers   map[string]*replayState
}

type replayState struct {
	nonce uint64
	seq   uint64
	time  int64
}

// maxTrackedSenders bounds the filter's memory (only authentic senders get
// here, so this is the size of a multigroup with lots of room).
const maxTrackedSenders = 4096

// Check returns nil and records m if m is fresh.
func (f *ReplayFilter) Check(m *Message, now time.Time) error {
	if f.MaxSkew > 0 {
		if d := now.Sub(m.Time); d > f.MaxSkew || d < -f.MaxSkew {
			return ErrStale
		}
	}
	if f.peers == nil {
		f.peers = map[string]*replayState{}
	}
	ts := m.Time.UnixNano()
	p := f.peers[m.From]
	switch {
	case p == nil:
		if len(f.peers) >= maxTrackedSenders {
			return ErrReplay
		}
		f.peers[m.From] = &replayState{m.Nonce, m.Seq, ts}
		return nil
	case m.Nonce == p.nonce:
		if m.Seq == p.seq {
			return ErrDuplicate
		}
		if m.Seq < p.seq {
			return ErrReplay
		}
	default:
		if ts <= p.time {
			return ErrReplay
		}
		p.nonce = m.Nonce
	}
	p.seq = m.Seq
	p.time = max(p.time, ts)
	return nil
}

// MarshalText writes the filter's memory, one sender per line ("id nonce
// seq unixnano"), so that a restarted receiver keeps rejecting replays of
// packets it accepted before (PeersFile).
func (f *ReplayFilter) MarshalText() ([]byte, error) {
	ids := make([]string, 0, len(f.peers))
	for id := range f.peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b []byte
	for _, id := range ids {
		p := f.peers[id]
		b = fmt.Appendf(b, "%s %d %d %d\n", id, p.nonce, p.seq, p.time)
	}
	return b, nil
}

// UnmarshalText restores what MarshalText wrote; bad lines are skipped
// (the file is only a memory: worst case a receiver forgets a sender and
// falls back to max_skew, as before).
func (f *ReplayFilter) UnmarshalText(b []byte) error {
	if f.peers == nil {
		f.peers = map[string]*replayState{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		var id string
		var p replayState
		if n, _ := fmt.Sscanf(line, "%s %d %d %d", &id, &p.nonce, &p.seq, &p.time); n != 4 || len(id) > maxIDLen || len(f.peers) >= maxTrackedSenders {
			continue
		}
		f.peers[id] = &p
	}
	return nil
}

// Keyring signs with one key and accepts heartbeats signed with any of its
// keys: during a key rotation every node accepts the old and the new key
// while the nodes switch, one by one, the key they sign with.
type Keyring struct {
	codecs []*Codec // [0] signs
}

// NewKeyring signs with sign and also accepts every key of accept.
func NewKeyring(sign []byte, accept [][]byte, groups []string) *Keyring {
	k := &Keyring{codecs: []*Codec{NewCodec(sign, groups)}}
	for _, a := range accept {
		if !hmac.Equal(a, sign) {
			k.codecs = append(k.codecs, NewCodec(a, groups))
		}
	}
	return k
}

// Keys is the number of keys accepted (the signing key included).
func (k *Keyring) Keys() int { return len(k.codecs) }

// Encode signs m with the signing key.
func (k *Keyring) Encode(m *Message) ([]byte, error) { return k.codecs[0].Encode(m) }

// Decode verifies p with each key in turn; a packet no key signed is
// ErrBadMAC. Group tags are resolved with the key that signed the packet.
func (k *Keyring) Decode(p []byte) (*Message, error) {
	var err error
	for _, c := range k.codecs {
		var m *Message
		if m, err = c.Decode(p); !errors.Is(err, ErrBadMAC) {
			return m, err
		}
	}
	return nil, err
}
