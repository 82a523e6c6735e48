package serve

import (
	"hash/maphash"
	"sync"
)

// keyLocks makes the commands that read a key and then write it atomic
// against every other write of that key through this server: a fixed set
// of mutexes, one chosen by the key's hash. Two keys may share a mutex,
// which costs a little waiting and never correctness.
type keyLocks struct {
	seed  maphash.Seed
	once  sync.Once
	locks [1024]sync.Mutex
}

// lock locks key's mutex and returns its unlock.
func (l *keyLocks) lock(key string) func() {
	l.once.Do(func() { l.seed = maphash.MakeSeed() })
	m := &l.locks[maphash.String(l.seed, key)%uint64(len(l.locks))]
	m.Lock()
	return m.Unlock
}
