package loadgen

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The nodes' GET /metrics (Prometheus text format, on their admin listener) is
// scraped just before and just after the measured phase; the difference says
// where the time of that phase went: every parley_* histogram's count and
// quantiles, every parley_* counter's increase. A node that does not answer is a
// warning in the result, never a failed run.

// metricsPrefix is the families looked at.
const metricsPrefix = "parley_"

// NodeMetrics is what the nodes' /metrics said about the measured phase,
// summed over the nodes.
type NodeMetrics struct {
	URLs       []string         `json:"urls"`
	Histograms []HistogramDelta `json:"histograms"`
	Counters   []CounterDelta   `json:"counters"`
	Warnings   []string         `json:"warnings,omitempty"`
}

// HistogramDelta is one histogram series over the measured phase: the values
// observed in it, their sum, and quantiles interpolated within buckets as
// Prometheus's histogram_quantile does (in the family's unit; NaN-free: 0 when
// nothing was observed).
type HistogramDelta struct {
	Family string            `json:"family"`
	Labels map[string]string `json:"labels,omitempty"`
	Count  uint64            `json:"count"`
	Sum    float64           `json:"sum"`
	P50    float64           `json:"p50"`
	P99    float64           `json:"p99"`
}

// CounterDelta is one counter series' increase over the measured phase.
type CounterDelta struct {
	Family string            `json:"family"`
	Labels map[string]string `json:"labels,omitempty"`
	Delta  float64           `json:"delta"`
}

// scrape is one node's families at one moment.
type scrape map[string]*dto.MetricFamily

// metricsScraper takes the scrapes of a run.
type metricsScraper struct {
	urls          []string
	token         string
	client        *http.Client
	before, after []scrape // by URL; nil where the scrape failed
	warnings      []string
}

func newMetricsScraper(urls []string, token string) *metricsScraper {
	return &metricsScraper{urls: urls, token: token, client: &http.Client{Timeout: 5 * time.Second}}
}

// take scrapes every URL; a failure is kept as a warning.
func (m *metricsScraper) take(ctx context.Context, when string) []scrape {
	out := make([]scrape, len(m.urls))
	for i, u := range m.urls {
		s, err := m.get(ctx, u)
		if err != nil {
			m.warnings = append(m.warnings, fmt.Sprintf("%s %s: %v", u, when, err))
			continue
		}
		out[i] = s
	}
	return out
}

