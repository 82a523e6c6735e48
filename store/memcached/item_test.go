package memcached

import (
	"errors"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/tier"
)

func TestExpiration(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC)
	tests := []struct {
		name     string
		expires  time.Time
		wantExp  int32
		wantLive bool
	}{
		{"zero never expires", time.Time{}, 0, true},
		{"one nanosecond left rounds up to 1, plus one", now.Add(time.Nanosecond), 2, true},
		{"half a second", now.Add(500 * time.Millisecond), 2, true},
		{"exactly one second", now.Add(time.Second), 2, true},
		{"just over one second", now.Add(time.Second + time.Millisecond), 3, true},
		{"one hour", now.Add(time.Hour), 3601, true},
		{"30 days less a second stays relative", now.Add(30*24*time.Hour - time.Second), 2592000, true},
		{"exactly 30 days is absolute", now.Add(30 * 24 * time.Hour), int32(now.Add(30*24*time.Hour).Unix() + 2), true},
		{"30 days and a bit is absolute, rounded up", now.Add(30*24*time.Hour + time.Millisecond), int32(now.Add(30*24*time.Hour).Unix() + 2), true},
		{"whole-second absolute", time.Unix(now.Unix()+90*24*3600, 0), int32(now.Unix() + 90*24*3600 + 1), true},
		{"past 2038 cannot be expressed", time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), 0, true},
		{"expires now", now, 0, false},
		{"expired", now.Add(-time.Minute), 0, false},
		{"before 1970", time.Unix(-5, 0), 0, false},
	}
	for _, tt := range tests {
		exp, live := expiration(now, tt.expires)
		if exp != tt.wantExp || live != tt.wantLive {
			t.Errorf("%s: expiration = %d, %v; want %d, %v", tt.name, exp, live, tt.wantExp, tt.wantLive)
		}
	}
}

func TestItemRoundTrip(t *testing.T) {
	t.Parallel()
	entries := []tier.Entry{
		{Value: []byte("v")},
		{Value: []byte{}, Expires: time.UnixMilli(1_700_000_000_123)},
		{Negative: true, Expires: time.UnixMilli(1_700_000_000_000)},
	}
	for _, key := range []string{"plain", "a b", "", string(make([]byte, 300))} {
		wire, hashed := keyCodec{}.encode(key)
		for _, e := range entries {
			it := newItem(key, wire, hashed, e, 0)
			got, err := decodeItem(key, hashed, it.Flags, it.Value)
			if err != nil {
				t.Fatalf("%q: %v", key, err)
			}
			if string(got.Value) != string(e.Value) || !got.Expires.Equal(e.Expires) || got.Negative != e.Negative {
				t.Errorf("%q: got %+v, want %+v", key, got, e)
			}
		}
	}
}

func TestDecodeItemRejects(t *testing.T) {
	t.Parallel()
	good := tier.EncodeEntry(tier.Entry{Value: []byte("v")})
	tests := []struct {
		name   string
		hashed bool
		it     memcache.Item
		want   error
	}{
		{"zero flags", false, memcache.Item{Value: good}, tier.ErrBadEnvelope},
		{"keyed flags on a plain key", false, memcache.Item{Value: good, Flags: flagsKeyedEnvelope}, tier.ErrBadEnvelope},
		{"plain flags on a hashed key", true, memcache.Item{Value: good, Flags: flagsEnvelope}, tier.ErrBadEnvelope},
		{"empty keyed value", true, memcache.Item{Flags: flagsKeyedEnvelope}, tier.ErrBadEnvelope},
		{"key length past the end", true, memcache.Item{Value: []byte{200, 1, 'k'}, Flags: flagsKeyedEnvelope}, tier.ErrBadEnvelope},
		{"other key", true, memcache.Item{Value: append([]byte{1, 'x'}, good...), Flags: flagsKeyedEnvelope}, errKeyMismatch},
		{"short envelope", false, memcache.Item{Value: []byte{1}, Flags: flagsEnvelope}, tier.ErrBadEnvelope},
	}
	for _, tt := range tests {
		if _, err := decodeItem("k", tt.hashed, tt.it.Flags, tt.it.Value); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}
