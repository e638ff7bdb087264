package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"idbridge/app/store"
)

// outboxScrapeTimeout bounds the backlog read of one /metrics scrape.
const outboxScrapeTimeout = 2 * time.Second

// outboxCollector reports the SCIM outbox's backlog at each scrape (SPEC
// 10, "outbox depth and age"): how many changes are pending, over all
// sites, and how long the oldest has waited. When the database does not
// answer, the scrape goes on without them (and /readyz says why).
type outboxCollector struct {
	store        *store.Store
	now          func() time.Time
	log          *slog.Logger
	pending, age *prometheus.Desc
}

func newOutboxCollector(st *store.Store, now func() time.Time, log *slog.Logger) *outboxCollector {
	return &outboxCollector{
		store: st, now: now, log: log,
		pending: prometheus.NewDesc("idbridge_outbox_pending_items",
			"Directory changes accepted from identity providers and not yet applied to their site, over all sites.", nil, nil),
		age: prometheus.NewDesc("idbridge_outbox_oldest_pending_age_seconds",
			"How long the oldest pending directory change has waited; 0 when none is pending.", nil, nil),
	}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.age
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxScrapeTimeout)
	defer cancel()
	b, err := c.store.OutboxBacklog(ctx)
	if err != nil {
		c.log.Warn("metrics: outbox backlog not read", "err", err)
		return
	}
	age := 0.0
	if b.Pending > 0 {
		age = max(c.now().Sub(b.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(b.Pending))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}
