package sqlload

import "sync/atomic"

// Stats are counters of a Loader since New.
type Stats struct {
	Loads      int64 // Load calls with at least one key
	Statements int64 // SQL statements sent
	Keys       int64 // distinct keys asked for
	Rows       int64 // rows returned for a key asked for
	// Ignored counts rows that were not used: a NULL key, a key that is
	// not byte for byte one asked for, or a second row for the same key.
	Ignored int64
	Errors  int64 // Load calls that failed
	// Kills are statements stopped at the server (KILL QUERY) because
	// their context ended while they ran; KillErrors, kills that failed.
	Kills, KillErrors int64
}

// Sub returns s minus old, the counts of the interval between two Stats.
func (s Stats) Sub(old Stats) Stats {
	return Stats{
		Loads:      s.Loads - old.Loads,
		Statements: s.Statements - old.Statements,
		Keys:       s.Keys - old.Keys,
		Rows:       s.Rows - old.Rows,
		Ignored:    s.Ignored - old.Ignored,
		Errors:     s.Errors - old.Errors,
		Kills:      s.Kills - old.Kills,
		KillErrors: s.KillErrors - old.KillErrors,
	}
}

type counters struct {
	loads, statements, keys, rows, ignored, errors atomic.Int64
	kills, killErrors                              atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Loads:      c.loads.Load(),
		Statements: c.statements.Load(),
		Keys:       c.keys.Load(),
		Rows:       c.rows.Load(),
		Ignored:    c.ignored.Load(),
		Errors:     c.errors.Load(),
		Kills:      c.kills.Load(),
		KillErrors: c.killErrors.Load(),
	}
}
