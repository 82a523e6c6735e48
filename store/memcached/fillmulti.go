package memcached

import (
	"context"
	"errors"
	"sync"

	mcwire "github.com/tiercache/tiercache/store/memcached/internal/wire"
	"github.com/tiercache/tiercache/tier"
)

// Bulk fills (tier.MultiFiller).
//
// The fills of a batch of keys loaded together go to each node as one
// pipelined run of conditional writes instead of a round trip per key: on
// the meta protocol, quiet tagged writes closed by mn (see batch.go),
//
//	ms <key> <len> C<token> T<ttl> F<flags> q O<i>\r\n<value>\r\n    (×fills, then)
//	mn\r\n
//
// where only the fills that did not land are answered (EX or NF: the lease
// is gone); on the classic protocol, cas commands, each answered. Runs are
// cut into requests of at most fillBatch writes, pipelined on the node's
// connections.

// fillBatch is how many fills one request carries at most.
const fillBatch = 256

var _ tier.MultiFiller = (*Tier)(nil)

// pendingFill is a fill ready to send.
type pendingFill struct {
	i     int // its index in the caller's fills
	token uint64
	it    *mcwire.Item
}

// FillMulti implements tier.MultiFiller: each fill is what Fill would do,
// the fills of a node pipelined together. It returns one error per fill,
// in order: nil where it landed, one wrapping tier.ErrLeaseLost where the
// lease was no longer the key's, ErrUnavailable where the node could not
// be reached or failed.
func (t *Tier) FillMulti(ctx context.Context, fills []tier.LeaseFill) []error {
	errs := make([]error, len(fills))
	if err := t.ready(ctx, "fill multi"); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	snap := t.members.current.Load()
	var (
		order  []*node
		byNode = make(map[*node][]pendingFill)
	)
	for i, f := range fills {
		wire, hashed := t.encodeKey(f.Key)
		r, err := snap.route(wire)
		if err != nil {
			errs[i] = t.unroutable("fill multi", err)
			continue
		}
		it := t.fillItem(f.Key, wire, hashed, r, f.Write)
		if it == nil {
			errs[i] = t.Release(ctx, f.Key, f.Lease) // nothing worth storing
			continue
		}
		n := r.owner
		t.learnItemLimit(n)
		if err := t.checkSize("fill", n, it); err != nil {
			errs[i] = errors.Join(err, t.Release(ctx, f.Key, f.Lease))
			continue
		}
		if _, ok := byNode[n]; !ok {
			order = append(order, n)
		}
		byNode[n] = append(byNode[n], pendingFill{i: i, token: f.Lease.Token, it: it})
	}
	var wg sync.WaitGroup
	for _, n := range order {
		wg.Go(func() { t.fillOn(ctx, n, byNode[n], errs) })
	}
	wg.Wait()
	return errs
}

// fillOn sends the fills of node n, and puts their outcomes in errs.
func (t *Tier) fillOn(ctx context.Context, n *node, fills []pendingFill, errs []error) {
	failAll := func(err error) {
		for _, f := range fills {
			errs[f.i] = err
		}
	}
	if !n.isUp() {
		failAll(t.skip(n))
		return
	}
	p, err := t.leaseProtocol(n)
	if err != nil {
		failAll(err)
		return
	}
	replies := make([]mcwire.Reply, len(fills)) // Code "" for a quiet success
	reqs := make([]*mcwire.Request, (len(fills)+fillBatch-1)/fillBatch)
	for k := range reqs {
		piece := fills[k*fillBatch : min((k+1)*fillBatch, len(fills))]
		reps := replies[k*fillBatch : k*fillBatch+len(piece)]
		var buf []byte
		for j, f := range piece {
			buf = appendCASWrite(buf, p, f.it, f.token, j)
		}
		req := &mcwire.Request{}
		if p == protoClassic {
			req.Read = func(r *mcwire.Reader) error {
				for j := range reps {
					rep, err := readStoreReply(r)
					if err != nil {
						return err
					}
					if meta, ok := classicToMeta[rep.Code]; ok {
						rep.Code = meta
					}
					reps[j] = rep
				}
				return nil
			}
		} else {
			buf = append(buf, "mn\r\n"...)
			req.Read = func(r *mcwire.Reader) error {
				clear(reps) // a request sent again reads its replies again
				_, err := readQuietBatch(r, len(reps), func(j int, rep mcwire.Reply) { reps[j] = rep })
				return err
			}
		}
		req.Buf = buf
		reqs[k] = req
	}
	// The replies of a request that failed are not read: its Read may
	// still be running (the caller gave up), and which of its fills landed
	// is not known. They are reported failed; a fill that landed all the
	// same is a value in memcached, under its lease's rules.
	ok, err := t.pipeline(ctx, "fill multi", n, reqs, false)
	for j, f := range fills {
		switch {
		case !ok[j/fillBatch]:
			errs[f.i] = err
		case replies[j].Code == "":
			t.lease.fills.Add(1)
		default:
			errs[f.i] = t.filled(n, f.it, replies[j])
		}
	}
}
