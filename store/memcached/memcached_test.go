package memcached

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/tiercache/tiercache/internal/clocktest"
	"github.com/tiercache/tiercache/internal/testenv"
	"github.com/tiercache/tiercache/tier"
)

// newTestTier starts a memcached and returns a Tier on it, closed when the
// test ends.
func newTestTier(t *testing.T, opts ...Option) (*Tier, *testenv.MemcachedServer) {
	t.Helper()
	mc := testenv.Memcached(t)
	tr, err := New([]string{mc.Addr}, patient(opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, mc
}

func mustGet(t *testing.T, tr *Tier, key string) tier.Entry {
	t.Helper()
	e, err := tr.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%.40q): %v", key, err)
	}
	return e
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr, _ := newTestTier(t)
	expires := time.Now().Add(time.Hour).Truncate(time.Millisecond)

	if _, err := tr.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get before Set: %v, want ErrMiss", err)
	}
	if err := tr.Set(ctx, "k", tier.Entry{Value: []byte("v1"), Expires: expires}); err != nil {
		t.Fatal(err)
	}
	if e := mustGet(t, tr, "k"); string(e.Value) != "v1" || !e.Expires.Equal(expires) || e.Negative {
		t.Fatalf("Get = %+v", e)
	}

	err := tr.Add(ctx, "k", tier.Entry{Value: []byte("v2")})
	if !errors.Is(err, tier.ErrNotStored) {
		t.Fatalf("Add on present key: %v, want ErrNotStored", err)
	}
	if e := mustGet(t, tr, "k"); string(e.Value) != "v1" {
		t.Fatalf("Add overwrote: %q", e.Value)
	}

	if err := tr.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := tr.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete of absent key: %v", err)
	}
	if _, err := tr.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("Get after Delete: %v, want ErrMiss", err)
	}
	if err := tr.Add(ctx, "k", tier.Entry{Value: []byte("v3")}); err != nil {
		t.Fatalf("Add on absent key: %v", err)
	}
	if e := mustGet(t, tr, "k"); string(e.Value) != "v3" || !e.Expires.IsZero() {
		t.Fatalf("Get after Add = %+v", e)
	}

	// A negative entry records that the source has no such key.
	if err := tr.Set(ctx, "gone", tier.Entry{Negative: true, Expires: expires}); err != nil {
		t.Fatal(err)
	}
	if e := mustGet(t, tr, "gone"); !e.Negative || e.Value != nil || !e.Expires.Equal(expires) {
		t.Fatalf("negative entry = %+v", e)
	}

	c := tr.Counters()
	if c["hits"] != 4 || c["misses"] != 2 || c["not_stored"] != 1 || c["errors"] != 0 {
		t.Fatalf("counters = %v", c)
	}
}

func TestExpirationSent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Now()
	clk := clocktest.New(now)
	tr, mc := newTestTier(t, WithClock(clk))

	tests := []struct {
		name    string
		expires time.Time
		want    int // seconds left, as memcached's "mg key t" reports them
	}{
		{"never", time.Time{}, -1},
		{"one hour, plus memcached's second", now.Add(time.Hour), 3601},
		{"sub-second rounds up", now.Add(10 * time.Millisecond), 2},
		{"just over a minute", now.Add(time.Minute + time.Millisecond), 62},
		{"over 30 days is absolute", now.Add(40 * 24 * time.Hour), 40*24*3600 + 1},
	}
	for _, tt := range tests {
		if err := tr.Set(ctx, tt.name, tier.Entry{Value: []byte("v"), Expires: tt.expires}); err != nil {
			t.Fatal(err)
		}
		wire, _ := tr.keys.encode(tt.name)
		reply := metaTTL(t, mc.Addr, wire)
		got, err := strconv.Atoi(strings.TrimPrefix(reply, "HD t"))
		// memcached's clock ticks once a second, and an absolute time is
		// rounded up to one: allow one second either way.
		if err != nil || got < tt.want-1 || got > tt.want+1 || (tt.want == -1 && got != -1) {
			t.Errorf("%s: mg t = %q, want about %d", tt.name, reply, tt.want)
		}
	}
}

func TestExpiredEntryIsNotStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := clocktest.New(time.Now())
	tr, _ := newTestTier(t, WithClock(clk))
	past := clk.Now().Add(-time.Second)

	if err := tr.Set(ctx, "k", tier.Entry{Value: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Set(ctx, "k", tier.Entry{Value: []byte("new"), Expires: past}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("after Set of an expired entry: %v, want the old value gone", err)
	}
	if err := tr.Add(ctx, "k", tier.Entry{Value: []byte("new"), Expires: clk.Now()}); err != nil {
		t.Fatalf("Add of an expired entry: %v", err)
	}
	if _, err := tr.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("after Add of an expired entry: %v, want nothing stored", err)
	}
	if n := tr.Counters()["expired_skipped"]; n != 2 {
		t.Fatalf("expired_skipped = %d, want 2", n)
	}
}

// trickyKeys are keys memcached cannot carry as they are, keys at the
// edges of what it can, and keys that look like the hashed form.
func trickyKeys(codec keyCodec) map[string]string {
	hashedAB, _ := codec.encode("a b")
	keys := map[string]string{
		"empty":             "",
		"one byte":          "a",
		"250 bytes":         strings.Repeat("k", 250),
		"251 bytes":         strings.Repeat("k", 251),
		"10000 bytes":       strings.Repeat("k", 10000),
		"space":             "a b",
		"crlf":              "a\r\nb",
		"nul":               "a\x00b",
		"del":               "a\x7fb",
		"utf-8":             "ключ-キー",
		"invalid utf-8":     "\xff\xfe",
		"hashed look-alike": strings.TrimPrefix(hashedAB, codec.prefix),
		"marker only":       hashedMarker,
		"command injection": "x 0 0 1\r\nset y",
	}
	return keys
}

func TestKeysRoundTrip(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "app:"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			tr, mc := newTestTier(t, WithKeyPrefix(prefix))
			keys := trickyKeys(tr.keys)
			keys["fits with prefix"] = strings.Repeat("p", 250-len(prefix))
			keys["one over with prefix"] = strings.Repeat("q", 251-len(prefix))

			for name, key := range keys {
				if err := tr.Set(ctx, key, tier.Entry{Value: []byte(name)}); err != nil {
					t.Fatalf("Set %s: %v", name, err)
				}
			}
			for name, key := range keys {
				if e := mustGet(t, tr, key); string(e.Value) != name {
					t.Errorf("Get %s = %q: keys collide", name, e.Value)
				}
			}

			callerKeys := make([]string, 0, len(keys)+1)
			for _, key := range keys {
				callerKeys = append(callerKeys, key)
			}
			callerKeys = append(callerKeys, "absent key", "a b") // a miss, and a duplicate
			got, err := tr.GetMulti(ctx, callerKeys)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(keys) {
				t.Errorf("GetMulti returned %d entries, want %d", len(got), len(keys))
			}
			for name, key := range keys {
				if e, ok := got[key]; !ok || string(e.Value) != name {
					t.Errorf("GetMulti[%s] = %q, %v", name, e.Value, ok)
				}
			}

			// Every key on the wire was legal to gomemcache, and a
			// legal key travelled unchanged.
			raw := testenv.RawClient(mc.Addr)
			defer raw.Close()
			if _, err := raw.Get(prefix + "a"); err != nil {
				t.Errorf("legal key not stored as prefix+key: %v", err)
			}
			if _, err := raw.Get(prefix + "a b"); !errors.Is(err, memcache.ErrMalformedKey) {
				t.Errorf("raw Get of an illegal key: %v", err)
			}
		})
	}
}

func TestGetMultiEmpty(t *testing.T) {
	t.Parallel()
	tr, _ := newTestTier(t)
	got, err := tr.GetMulti(context.Background(), nil)
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("GetMulti(nil) = %v, %v; want an empty map", got, err)
	}
}

