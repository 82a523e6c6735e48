package tier

import "context"

// LeaseFill is one fill through a lease, for MultiFiller.
type LeaseFill struct {
	Key   string
	Lease Lease
	Write LeaseWrite
}

// MultiFiller is a Leaser that can fill many keys at once, pipelined per
// server, instead of one round trip per key. FillMulti returns one error
// per fill, in the order of fills: nil where the fill landed, an error
// wrapping ErrLeaseLost where the lease was no longer current, any other
// error where the write failed.
type MultiFiller interface {
	FillMulti(ctx context.Context, fills []LeaseFill) []error
}
