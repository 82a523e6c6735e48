package tiercache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tiercache/tiercache/config"
	"github.com/tiercache/tiercache/serve"
	"github.com/tiercache/tiercache/store/memcached"
)

// Served is a chain behind a memcached-protocol server, as tiercache serve
// runs it: keys "<route><separator>..." are read through the chain, every
// other key is plain cache in the same memcached pool. Close it when done.
type Served struct {
	// Chain is the read-through chain of the route. Its memcached keys
	// carry the route's prefix ("article:42"), so that they never meet
	// the plain keys of the same pool.
	Chain *Chain
	// Plain is the memcached pool of the plain keys: the file's servers
	// and placement, with connections of its own.
	Plain  *memcached.Tier
	Server *serve.Server
	// ShutdownTimeout is the file's serve.shutdown_timeout.
	ShutdownTimeout time.Duration

	listen string
}

// BuildServed builds the chain f describes and the server of its serve
// section in front of it. The file needs a memcached section (the plain
// keys live there) and serve.route.
func BuildServed(f *config.File, opts ...Option) (*Served, error) {
	sc := f.Serve
	switch {
	case sc.Route == "":
		return nil, f.Errorf([]string{"serve", "route"}, "serve: route is required: the prefix of the keys read through the source, for example article")
	case f.Memcached == nil:
		return nil, f.Errorf([]string{"memcached"}, "serve: a memcached section is required: plain keys are stored there")
	}
	sep := sc.Separator
	if sep == "" {
		sep = config.DefaultServeSeparator
	}
	routePrefix := f.Memcached.KeyPrefix + sc.Route + sep
	chain, err := Build(f, append(opts, WithMemcachedOptions(memcached.WithKeyPrefix(routePrefix)))...)
	if err != nil {
		return nil, err
	}
	s := &Served{Chain: chain, listen: sc.Listen, ShutdownTimeout: sc.ShutdownTimeout.D()}
	if s.listen == "" {
		s.listen = config.DefaultServeListen
	}
	if s.ShutdownTimeout <= 0 {
		s.ShutdownTimeout = config.DefaultShutdownTimeout
	}
	if err := s.build(f, sep); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Served) build(f *config.File, sep string) error {
	// The plain pool needs no restart detection: nothing warms plain keys
	// back up, so nobody would read its reports.
	plainFile := *f
	mc := *f.Memcached
	mc.RestartDetection = 0
	plainFile.Memcached = &mc
	plain, err := buildMemcached(&plainFile, nil)
	if err != nil {
		return err
	}
	s.Plain = plain
	plainBackend, err := serve.NewPlain(plain)
	if err != nil {
		return err
	}
	var rtOpts []serve.ReadThroughOption
	if f.Serve.OnSourceError == "error" {
		rtOpts = append(rtOpts, serve.WithSourceErrorReplies())
	}
	route, err := serve.NewReadThrough(s.Chain.Cache, rtOpts...)
	if err != nil {
		return err
	}
	router, err := serve.NewRouter(plainBackend, serve.WithSeparator(sep), serve.WithRoute(f.Serve.Route, route))
	if err != nil {
		return f.Wrap([]string{"serve"}, err)
	}
	sc := f.Serve
	opts := []serve.Option{serve.WithLogger(s.Chain.Logger), serve.WithStats(s.poolCounters)}
	if sc.MaxConnections > 0 {
		opts = append(opts, serve.WithMaxConns(sc.MaxConnections))
	}
	if sc.MaxLine > 0 {
		opts = append(opts, serve.WithMaxLine(int(sc.MaxLine)))
	}
	if sc.MaxValue > 0 {
		opts = append(opts, serve.WithMaxValue(int(sc.MaxValue)))
	}
	if sc.IdleTimeout > 0 {
		opts = append(opts, serve.WithIdleTimeout(sc.IdleTimeout.D()))
	}
	if f.Has("serve", "request_timeout") {
		opts = append(opts, serve.WithRequestTimeout(sc.RequestTimeout.D()))
	}
	srv, err := serve.New(router, opts...)
	if err != nil {
		return f.Wrap([]string{"serve"}, err)
	}
	s.Server = srv
	if err := s.Chain.Registry.Register(newServeCollector(srv)); err != nil {
		return fmt.Errorf("tiercache: serve metrics: %w", err)
	}
	return nil
}

// poolCounters are the memcached pools' own counters for the stats
// command: the route's pool and the plain one.
func (s *Served) poolCounters() map[string]int64 {
	m := map[string]int64{}
	if s.Chain.Memcached != nil {
		for k, v := range s.Chain.Memcached.Counters() {
			m["pool:route:"+k] = v
		}
	}
	for k, v := range s.Plain.Counters() {
		m["pool:plain:"+k] = v
	}
	return m
}

// Listen opens the file's serve.listen address.
func (s *Served) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.listen)
	if err != nil {
		return nil, fmt.Errorf("tiercache: serve: %w", err)
	}
	return ln, nil
}

// Run serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, lets connections finish the commands they sent (for up to
// ShutdownTimeout), and returns. Close the Served afterwards to flush and
// close the chain.
func (s *Served) Run(ctx context.Context, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- s.Server.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	err := s.Server.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, serve.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Close closes the server's connections (after Run, there are none left),
// then the chain (flushing the durable tier's queue) and the plain pool.
func (s *Served) Close() error {
	var errs []error
	if s.Server != nil {
		errs = append(errs, s.Server.Close())
	}
	errs = append(errs, s.Chain.Close())
	if s.Plain != nil {
		errs = append(errs, s.Plain.Close())
	}
	return errors.Join(errs...)
}
