package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// What item-service (services/common/src/metrics.rs, prometheus_client 0.26)
// answered after GET /healthz, /readyz, /v1/items, /nope, /v1/items/abc and
// a POST /v1/items with a bad body (histogram buckets cut short).
const serviceExposition = `# HELP http_requests HTTP requests handled, by route, method and status.
# TYPE http_requests counter
http_requests_total{route="/v1/items",method="GET",status="200"} 1
http_requests_total{route="/readyz",method="GET",status="200"} 1
http_requests_total{route="/healthz",method="GET",status="200"} 1
http_requests_total{route="/v1/items/{id}",method="GET",status="404"} 1
http_requests_total{route="unmatched",method="GET",status="404"} 1
http_requests_total{route="/v1/items",method="POST",status="422"} 1
http_requests_total{route="/metrics",method="GET",status="200"} 7
# HELP http_request_duration_seconds HTTP request latency, by route and method.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_sum{route="/healthz",method="GET"} 0.000260388
http_request_duration_seconds_count{route="/healthz",method="GET"} 1
http_request_duration_seconds_bucket{le="0.0005",route="/healthz",method="GET"} 1
http_request_duration_seconds_bucket{le="+Inf",route="/healthz",method="GET"} 1
# HELP http_requests_in_flight HTTP requests being handled now.
# TYPE http_requests_in_flight gauge
http_requests_in_flight 1
# EOF
`

