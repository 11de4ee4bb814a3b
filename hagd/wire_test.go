package hagd

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

var testKey = []byte("the shared multigroup key, 32+ bytes long")

func sampleMessage() *Message {
	return &Message{From: "rb1", Nonce: 42, Seq: 7, Time: time.Unix(1700000000, 123),
		Groups: []GroupEntry{
			{Group: "rb-group-1", Rank: 100, State: StateMaster, Candidate: true},
			{Group: "rb-group-2", Rank: 5, State: StateGiveup, Target: "rb3"},
		}}
}

func TestWireRoundTrip(t *testing.T) {
	c := NewCodec(testKey, []string{"rb-group-1", "rb-group-2"})
	b, err := c.Encode(sampleMessage())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("rb-group")) {
		t.Fatal("group name in clear text on the wire")
	}
	if bytes.Contains(b, testKey) {
		t.Fatal("key on the wire")
	}
	m, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "rb1" || m.Nonce != 42 || m.Seq != 7 || !m.Time.Equal(time.Unix(1700000000, 123)) || len(m.Groups) != 2 {
		t.Fatalf("%+v", m)
	}
	g := m.Groups[1]
	if g.Group != "rb-group-2" || g.Rank != 5 || g.State != StateGiveup || g.Target != "rb3" || g.Candidate {
		t.Errorf("%+v", g)
	}
	if !m.Groups[0].Candidate || m.Groups[0].State != StateMaster {
		t.Errorf("%+v", m.Groups[0])
	}
	// A receiver that does not serve a group sees only its tag.
	other := NewCodec(testKey, []string{"rb-group-1"})
	m2, err := other.Decode(b)
	if err != nil || m2.Groups[1].Group != "" {
		t.Errorf("unknown group resolved: %+v %v", m2, err)
	}
}

func TestWireRejectsTamperedAndWrongKey(t *testing.T) {
	c := NewCodec(testKey, []string{"rb-group-1", "rb-group-2"})
	b, _ := c.Encode(sampleMessage())
	for i := 6; i < len(b); i++ { // every byte after the magic and version
		x := append([]byte(nil), b...)
		x[i] ^= 0x01
		if _, err := c.Decode(x); !errors.Is(err, ErrBadMAC) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("flipped byte %d accepted: %v", i, err)
		}
	}
	if _, err := c.Decode(b[:len(b)-1]); err == nil {
		t.Error("truncated accepted")
	}
	wrong := NewCodec([]byte("another key, also long enough.."), []string{"rb-group-1"})
	forged, _ := wrong.Encode(sampleMessage())
	if _, err := c.Decode(forged); !errors.Is(err, ErrBadMAC) {
		t.Errorf("wrong key: %v", err)
	}
	unsigned := forged[:len(forged)-macLen]
	if _, err := c.Decode(unsigned); err == nil {
		t.Error("unsigned accepted")
	}
	if _, err := c.Decode([]byte("GET / HTTP/1.0\r\n")); !errors.Is(err, ErrNotHAGD) {
		t.Errorf("junk: %v", err)
	}
}

