// Package tiertest helps test code built on package tier: Tier is an
// in-memory tier, LeaseTier an in-memory top tier with leases, and Run a
// conformance suite every tier implementation runs against itself.
//
// # Basics
//
// A chain for a unit test or an example, with no server:
//
//	top, disk := tiertest.New("top"), tiertest.New("disk")
//	cache, err := tier.New(src, tier.WithTier(top, time.Minute), tier.WithTier(disk, time.Hour))
//
// Tier counts the calls it receives (Calls) and can be made to fail
// (Fail), for tests of what the chain does when a tier breaks.
//
// A store checks that it keeps the contract of tier.Tier and of the
// optional interfaces it has:
//
//	func TestConformance(t *testing.T) {
//		tiertest.Run(t, func(t *testing.T) tier.Tier { return openStore(t) })
//	}
//
// # Caveats
//
// Tier and LeaseTier keep what they are given in a map, forever: they are
// for tests, not a cache. Tests inside package tier cannot import this
// package (it imports tier), so they keep fakes of their own.
package tiertest