func parse(t *testing.T, text string) requestsTotal {
	t.Helper()
	got, err := parseRequestsTotal(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return got
}

func TestParseServiceExposition(t *testing.T) {
	got := parse(t, serviceExposition)
	// /v1/items GET, /v1/items/{id}, unmatched, /v1/items POST; not the
	// probes nor /metrics.
	if !got.declared || got.total != 4 {
		t.Fatalf("got %+v, want total 4", got)
	}
}

func TestParseExcludesOnlyTheProbeAndScrapeRoutes(t *testing.T) {
	for route, counted := range map[string]bool{
		"/healthz": false, "/readyz": false, "/metrics": false,
		"/v1/items": true, "/v1/items/{id}": true, "unmatched": true,
		"/healthz/more": true, "/metricsz": true, "/openapi.json": true,
	} {
		got := parse(t, fmt.Sprintf("http_requests_total{route=%q,method=\"GET\",status=\"200\"} 5\n", route))
		want := 0.0
		if counted {
			want = 5
		}
		if got.total != want || !got.declared {
			t.Errorf("route %s: got %+v, want total %v", route, got, want)
		}
	}
}

// The Prometheus text format 0.0.4 (client_golang and most exporters), with
// what both formats allow around a sample.
func TestParseOtherShapes(t *testing.T) {
	text := `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/a",status="200"} 2 1700000000000
http_requests_total{route="/b"} 3.5e0 # {trace_id="abc"} 1.0 1700000000.5
http_requests_total{route="/say \"hi\", {x}\\n",code="200",} 1
http_requests_total { route = "/spaced" } 4
http_requests_total 10
http_requests_created{route="/a"} 1.7e9
http_requests_total_other{route="/a"} 100
http_requests_totalx 100
other_total{route="/a"} 100
some_gauge{route="/metrics"} 1
`
	got := parse(t, text)
	if want := 2 + 3.5 + 1 + 4 + 10.0; got.total != want {
		t.Fatalf("total %v, want %v", got.total, want)
	}
}

func TestParseLabelValues(t *testing.T) {
	_, labels, value, err := parseSample(`http_requests_total{route="/x/{id}",q="a\"b\\c\nd",method="GET"} 7`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"route": "/x/{id}", "q": "a\"b\\c\nd", "method": "GET"}
	if fmt.Sprint(labels) != fmt.Sprint(want) || value != 7 {
		t.Fatalf("labels %q value %v", labels, value)
	}
}

func TestParseDeclaredWithoutSeries(t *testing.T) {
	// A service that has answered nothing yet: prometheus_client writes the
	// family's HELP and TYPE only. That is 0 requests, not "no metric".
	got := parse(t, "# HELP http_requests HTTP requests.\n# TYPE http_requests counter\n# EOF\n")
	if !got.declared || got.total != 0 {
		t.Fatalf("got %+v", got)
	}
	// Only probe traffic: 0 too.
	got = parse(t, "# TYPE http_requests counter\nhttp_requests_total{route=\"/healthz\"} 90\n")
	if !got.declared || got.total != 0 {
		t.Fatalf("got %+v", got)
	}
	// Some other exporter: no such family at all.
	got = parse(t, "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total 3\n# EOF\n")
	if got.declared {
		t.Fatalf("got %+v, want undeclared", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, text := range []string{
		"http_requests_total{route=\"/a\"}\n",
		"http_requests_total{route=\"/a\"} many\n",
		"http_requests_total{route=\"/a\"} -1\n",
		"http_requests_total{route=\"/a\"} NaN\n",
		"http_requests_total{route=\"/a\"} +Inf\n",
		"http_requests_total{route=\"/a} 1\n",
		"http_requests_total{route=/a} 1\n",
		"http_requests_total{route=\"/a\" method=\"GET\"} 1\n",
	} {
		if got, err := parseRequestsTotal(strings.NewReader(text)); err == nil {
			t.Errorf("%q: no error, got %+v", text, got)
		}
	}
	// Malformed lines of other families are none of its business.
	got := parse(t, "other_metric{oops 1\nhttp_requests_total 2\n")
	if got.total != 2 {
		t.Fatalf("got %+v", got)
	}
}

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func samplesAt(pairs ...float64) []sample {
	var out []sample
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, sample{at: at(pairs[i]), total: pairs[i+1]})
	}
	return out
}

func TestRate(t *testing.T) {
	window := 15 * time.Second
	for _, c := range []struct {
		name    string
		samples []sample
		now     float64
		want    float64 // < 0: no rate
		span    float64
	}{
		{"steady", samplesAt(0, 100, 5, 150, 10, 200, 15, 250), 15, 10, 10},
		{"the window's oldest sample is the start", samplesAt(0, 100, 5, 150, 10, 200, 15, 250), 16, 10, 10},
		{"a full window", samplesAt(1, 100, 6, 150, 11, 200, 15, 240), 15.5, 10, 14},
		{"old samples do not count", samplesAt(0, 0, 5, 1000, 10, 1010, 15, 1020), 15, 2, 10},
		{"no traffic", samplesAt(0, 7, 5, 7, 10, 7), 10, 0, 10},
		// Restarted between 5 and 10 s and served 30 since: 30 + 50 in 10 s.
		{"counter reset", samplesAt(0, 500, 5, 550, 10, 30, 15, 80), 15, 8, 10},
		{"reset to zero", samplesAt(5, 550, 10, 0, 15, 50), 15, 5, 10},
		{"two samples", samplesAt(10, 3, 15, 13), 15, 2, 5},
		{"one sample", samplesAt(15, 13), 15, -1, 0},
		{"no samples", nil, 15, -1, 0},
		{"stopped answering", samplesAt(0, 100, 5, 150), 25, -1, 0},
		{"one left in the window", samplesAt(0, 100, 5, 150, 10, 200), 24, -1, 0},
		{"samples after now are not used", samplesAt(5, 10, 10, 20, 20, 99999), 15, 2, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, oldest, newest, ok := rateOf(c.samples, at(c.now), window)
			if c.want < 0 {
				if ok {
					t.Fatalf("rate %v, want none", got)
				}
				return
			}
			if !ok {
				t.Fatalf("no rate, want %v", c.want)
			}
			if math.Abs(got-c.want) > 1e-9 || newest.Sub(oldest).Seconds() != c.span {
				t.Fatalf("rate %v over %v, want %v over %vs", got, newest.Sub(oldest), c.want, c.span)
			}
		})
	}
}

