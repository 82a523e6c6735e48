package bench

import (
	"math"
	"time"
)

// The zipf scenario's worker processes send their latencies to the parent
// as histograms: a slice of every Get would be megabytes per phase, and
// the percentiles of several processes can only be merged from counts.

// bucketsPerDecade sets the histogram's resolution: a bucket's upper edge
// is 10^(1/40), about 6%, above its lower edge.
const bucketsPerDecade = 40

// histogramBuckets covers 1µs to 100s; the last bucket is open-ended.
const histogramBuckets = bucketsPerDecade*8 + 1

// histogram counts latencies in logarithmic buckets. The zero value is
// empty and ready to use; it is not safe for concurrent use.
type histogram struct {
	Counts []int64 `json:"counts"`
}

func bucketOf(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return min(int(math.Ceil(bucketsPerDecade*math.Log10(us))), histogramBuckets-1)
}

// upperEdge is the longest latency bucket i holds.
func upperEdge(i int) time.Duration {
	return time.Duration(math.Pow(10, float64(i)/bucketsPerDecade) * float64(time.Microsecond))
}

func (h *histogram) record(d time.Duration) {
	if h.Counts == nil {
		h.Counts = make([]int64, histogramBuckets)
	}
	h.Counts[bucketOf(d)]++
}

// add merges o into h.
func (h *histogram) add(o histogram) {
	if len(o.Counts) == 0 {
		return
	}
	if h.Counts == nil {
		h.Counts = make([]int64, histogramBuckets)
	}
	for i, n := range o.Counts[:min(len(o.Counts), histogramBuckets)] {
		h.Counts[i] += n
	}
}

func (h *histogram) total() int64 {
	var n int64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// quantile returns the upper edge of the bucket holding quantile q, so a
// figure is at most one bucket (6%) above the latency it stands for; 0
// when h is empty.
func (h *histogram) quantile(q float64) time.Duration {
	total := h.total()
	if total == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(total))), 1)
	var seen int64
	for i, n := range h.Counts {
		if seen += n; seen >= rank {
			return upperEdge(i)
		}
	}
	return upperEdge(histogramBuckets - 1)
}