func TestReplayFilter(t *testing.T) {
	now := time.Unix(1700000000, 0)
	f := ReplayFilter{MaxSkew: time.Minute}
	m := func(nonce, seq uint64, ts time.Time) *Message {
		return &Message{From: "rb1", Nonce: nonce, Seq: seq, Time: ts}
	}
	steps := []struct {
		msg  *Message
		want error
	}{
		{m(1, 5, now), nil},
		{m(1, 5, now), ErrDuplicate},                 // same packet again (two interfaces, or replayed at once)
		{m(1, 4, now.Add(time.Second)), ErrReplay},   // older sequence
		{m(1, 6, now.Add(time.Second)), nil},         // next one
		{m(2, 1, now), ErrReplay},                    // "new boot" but not newer: an old boot replayed
		{m(2, 1, now.Add(2*time.Second)), nil},       // a real restart
		{m(3, 1, now.Add(-2*time.Minute)), ErrStale}, // captured long ago
		{m(3, 1, now.Add(2*time.Minute)), ErrStale},  // from the future
		{&Message{From: "rb2", Nonce: 9, Seq: 1, Time: now}, nil},
	}
	for i, s := range steps {
		if err := f.Check(s.msg, now); !errors.Is(err, s.want) && !(err == nil && s.want == nil) {
			t.Errorf("step %d: got %v, want %v", i, err, s.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	c := NewCodec(testKey, []string{"rb-group-1", "rb-group-2"})
	b, _ := c.Encode(sampleMessage())
	f.Add(b)
	f.Add([]byte("HAGD\x01\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := c.Decode(p)
		if err != nil {
			return
		}
		// Anything accepted re-encodes to the same bytes.
		out, err := c.Encode(m)
		if err != nil {
			t.Fatalf("accepted but cannot re-encode: %v", err)
		}
		if !bytes.Equal(out, p) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzDecodeUnsigned checks the parser behind the signature: with the MAC
// recomputed over fuzzed bodies, Decode must never panic and must only
// return well-formed messages.
func FuzzDecodeUnsigned(f *testing.F) {
	c := NewCodec(testKey, []string{"rb-group-1"})
	b, _ := c.Encode(sampleMessage())
	f.Add(b[:len(b)-macLen])
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) < 6 {
			return
		}
		body = append([]byte("HAGD\x01\x00"), body[6:]...)
		mac := hmacSum(c.macKey, body)
		m, err := c.Decode(append(body, mac...))
		if err == nil && (m.From == "" || len(m.Groups) > maxGroups) {
			t.Fatalf("bad message accepted: %+v", m)
		}
	})
}

func hmacSum(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(nil)
}

// A receiver restarted with its saved memory (peers_file) rejects a copy
// of a packet it accepted before the restart, however fresh.
func TestReplayFilterSurvivesRestart(t *testing.T) {
	now := time.Unix(1700000000, 0)
	var f ReplayFilter
	pkt := &Message{From: "rb1", Nonce: 7, Seq: 41, Time: now}
	if err := f.Check(pkt, now); err != nil {
		t.Fatal(err)
	}
	if err := f.Check(&Message{From: "rb2", Nonce: 3, Seq: 9, Time: now}, now); err != nil {
		t.Fatal(err)
	}
	saved, _ := f.MarshalText()
	var g ReplayFilter // the restarted receiver
	if err := g.UnmarshalText(append(saved, []byte("garbage line\n")...)); err != nil {
		t.Fatal(err)
	}
	for i, m := range []*Message{
		pkt, // the same packet replayed
		{From: "rb1", Nonce: 7, Seq: 40, Time: now},                      // an older one of that boot
		{From: "rb1", Nonce: 8, Seq: 1, Time: now.Add(-time.Second)},     // an older boot
		{From: "rb2", Nonce: 3, Seq: 9, Time: now.Add(time.Millisecond)}, // rb2's, replayed
	} {
		if err := g.Check(m, now.Add(time.Second)); err == nil {
			t.Errorf("case %d: the restarted receiver accepted a replay", i)
		}
	}
	if err := g.Check(&Message{From: "rb1", Nonce: 7, Seq: 42, Time: now.Add(time.Second)}, now.Add(time.Second)); err != nil {
		t.Errorf("the next genuine packet: %v", err)
	}
	// Without the memory the first replay got through (the old limit).
	var h ReplayFilter
	if err := h.Check(pkt, now.Add(time.Second)); err != nil {
		t.Errorf("control: %v", err)
	}
}

// TestKeyringTwoKeys: during a rotation a node accepts heartbeats signed
// with either key and resolves the groups of both; a third key is refused,
// and a keyring without the second key refuses packets signed with it.
func TestKeyringTwoKeys(t *testing.T) {
	oldKey, newKey := []byte("old key of the multigroup......."), []byte("new key of the multigroup.......")
	groups := []string{"rb-group-1"}
	msg := &Message{From: "n2", Nonce: 1, Seq: 1, Time: time.Unix(1, 0), Groups: []GroupEntry{{Group: "rb-group-1", Rank: 10, State: StateMaster}}}
	signed := func(key []byte) []byte {
		b, err := NewCodec(key, groups).Encode(msg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	both := NewKeyring(oldKey, [][]byte{newKey, oldKey}, groups)
	if both.Keys() != 2 {
		t.Errorf("keys: %d, want 2 (the signing key listed again counts once)", both.Keys())
	}
	for name, key := range map[string][]byte{"old": oldKey, "new": newKey} {
		m, err := both.Decode(signed(key))
		if err != nil || m.Groups[0].Group != "rb-group-1" || m.From != "n2" {
			t.Errorf("signed with the %s key: %v %+v", name, err, m)
		}
	}
	if _, err := both.Decode(signed([]byte("a third key, also long enough..."))); !errors.Is(err, ErrBadMAC) {
		t.Errorf("third key: %v", err)
	}
	// it signs with its own key only
	b, _ := both.Encode(msg)
	if _, err := NewCodec(oldKey, groups).Decode(b); err != nil {
		t.Errorf("keyring signs with another key than its first: %v", err)
	}
	if _, err := NewCodec(newKey, groups).Decode(b); !errors.Is(err, ErrBadMAC) {
		t.Errorf("keyring signature verifies with the accepted key: %v", err)
	}
	only := NewKeyring(newKey, nil, groups)
	if _, err := only.Decode(signed(oldKey)); !errors.Is(err, ErrBadMAC) {
		t.Errorf("old key after the rotation: %v", err)
	}
	// a malformed packet signed with the second key is malformed, not "bad MAC"
	p := signed(newKey)
	if _, err := both.Decode(p[:10]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short packet: %v", err)
	}
}
