package serve_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/tiercache/tiercache/serve"
)

// mapBackend is the smallest Backend: a map. tiercache serve puts
// memcached behind plain keys and a read-through chain behind a route.
type mapBackend struct {
	mu  sync.Mutex
	m   map[string]serve.Item
	cas uint64
}

func (b *mapBackend) Get(_ context.Context, keys []string) (map[string]serve.Item, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]serve.Item{}
	for _, k := range keys {
		if it, ok := b.m[k]; ok {
			out[k] = it
		}
	}
	return out, nil
}

func (b *mapBackend) Set(_ context.Context, key string, it serve.Item) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cas++
	it.CAS = b.cas
	b.m[key] = it
	return it.CAS, nil
}

func (b *mapBackend) Delete(_ context.Context, key string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.m[key]
	delete(b.m, key)
	return ok, nil
}

func Example() {
	articles := &mapBackend{m: map[string]serve.Item{"42": {Value: []byte("the answer"), CAS: 1}}}
	plain := &mapBackend{m: map[string]serve.Item{}}
	router, err := serve.NewRouter(plain, serve.WithRoute("article", articles))
	if err != nil {
		panic(err)
	}
	srv, err := serve.New(router)
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	fmt.Fprint(nc, "set session:7 3 0 2\r\nhi\r\nget article:42 session:7\r\nquit\r\n")
	r := bufio.NewScanner(nc)
	for r.Scan() {
		fmt.Println(strings.TrimSpace(r.Text()))
	}
	// Output:
	// STORED
	// VALUE article:42 0 10
	// the answer
	// VALUE session:7 3 2
	// hi
	// END
}
