package tier

import "sync"

// writeBacks registers the write-backs in progress, per key, so that an
// invalidation can wait for the ones that began before it.
//
// A write-back checks the key's generation before it writes a tier, and
// undoes its writes when the generation moved meanwhile. A write that
// passed its check just before a Delete began can still land after the
// Delete cleared that tier (it was queued behind other requests on a
// connection, or sent on another one), and stays there until the
// write-back's undo. Without a wait, the Delete could return in between
// and a Get that begins after it would read the old value. So an
// invalidation notes the write-backs of its key running when it begins
// and, before it returns, waits for them to end, undo included. Those
// that begin later see the invalidation and write nothing.
//
// The zero value is not usable; use newWriteBacks. It is safe for
// concurrent use.
type writeBacks struct {
	mu   sync.Mutex
	keys map[string]map[*writeBack]struct{}
}

// writeBack is one write-back in progress; done is closed when it ends.
type writeBack struct{ done chan struct{} }

func newWriteBacks() *writeBacks {
	return &writeBacks{keys: make(map[string]map[*writeBack]struct{})}
}

// start registers a write-back of keys. It must come before the
// write-back's first generation check.
func (w *writeBacks) start(keys []string) *writeBack {
	wb := &writeBack{done: make(chan struct{})}
	w.mu.Lock()
	for _, k := range keys {
		set := w.keys[k]
		if set == nil {
			set = make(map[*writeBack]struct{}, 1)
			w.keys[k] = set
		}
		set[wb] = struct{}{}
	}
	w.mu.Unlock()
	return wb
}

// finish ends wb, registered by start for keys.
func (w *writeBacks) finish(wb *writeBack, keys []string) {
	w.mu.Lock()
	for _, k := range keys {
		if set := w.keys[k]; set != nil {
			delete(set, wb)
			if len(set) == 0 {
				delete(w.keys, k)
			}
		}
	}
	w.mu.Unlock()
	close(wb.done)
}

// running returns the write-backs of key in progress now. An invalidation
// calls it after its generation moved.
func (w *writeBacks) running(key string) []*writeBack {
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.keys[key]
	if len(set) == 0 {
		return nil
	}
	out := make([]*writeBack, 0, len(set))
	for wb := range set {
		out = append(out, wb)
	}
	return out
}