func pod(ip string, annotations map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1", UID: types.UID("uid-" + ip), Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 9000}}},
			{Name: "app", Ports: ports},
		}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

func TestMetricsURL(t *testing.T) {
	httpPort := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	pending := pod("10.245.0.7", nil, httpPort)
	pending.Status.Phase = corev1.PodPending
	deleting := pod("10.245.0.7", nil, httpPort)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	for _, c := range []struct {
		name string
		pod  *corev1.Pod
		want string // "": no endpoint
	}{
		{"the port named http", pod("10.245.0.7", nil, httpPort), "http://10.245.0.7:8080/metrics"},
		{"the annotations", pod("10.245.0.7", map[string]string{portAnnotation: "9090", pathAnnotation: "/internal/metrics"}, httpPort), "http://10.245.0.7:9090/internal/metrics"},
		{"port annotation only", pod("10.245.0.7", map[string]string{portAnnotation: "9090"}), "http://10.245.0.7:9090/metrics"},
		{"path annotation only", pod("10.245.0.7", map[string]string{pathAnnotation: "stats"}, httpPort), "http://10.245.0.7:8080/stats"},
		{"IPv6", pod("fd00::5", nil, httpPort), "http://[fd00::5]:8080/metrics"},
		{"no port", pod("10.245.0.7", nil, corev1.ContainerPort{Name: "web", ContainerPort: 80}), ""},
		{"bad port annotation", pod("10.245.0.7", map[string]string{portAnnotation: "http"}, httpPort), ""},
		{"no IP", pod("", nil, httpPort), ""},
		{"pending", pending, ""},
		{"being deleted", deleting, ""},
	} {
		got, err := metricsURL(c.pod)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s: %s, want no endpoint", c.name, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q (%v), want %q", c.name, got, err, c.want)
		}
	}
}

// fakeService serves an exposition whose user counter grows at perSecond
// (and whose probe counter grows much faster, to be left out); restart()
// starts its counters from 0 again, as a restarted process does.
type fakeService struct {
	perSecond float64
	mu        sync.Mutex
	started   time.Time
	scrapes   atomic.Int64
}

func (f *fakeService) restart() {
	f.mu.Lock()
	f.started = time.Now()
	f.mu.Unlock()
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/stats" {
		http.NotFound(w, r)
		return
	}
	f.scrapes.Add(1)
	f.mu.Lock()
	elapsed := time.Since(f.started).Seconds()
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
	fmt.Fprintf(w, "# TYPE http_requests counter\n")
	fmt.Fprintf(w, "http_requests_total{route=\"/v1/items\",method=\"GET\",status=\"200\"} %d\n", int64(elapsed*f.perSecond*0.75))
	fmt.Fprintf(w, "http_requests_total{route=\"/v1/items/{id}\",method=\"GET\",status=\"200\"} %d\n", int64(elapsed*f.perSecond*0.25))
	fmt.Fprintf(w, "http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} %d\n", int64(elapsed*1000))
	fmt.Fprintf(w, "# EOF\n")
}

func testTracker(t *testing.T) *tracker {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	tr := newTracker(ctx)
	tr.interval = 50 * time.Millisecond
	tr.window = 500 * time.Millisecond
	tr.idle = 300 * time.Millisecond
	return tr
}

