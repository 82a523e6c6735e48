package tier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Codec turns values of T into bytes and back.
type Codec[T any] interface {
	Marshal(v T) ([]byte, error)
	Unmarshal(b []byte) (T, error)
}

// JSON is a Codec that uses encoding/json.
type JSON[T any] struct{}

// Marshal encodes v as JSON.
func (JSON[T]) Marshal(v T) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes JSON into a T.
func (JSON[T]) Unmarshal(b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// Typed is a Cache that hands out values of T instead of bytes, through a
// codec. The loader and the tiers still see bytes: the source must return
// what the codec can decode. It is safe for concurrent use.
type Typed[T any] struct {
	cache *Cache
	codec Codec[T]
}

// NewTyped wraps c. A nil codec means JSON.
func NewTyped[T any](c *Cache, codec Codec[T]) *Typed[T] {
	if codec == nil {
		codec = JSON[T]{}
	}
	return &Typed[T]{cache: c, codec: codec}
}

// Cache returns the underlying byte cache.
func (t *Typed[T]) Cache() *Cache { return t.cache }

// Get is Cache.Get, decoded.
func (t *Typed[T]) Get(ctx context.Context, key string) (T, error) {
	var zero T
	b, err := t.cache.Get(ctx, key)
	if err != nil {
		return zero, err
	}
	v, err := t.codec.Unmarshal(b)
	if err != nil {
		return zero, fmt.Errorf("tier: decode %q: %w", key, err)
	}
	return v, nil
}

// GetMulti is Cache.GetMulti, decoded. A value that does not decode is left
// out of the map and reported in the error.
func (t *Typed[T]) GetMulti(ctx context.Context, keys []string) (map[string]T, error) {
	raw, err := t.cache.GetMulti(ctx, keys)
	out := make(map[string]T, len(raw))
	errs := []error{err}
	for k, b := range raw {
		v, derr := t.codec.Unmarshal(b)
		if derr != nil {
			errs = append(errs, fmt.Errorf("tier: decode %q: %w", k, derr))
			continue
		}
		out[k] = v
	}
	return out, errors.Join(errs...)
}

// Set is Cache.Set, encoded.
func (t *Typed[T]) Set(ctx context.Context, key string, v T) error {
	b, err := t.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("tier: encode %q: %w", key, err)
	}
	return t.cache.Set(ctx, key, b)
}

// Delete is Cache.Delete.
func (t *Typed[T]) Delete(ctx context.Context, key string) error {
	return t.cache.Delete(ctx, key)
}
