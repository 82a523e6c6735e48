package serve

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultSeparator ends a route's name at the start of a key: "article:42".
const DefaultSeparator = ":"

// Router picks the Backend of a key. A key that begins with a route's name
// and the separator belongs to that route, which sees the key without the
// prefix; every other key is the plain cache's, as the client wrote it.
// A Router is immutable once built and safe for concurrent use.
type Router struct {
	plain     Backend
	routes    map[string]Backend
	names     []string // sorted, for stats
	separator string
}

// RouterOption configures a Router.
type RouterOption func(*Router) error

// WithRoute sends the keys "name<separator>..." to b.
func WithRoute(name string, b Backend) RouterOption {
	return func(r *Router) error {
		switch {
		case name == "" || strings.ContainsAny(name, " \t\r\n"):
			return fmt.Errorf("%w: route name %q", ErrInvalidOption, name)
		case b == nil:
			return fmt.Errorf("%w: route %q has no backend", ErrInvalidOption, name)
		case r.routes[name] != nil:
			return fmt.Errorf("%w: route %q given twice", ErrInvalidOption, name)
		}
		r.routes[name] = b
		r.names = append(r.names, name)
		return nil
	}
}

// WithSeparator sets what ends a route's name in a key (default ":").
func WithSeparator(sep string) RouterOption {
	return func(r *Router) error {
		if sep == "" || strings.ContainsAny(sep, " \t\r\n") {
			return fmt.Errorf("%w: separator %q", ErrInvalidOption, sep)
		}
		r.separator = sep
		return nil
	}
}

// NewRouter returns a Router whose unrouted keys go to plain.
func NewRouter(plain Backend, opts ...RouterOption) (*Router, error) {
	if plain == nil {
		return nil, fmt.Errorf("%w: nil plain backend", ErrInvalidOption)
	}
	r := &Router{plain: plain, routes: map[string]Backend{}, separator: DefaultSeparator}
	for _, opt := range opts {
		if err := opt(r); err != nil {
			return nil, err
		}
	}
	for _, name := range r.names {
		if strings.Contains(name, r.separator) {
			return nil, fmt.Errorf("%w: route name %q contains the separator %q", ErrInvalidOption, name, r.separator)
		}
	}
	slices.Sort(r.names)
	return r, nil
}

// routeOf returns the route of key ("" for the plain cache), its Backend
// and the key that Backend knows it by. A key whose prefix names a route
// but has nothing after the separator is plain.
func (r *Router) routeOf(key string) (name string, b Backend, backendKey string) {
	if len(r.routes) > 0 {
		if i := strings.Index(key, r.separator); i > 0 {
			rest := key[i+len(r.separator):]
			if b := r.routes[key[:i]]; b != nil && rest != "" {
				return key[:i], b, rest
			}
		}
	}
	return "", r.plain, key
}

// backends returns every route's Backend by name, the plain cache's
// under "plain".
func (r *Router) backends() ([]string, []Backend) {
	names := append([]string{"plain"}, r.names...)
	bs := []Backend{r.plain}
	for _, n := range r.names {
		bs = append(bs, r.routes[n])
	}
	return names, bs
}