func servedPod(t *testing.T, handler http.Handler) *corev1.Pod {
	server := httptest.NewServer(handler)
	t.Cleanup(server.Close)
	u, _ := url.Parse(server.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	return pod(host, map[string]string{portAnnotation: port, pathAnnotation: "/stats"})
}

func waitRate(t *testing.T, tr *tracker, p *corev1.Pod, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	last := -1.0
	for time.Now().Before(deadline) {
		if r, _, _, has := tr.rate(p); has {
			last = r
			if ok(r) {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("rate never right (last %v)", last)
	return 0
}

func TestTrackerScrapesRatesAndForgets(t *testing.T) {
	service := &fakeService{perSecond: 2000, started: time.Now()}
	p := servedPod(t, service)
	tr := testTracker(t)
	if _, _, _, ok := tr.rate(p); ok {
		t.Fatal("a rate before two scrapes")
	}
	near := func(r float64) bool { return math.Abs(r-2000) < 300 }
	waitRate(t, tr, p, near)

	// A restart: the counters start from 0; the rate stays about the same
	// (it loses what was counted between the last scrape and the restart),
	// it does not go negative.
	service.restart()
	deadline := time.Now().Add(3 * tr.window)
	for time.Now().Before(deadline) {
		if r, _, _, ok := tr.rate(p); ok && (r < 1000 || r > 3000) {
			t.Fatalf("rate %v across a counter reset", r)
		}
		time.Sleep(tr.interval / 2)
	}

	// Nobody asks: scraping stops and the history goes.
	time.Sleep(tr.idle + 3*tr.interval)
	tr.mu.Lock()
	n := len(tr.targets)
	tr.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d targets left after idle", n)
	}
	before := service.scrapes.Load()
	time.Sleep(3 * tr.interval)
	if after := service.scrapes.Load(); after != before {
		t.Fatalf("scraped %d more times after idle", after-before)
	}
	if _, _, _, ok := tr.rate(p); ok {
		t.Fatal("a rate right after coming back: history was kept")
	}
}

func TestTrackerNoValueWithoutTheCounter(t *testing.T) {
	tr := testTracker(t)
	for name, handler := range map[string]http.HandlerFunc{
		"not found": http.NotFound,
		"other metrics": func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "# TYPE up gauge\nup 1\n")
		},
		"garbage": func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "http_requests_total{route=\"/a\"} lots\n")
		},
		"too slow": func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * scrapeTimeout):
			case <-r.Context().Done():
			}
		},
	} {
		p := servedPod(t, handler)
		p.UID = types.UID(name)
		tr.rate(p)
		time.Sleep(3 * tr.interval)
		if r, _, _, ok := tr.rate(p); ok {
			t.Errorf("%s: rate %v", name, r)
		}
	}
	// Unreachable (a kwok pod's IP): no value, and no wait for the caller.
	p := pod("127.0.0.1", map[string]string{portAnnotation: "1"})
	p.UID = "unreachable"
	start := time.Now()
	if _, _, _, ok := tr.rate(p); ok || time.Since(start) > 100*time.Millisecond {
		t.Fatal("rate for an unreachable pod, or asking waited for the scrape")
	}
}

// Against a real service: BERTH_SERVICE_URL=http://127.0.0.1:8081 (make
// run-item) go test -run TestAgainstService. Sends 40 requests/s to it for a
// few seconds, probes included, and reads the rate from its /metrics.
func TestAgainstService(t *testing.T) {
	base := os.Getenv("BERTH_SERVICE_URL")
	if base == "" {
		t.Skip("BERTH_SERVICE_URL not set")
	}
	tr := testTracker(t)
	tr.interval = 500 * time.Millisecond
	tr.window = 3 * time.Second
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(u.Host)
	p := pod(host, map[string]string{portAnnotation: port})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(25 * time.Millisecond) // 40/s
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			path := []string{"/v1/items", "/v1/items/00000000-0000-0000-0000-000000000000", "/nope"}[i%3]
			for _, pp := range []string{path, "/healthz", "/readyz"} {
				if resp, err := http.Get(base + pp); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	tr.rate(p)
	time.Sleep(tr.window + tr.interval)
	r := waitRate(t, tr, p, func(r float64) bool { return math.Abs(r-40) < 6 })
	t.Logf("%s: %.1f requests/s (sent 40/s, plus 80/s to the probes)", base, r)
}