func TestForeignValueIsMiss(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr, mc := newTestTier(t)
	raw := testenv.RawClient(mc.Addr)
	defer raw.Close()

	wireSpace, _ := tr.keys.encode("a b")
	foreign := []*memcache.Item{
		{Key: "plain", Value: []byte("written by another app")},
		{Key: "wrong-flags", Value: tier.EncodeEntry(tier.Entry{Value: []byte("v")}), Flags: 7},
		{Key: "bad-envelope", Value: []byte{9, 9}, Flags: flagsEnvelope},
		// A hashed key whose item holds another key: what a SHA-256
		// collision would look like.
		{Key: wireSpace, Value: newItem("not a b", wireSpace, true, tier.Entry{Value: []byte("v")}, 0).Value, Flags: flagsKeyedEnvelope},
	}
	for _, it := range foreign {
		if err := raw.Set(it); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"plain", "wrong-flags", "bad-envelope", "a b"} {
		if _, err := tr.Get(ctx, key); !errors.Is(err, tier.ErrMiss) {
			t.Errorf("Get(%q) = %v, want ErrMiss", key, err)
		}
	}
	got, err := tr.GetMulti(ctx, []string{"plain", "wrong-flags", "bad-envelope", "a b"})
	if err != nil || len(got) != 0 {
		t.Errorf("GetMulti = %v, %v; want nothing and no error", got, err)
	}
	c := tr.Counters()
	if c["decode_errors"] != 8 || c["misses"] != 8 || c["errors"] != 0 {
		t.Errorf("counters = %v", c)
	}
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const MiB, KiB = 1 << 20, 1 << 10
	tr, _ := newTestTier(t) // memcached's default -I 1m, the Tier's default limit

	// 1 MiB - 1 KiB is stored.
	big := bytes.Repeat([]byte{'x'}, MiB-KiB)
	if err := tr.Set(ctx, "big", tier.Entry{Value: big}); err != nil {
		t.Fatalf("Set of 1 MiB - 1 KiB: %v", err)
	}
	if e := mustGet(t, tr, "big"); !bytes.Equal(e.Value, big) {
		t.Fatal("1 MiB - 1 KiB value came back different")
	}

	// 1 MiB + 1 KiB is never stored, and the older value is gone.
	if err := tr.Set(ctx, "k", tier.Entry{Value: []byte("small")}); err != nil {
		t.Fatal(err)
	}
	huge := tier.Entry{Value: bytes.Repeat([]byte{'y'}, MiB+KiB)}
	if err := tr.Set(ctx, "k", huge); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("Set of 1 MiB + 1 KiB: %v, want ErrTooLarge", err)
	}
	if _, err := tr.Get(ctx, "k"); !errors.Is(err, tier.ErrMiss) {
		t.Fatalf("old value after too-large Set: %v, want ErrMiss", err)
	}
	if err := tr.Add(ctx, "k", huge); !errors.Is(err, tier.ErrTooLarge) {
		t.Fatalf("Add of 1 MiB + 1 KiB: %v, want ErrTooLarge", err)
	}
	if n := tr.Counters()["too_large"]; n != 2 {
		t.Fatalf("too_large = %d, want 2", n)
	}
}

// TestItemOverhead pins itemOverhead to the server: the largest value the
// Tier lets through is stored, and one byte more is what the server itself
// refuses. The server's refusal reads as ErrTooLarge too, and also removes
// the older value.
func TestItemOverhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	mc := testenv.Memcached(t)
	exact, err := New([]string{mc.Addr}, patient()...)
	if err != nil {
		t.Fatal(err)
	}
	defer exact.Close()
	// A Tier that believes the limit is higher sends what the server refuses.
	lax, err := New([]string{mc.Addr}, patient(WithMaxItemSize(2<<20))...)
	if err != nil {
		t.Fatal(err)
	}
	defer lax.Close()

	for _, key := range []string{"k", strings.Repeat("k", 250), "hashed key"} {
		wire, _ := exact.keys.encode(key)
		envelope := DefaultMaxItemSize - itemOverhead - len(wire)
		if key == "hashed key" {
			envelope -= 1 + len(key) // uvarint length and key
		}
		fits := tier.Entry{Value: make([]byte, envelope-tier.EnvelopeOverhead)}
		over := tier.Entry{Value: make([]byte, envelope-tier.EnvelopeOverhead+1)}

		if err := exact.Set(ctx, key, fits); err != nil {
			t.Fatalf("%.20q: largest value the Tier allows: %v", key, err)
		}
		if err := exact.Set(ctx, key, over); !errors.Is(err, tier.ErrTooLarge) {
			t.Fatalf("%.20q: one byte more: %v, want ErrTooLarge before sending", key, err)
		}
		if err := lax.Set(ctx, key, fits); err != nil {
			t.Fatal(err)
		}
		if err := lax.Set(ctx, key, over); !errors.Is(err, tier.ErrTooLarge) {
			t.Fatalf("%.20q: server's answer to one byte more: %v, want ErrTooLarge", key, err)
		}
		if _, err := lax.Get(ctx, key); !errors.Is(err, tier.ErrMiss) {
			t.Fatalf("%.20q: old value after the server refused: %v", key, err)
		}
	}
}

