package tier

import (
	"reflect"
	"sync/atomic"
	"testing"
)

// TestCounterTablesCoverEveryField checks that each int64 field of Stats
// and each live counter has exactly one row in the tables, so that a
// counter added without its row fails here rather than reading 0 in
// Stats, Sub and the metrics.
func TestCounterTablesCoverEveryField(t *testing.T) {
	t.Parallel()
	check := func(name string, fields []uintptr, rows []uintptr) {
		t.Helper()
		seen := map[uintptr]int{}
		for _, r := range rows {
			seen[r]++
		}
		for _, f := range fields {
			if seen[f] != 1 {
				t.Errorf("%s: a field at offset %d has %d rows, want 1", name, f, seen[f])
			}
		}
		if len(rows) != len(fields) {
			t.Errorf("%s: %d rows for %d fields", name, len(rows), len(fields))
		}
	}

	var s Stats
	c := &Cache{fills: &filler{}}
	var statRows, liveRows, fillRows []uintptr
	for _, d := range chainCounters {
		statRows = append(statRows, offset(&s, d.stat(&s)))
		switch p := d.live(c); {
		case within(c.fills, p):
			fillRows = append(fillRows, offset(c.fills, p))
		default:
			liveRows = append(liveRows, offset(&c.ctr, p))
		}
	}
	// Levels, not counters: Fills.Pending and the counter behind
	// Warmup.Running.
	check("Stats", deleteOffset(int64Fields(&s, reflect.ValueOf(&s).Elem()), offset(&s, &s.Fills.Pending)), statRows)
	check("counters", deleteOffset(atomicFields(&c.ctr), offset(&c.ctr, &c.ctr.warmRunning)), liveRows)
	check("filler", deleteOffset(atomicFields(c.fills), offset(c.fills, &c.fills.pending)), fillRows)

	var ts TierStats
	var tc tierCounters
	statRows, liveRows = nil, nil
	for _, d := range tierCounterDefs {
		statRows = append(statRows, offset(&ts, d.stat(&ts)))
		liveRows = append(liveRows, offset(&tc, d.live(&tc)))
	}
	check("TierStats", int64Fields(&ts, reflect.ValueOf(&ts).Elem()), statRows)
	check("tierCounters", atomicFields(&tc), liveRows)
}

// within reports whether field lies inside *base.
func within[T any](base *T, field *atomic.Int64) bool {
	o := reflect.ValueOf(field).Pointer() - reflect.ValueOf(base).Pointer()
	return reflect.ValueOf(field).Pointer() >= reflect.ValueOf(base).Pointer() && o < reflect.TypeFor[T]().Size()
}

func offset[T, F any](base *T, field *F) uintptr {
	return reflect.ValueOf(field).Pointer() - reflect.ValueOf(base).Pointer()
}

// int64Fields returns the offsets from base of the int64 fields of v,
// nested structs included.
func int64Fields[T any](base *T, v reflect.Value) []uintptr {
	var out []uintptr
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int64:
			if f.Type() == reflect.TypeFor[int64]() {
				out = append(out, f.Addr().Pointer()-reflect.ValueOf(base).Pointer())
			}
		case reflect.Struct:
			if f.Type() != reflect.TypeFor[WarmupProgress]() {
				out = append(out, int64Fields(base, f)...)
			}
		}
	}
	return out
}

func atomicFields[T any](base *T) []uintptr {
	var out []uintptr
	v := reflect.ValueOf(base).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Type() == reflect.TypeFor[atomic.Int64]() {
			out = append(out, f.Addr().Pointer()-reflect.ValueOf(base).Pointer())
		}
	}
	return out
}

func deleteOffset(offsets []uintptr, off uintptr) []uintptr {
	out := offsets[:0]
	for _, o := range offsets {
		if o != off {
			out = append(out, o)
		}
	}
	return out
}

// TestSubAndList checks that Sub subtracts every counter and List reports
// it under its name.
func TestSubAndList(t *testing.T) {
	t.Parallel()
	var a, b Stats
	for i, d := range chainCounters {
		*d.stat(&a) = int64(10 * (i + 1))
		*d.stat(&b) = int64(i + 1)
	}
	a.Tiers = []TierStats{{Name: "top", Hits: 5, Misses: 4, Errors: 3, Backfills: 2}}
	b.Tiers = []TierStats{{Name: "top", Hits: 1, Misses: 1, Errors: 1, Backfills: 1}}
	d := a.Sub(b)
	for i, c := range d.List() {
		if want := int64(9 * (i + 1)); c.Value != want {
			t.Errorf("%s_%s = %d after Sub, want %d", c.Group, c.Name, c.Value, want)
		}
	}
	if got := d.Tiers[0]; got.Hits != 4 || got.Misses != 3 || got.Errors != 2 || got.Backfills != 1 {
		t.Errorf("tier after Sub = %+v", got)
	}
	names := map[string]bool{}
	for _, c := range a.List() {
		if names[c.Group+"_"+c.Name] || c.Help == "" {
			t.Errorf("counter %s_%s repeated or without help", c.Group, c.Name)
		}
		names[c.Group+"_"+c.Name] = true
	}
	if l := a.Tiers[0].List(); len(l) != 4 || l[0].Name != "hits" || l[0].Value != 5 {
		t.Errorf("TierStats.List = %+v", l)
	}
}