func (m *metricsScraper) get(ctx context.Context, url string) (scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if m.token != "" {
		req.Header.Set("Authorization", "Bearer "+m.token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET answered %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	return fams, nil
}

// start and end take the scrapes around the measured phase.
func (m *metricsScraper) start(ctx context.Context) {
	if len(m.urls) > 0 {
		m.before = m.take(ctx, "before the measured phase")
	}
}

func (m *metricsScraper) end(ctx context.Context) {
	if len(m.urls) > 0 {
		m.after = m.take(ctx, "after the measured phase")
	}
}

// result computes the deltas over the nodes that answered both times.
func (m *metricsScraper) result() *NodeMetrics {
	if len(m.urls) == 0 {
		return nil
	}
	res := &NodeMetrics{URLs: m.urls, Histograms: []HistogramDelta{}, Counters: []CounterDelta{}}
	hists, counters := map[string]*histAcc{}, map[string]*CounterDelta{}
	for i := range m.urls {
		if i >= len(m.before) || i >= len(m.after) || m.before[i] == nil || m.after[i] == nil {
			continue
		}
		m.addNode(m.urls[i], m.before[i], m.after[i], hists, counters)
	}
	for _, h := range hists {
		res.Histograms = append(res.Histograms, h.delta())
	}
	for _, c := range counters {
		res.Counters = append(res.Counters, *c)
	}
	sort.Slice(res.Histograms, func(i, j int) bool {
		return seriesLess(res.Histograms[i].Family, res.Histograms[i].Labels, res.Histograms[j].Family, res.Histograms[j].Labels)
	})
	sort.Slice(res.Counters, func(i, j int) bool {
		return seriesLess(res.Counters[i].Family, res.Counters[i].Labels, res.Counters[j].Family, res.Counters[j].Labels)
	})
	res.Warnings = m.warnings
	return res
}

// addNode adds one node's differences to the sums by series.
func (m *metricsScraper) addNode(url string, before, after scrape, hists map[string]*histAcc, counters map[string]*CounterDelta) {
	for name, fam := range after {
		if !strings.HasPrefix(name, metricsPrefix) {
			continue
		}
		prev := seriesOf(before[name])
		for _, mt := range fam.GetMetric() {
			labels := labelMap(mt)
			key := name + "{" + labelString(labels) + "}"
			old := prev[labelString(labels)]
			switch fam.GetType() {
			case dto.MetricType_HISTOGRAM:
				acc := hists[key]
				if acc == nil {
					acc = &histAcc{family: name, labels: labels}
					hists[key] = acc
				}
				if w := acc.add(mt.GetHistogram(), old.GetHistogram()); w != "" {
					m.warnings = append(m.warnings, fmt.Sprintf("%s: %s: %s", url, key, w))
				}
			case dto.MetricType_COUNTER:
				c := counters[key]
				if c == nil {
					c = &CounterDelta{Family: name, Labels: labels}
					counters[key] = c
				}
				d := mt.GetCounter().GetValue() - old.GetCounter().GetValue()
				if d < 0 { // the node restarted: its count since then
					m.warnings = append(m.warnings, fmt.Sprintf("%s: %s went down (a restart?)", url, key))
					d = mt.GetCounter().GetValue()
				}
				c.Delta += d
			}
		}
	}
}

// seriesOf indexes a family's series by their labels.
func seriesOf(fam *dto.MetricFamily) map[string]*dto.Metric {
	out := map[string]*dto.Metric{}
	for _, mt := range fam.GetMetric() {
		out[labelString(labelMap(mt))] = mt
	}
	return out
}

func labelMap(mt *dto.Metric) map[string]string {
	if len(mt.GetLabel()) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, l := range mt.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// labelString is the labels as name=value pairs sorted by name.
func labelString(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + labels[k])
	}
	return b.String()
}

func seriesLess(fa string, la map[string]string, fb string, lb map[string]string) bool {
	if fa != fb {
		return fa < fb
	}
	return labelString(la) < labelString(lb)
}

// bucket is a cumulative histogram bucket.
type bucket struct {
	upper float64
	count float64
}

// histAcc sums one histogram series' differences over the nodes.
type histAcc struct {
	family  string
	labels  map[string]string
	buckets []bucket // the first node's bounds; cumulative counts summed
	count   uint64
	sum     float64
}

// add adds after − before (before nil: the series appeared in the phase); it
// returns a warning for a node it could not add.
func (a *histAcc) add(after, before *dto.Histogram) string {
	bs := cumulative(after)
	if before != nil && after.GetSampleCount() < before.GetSampleCount() {
		before = nil // the node restarted: its observations since then
	}
	if before != nil {
		old := cumulative(before)
		if !sameBounds(bs, old) {
			return "its buckets changed during the phase"
		}
		for i := range bs {
			bs[i].count -= old[i].count
		}
	}
	if a.buckets == nil {
		a.buckets = bs
	} else if !sameBounds(a.buckets, bs) {
		return "its buckets differ from another node's; left out"
	} else {
		for i := range bs {
			a.buckets[i].count += bs[i].count
		}
	}
	a.count += after.GetSampleCount() - before.GetSampleCount()
	a.sum += after.GetSampleSum() - before.GetSampleSum()
	return ""
}

func (a *histAcc) delta() HistogramDelta {
	return HistogramDelta{Family: a.family, Labels: a.labels, Count: a.count, Sum: a.sum,
		P50: bucketQuantile(0.50, a.buckets), P99: bucketQuantile(0.99, a.buckets)}
}

// cumulative is a histogram's buckets in bound order, ending with +Inf.
func cumulative(h *dto.Histogram) []bucket {
	var out []bucket
	for _, b := range h.GetBucket() {
		out = append(out, bucket{upper: b.GetUpperBound(), count: float64(b.GetCumulativeCount())})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].upper < out[j].upper })
	if len(out) == 0 || !math.IsInf(out[len(out)-1].upper, 1) {
		out = append(out, bucket{upper: math.Inf(1), count: float64(h.GetSampleCount())})
	}
	return out
}

func sameBounds(a, b []bucket) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].upper != b[i].upper {
			return false
		}
	}
	return true
}

// bucketQuantile is Prometheus's histogram_quantile over cumulative buckets
// ending with +Inf: the rank's bucket, and a linear interpolation within it
// (from 0 for the first bucket); a rank in the +Inf bucket gives the highest
// finite bound. 0 when nothing was observed.
func bucketQuantile(q float64, bs []bucket) float64 {
	if len(bs) < 2 {
		return 0
	}
	// Counts decreasing from one bucket to the next (scrapes not atomic across
	// buckets) are raised, as Prometheus does.
	for i := 1; i < len(bs); i++ {
		bs[i].count = max(bs[i].count, bs[i-1].count)
	}
	total := bs[len(bs)-1].count
	if total <= 0 {
		return 0
	}
	rank := q * total
	b := sort.Search(len(bs)-1, func(i int) bool { return bs[i].count >= rank })
	switch {
	case b == len(bs)-1:
		return bs[len(bs)-2].upper
	case b == 0 && bs[0].upper <= 0:
		return bs[0].upper
	}
	lower, below := 0.0, 0.0
	if b > 0 {
		lower, below = bs[b-1].upper, bs[b-1].count
	}
	inBucket := bs[b].count - below
	if inBucket <= 0 {
		return lower
	}
	return lower + (bs[b].upper-lower)*((rank-below)/inBucket)
}
