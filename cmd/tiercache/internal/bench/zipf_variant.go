package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/tier"
)

// The zipf scenario compares variants of the file's chain, each built from
// the loaded configuration changed in memory: the file itself is never
// rewritten, and every process derives the same variants from it.
//
//	configured          the file as it is
//	off                 no leases, no early refresh, no stale-while-revalidate,
//	                    no memory tier
//	leases+early+swr    exactly the features named (any of leases, early,
//	+memory             swr and memory, joined by +), with the file's
//	                    settings for them, or defaults where the file has
//	                    none

// Defaults for a feature a variant turns on that the file leaves off.
const (
	variantBeta  = 1.0
	variantGrace = time.Second
)

// variantFeatures are the words a variant may combine.
var variantFeatures = []string{"leases", "early", "swr", "memory"}

// parseVariants checks a --variants list.
func parseVariants(list string) ([]string, error) {
	var names []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if err := checkVariant(name); err != nil {
			return nil, err
		}
		if slices.Contains(names, name) {
			return nil, fmt.Errorf("variant %q listed twice", name)
		}
		names = append(names, name)
	}
	if len(names) < 2 || len(names) > 4 {
		return nil, fmt.Errorf("--variants %q: want 2 to 4 variants, the first compared with each of the others", list)
	}
	return names, nil
}

func checkVariant(name string) error {
	if name == "configured" || name == "off" {
		return nil
	}
	words := strings.Split(name, "+")
	for i, w := range words {
		if !slices.Contains(variantFeatures, w) || slices.Contains(words[:i], w) {
			return fmt.Errorf("unknown variant %q: want configured, off, or features joined by + (%s)",
				name, strings.Join(variantFeatures, ", "))
		}
	}
	if slices.Contains(words, "swr") && !slices.Contains(words, "leases") {
		return fmt.Errorf("variant %q: swr needs leases (memcached keeps expired values only when written through leases)", name)
	}
	return nil
}

// variantConfig returns a copy of f set up as variant name, the index-th of
// the run: every tier's TTL is ttl, so that keys keep expiring, and the
// memcached keys get a prefix of the variant's own, so that no variant
// reads what another wrote, and none touches the application's keys.
func variantConfig(f *config.File, name string, index int, ttl time.Duration) *config.File {
	vf := *f
	mc := *f.Memcached
	mc.TTL = config.Duration(ttl)
	mc.KeyPrefix = fmt.Sprintf("%sbench:zipf:%d:", f.Memcached.KeyPrefix, index)
	vf.Memcached = &mc
	if f.Durable != nil {
		d := *f.Durable
		d.TTL = config.Duration(ttl)
		vf.Durable = &d
	}
	switch name {
	case "configured":
	case "off":
		vf.Leases.Enabled, vf.EarlyRefresh, vf.StaleWhileRevalidate, vf.Memory = false, 0, 0, nil
	default:
		words := strings.Split(name, "+")
		switch {
		case !slices.Contains(words, "memory"):
			vf.Memory = nil
		case vf.Memory == nil:
			vf.Memory = &config.Memory{TTL: config.Duration(config.DefaultMemoryTTL), MaxBytes: config.DefaultMemoryMaxBytes}
		}
		vf.Leases.Enabled = slices.Contains(words, "leases")
		switch {
		case !slices.Contains(words, "early"):
			vf.EarlyRefresh = 0
		case vf.EarlyRefresh == 0:
			vf.EarlyRefresh = variantBeta
		}
		switch {
		case !slices.Contains(words, "swr"):
			vf.StaleWhileRevalidate = 0
		case vf.StaleWhileRevalidate == 0:
			vf.StaleWhileRevalidate = config.Duration(variantGrace)
		}
	}
	return &vf
}

// describeVariant says what a variant's chain does about expiry.
func describeVariant(vf *config.File) string {
	var parts []string
	if l := vf.Leases; l.Enabled {
		ttl, wait := l.TTL.D(), l.Wait.D()
		if ttl <= 0 {
			ttl = tier.DefaultLeaseTTL
		}
		if wait <= 0 {
			wait = tier.DefaultLeaseWait
		}
		parts = append(parts, fmt.Sprintf("leases (ttl %v, wait %v)", ttl, wait))
	} else {
		parts = append(parts, "no leases")
	}
	if vf.EarlyRefresh > 0 {
		parts = append(parts, fmt.Sprintf("early refresh β %g", vf.EarlyRefresh))
	} else {
		parts = append(parts, "no early refresh")
	}
	if g := vf.StaleWhileRevalidate.D(); g > 0 {
		parts = append(parts, fmt.Sprintf("stale-while-revalidate %v", g))
	} else {
		parts = append(parts, "no stale-while-revalidate")
	}
	if m := vf.Memory; m != nil {
		parts = append(parts, fmt.Sprintf("memory tier (ttl %v)", m.TTL.D()))
	}
	if vf.TTLJitter > 0 {
		parts = append(parts, fmt.Sprintf("TTL jitter ±%g%%", 100*vf.TTLJitter))
	}
	return strings.Join(parts, ", ")
}
