package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"idbridge/models"
)

func (s *server) handleHealthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// handleReadyz answers 503 while the database is unreachable or migrations
// are pending, and 200 again as soon as they are fine, with no restart.
func (s *server) handleReadyz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if s.Ready == nil {
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.Ready.Ready(ctx); err != nil {
		s.Log.WarnContext(c, "not ready", "error", err.Error())
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": "not ready: " + readinessReason(err)})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// readinessReason is the short public reason of a failed readiness check:
// the message of an unavailable models.Error in its chain ("database
// unreachable", "migrations pending"); the full error is logged only.
func readinessReason(err error) string {
	if e, ok := models.AsError(err); ok && e.Code == models.CodeUnavailable {
		return e.Message
	}
	return "unavailable"
}

func (s *server) handleMetrics() gin.HandlerFunc {
	h := promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{})
	return func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) }
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_http_requests_total",
			Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "idbridge_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// knownMethods bounds the method label: any other method is "OTHER", so a
// client cannot grow the metric's cardinality.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

func (m *httpMetrics) observe(method, route string, status int, d time.Duration) {
	if !knownMethods[method] {
		method = "OTHER"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(method, route).Observe(d.Seconds())
}