func TestContextAndClose(t *testing.T) {
	t.Parallel()
	tr, _ := newTestTier(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with canceled ctx: %v", err)
	}
	if err := tr.Set(ctx, "k", tier.Entry{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Set with canceled ctx: %v", err)
	}

	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	bg := context.Background()
	checks := map[string]error{
		"Get":    func() error { _, err := tr.Get(bg, "k"); return err }(),
		"Set":    tr.Set(bg, "k", tier.Entry{}),
		"Add":    tr.Add(bg, "k", tier.Entry{}),
		"Delete": tr.Delete(bg, "k"),
		"GetMulti": func() error {
			_, err := tr.GetMulti(bg, []string{"k"})
			return err
		}(),
	}
	for op, err := range checks {
		if !errors.Is(err, tier.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	srv := []string{"127.0.0.1:11211"}
	tests := []struct {
		name    string
		servers []string
		opts    []Option
		want    error // nil: New succeeds
	}{
		{"defaults", srv, nil, nil},
		{"no servers", nil, nil, ErrBadServer},
		{"bad server", []string{"127.0.0.1"}, nil, ErrBadServer},
		{"duplicate address", []string{"127.0.0.1:11211:1", "127.0.0.1:11211:2"}, nil, ErrBadServer},
		{"duplicate name", []string{"127.0.0.1:11211 a", "127.0.0.1:11212 a"}, nil, ErrBadServer},
		{"zero timeout", srv, []Option{WithTimeout(0)}, ErrInvalidOption},
		{"zero server connections", srv, []Option{WithServerConnections(0)}, ErrInvalidOption},
		{"tiny item size", srv, []Option{WithMaxItemSize(100)}, ErrInvalidOption},
		{"prefix with space", srv, []Option{WithKeyPrefix("a b")}, ErrInvalidOption},
		{"prefix too long", srv, []Option{WithKeyPrefix(strings.Repeat("p", maxPrefixLen+1))}, ErrInvalidOption},
		{"longest prefix", srv, []Option{WithKeyPrefix(strings.Repeat("p", maxPrefixLen))}, nil},
		{"unknown hash", srv, []Option{WithHash("sha1")}, ErrInvalidOption},
		{"unknown distribution", srv, []Option{WithDistribution("rendezvous")}, ErrInvalidOption},
		{"ketama", srv, []Option{WithHash("fnv1a_64"), WithDistribution("ketama")}, nil},
		{"hash alone means ketama", srv, []Option{WithHash("crc32a")}, nil},
		{"random", srv, []Option{WithDistribution("random")}, nil},
		{"murmur", srv, []Option{WithHash("murmur"), WithDistribution("modula")}, nil},
		{"libmemcached ketama", srv, []Option{WithDistribution("libmemcached_ketama")}, nil},
		{"hash tag", srv, []Option{WithHashTag("{}")}, nil},
		{"bad hash tag", srv, []Option{WithHashTag("{")}, ErrInvalidOption},
		{"modula alone means fnv1a_64", srv, []Option{WithDistribution("modula")}, nil},
		{"modula crc32a", srv, []Option{WithHash("crc32a"), WithDistribution("modula")}, nil},
		{"nil selector", srv, []Option{WithSelector(nil)}, ErrInvalidOption},
		{"selector and servers", srv, []Option{WithSelector(new(memcache.ServerList))}, ErrInvalidOption},
		{"selector alone", nil, []Option{WithSelector(new(memcache.ServerList))}, nil},
		{"selector and hash", nil, []Option{WithSelector(new(memcache.ServerList)), WithHash("md5")}, ErrInvalidOption},
		{"nil clock", srv, []Option{WithClock(nil)}, ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(tt.servers, tt.opts...)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				tr.Close()
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
}
