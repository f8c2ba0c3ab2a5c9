package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

// Metrics are one server's Prometheus metrics, in a registry of their own
// (no global state, so several servers can share a process, as in the demo).
type Metrics struct {
	Registry *prometheus.Registry
	rpcs     *prometheus.CounterVec
	refusals *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics creates the metrics of a server run by the named party.
func NewMetrics(component, party string) *Metrics {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"component": component, "party": party}
	m := &Metrics{
		Registry: reg,
		rpcs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_rpc_total", Help: "gRPC calls served, by method and status code.", ConstLabels: labels,
		}, []string{"method", "code"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_rpc_refused_total", Help: "gRPC calls refused before the handler ran, by reason.", ConstLabels: labels,
		}, []string{"method", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "veil_rpc_duration_seconds", Help: "gRPC handler latency.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"method"}),
	}
	reg.MustRegister(m.rpcs, m.refusals, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observe(method string, code codes.Code, d time.Duration) {
	if m == nil {
		return
	}
	m.rpcs.WithLabelValues(method, code.String()).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

func (m *Metrics) refused(method, reason string) {
	if m == nil {
		return
	}
	m.refusals.WithLabelValues(method, reason).Inc()
	code := codes.PermissionDenied
	if reason == "unauthenticated" {
		code = codes.Unauthenticated
	}
	m.rpcs.WithLabelValues(method, code.String()).Inc()
}

// ServeMetrics serves /metrics on addr until ctx ends. It returns the bound
// address (useful with ":0") once listening.
func ServeMetrics(ctx context.Context, addr string, m *Metrics, log *slog.Logger) (net.Addr, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	return lis.Addr(), nil
}
