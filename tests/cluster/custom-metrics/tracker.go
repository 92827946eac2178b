package main

// Scraping the pods the HPA asks about and turning their request counters
// into rates.
//
// Timing. Each pod the adapter has been asked about is scraped when it is
// first asked about and then every scrapeInterval (5 s, a common Prometheus
// scrape interval, and the local cluster's HPA sync period:
// tests/cluster/lib/components.sh, --horizontal-pod-autoscaler-sync-period).
// A pod's rate is the counter's increase from the oldest to the newest sample
// taken in the last rateWindow (15 s), divided by the time between them. The
// window holds three samples 5 s apart, so the rate is the average over the
// 10 s up to the newest sample (at most 5 s old), and one failed scrape still
// leaves two samples (a 5 s rate) rather than none. Prometheus advises a
// rate range of four scrape intervals because its rate() extrapolates to the
// range's edges; this one does not (it divides by the samples' own span), so
// two samples suffice. A shorter window would be a single 5 s difference of
// an integer counter, following every burst; a longer one would make the HPA
// react later.
//
// What that gives the HPA (sync every 5 s): a step in load starts to show at
// the first scrape after it (0-5 s), diluted by the samples from before the
// step, and shows fully from the third (10-15 s after the step). A load a
// few times the target crosses the HPA's 10 % tolerance at the first or
// second scrape, so the first scale-up comes ~5-10 s after the step (scrape
// and sync; 0-15 s at the extremes), and the HPA scales again as the rate
// rises (no scale-up stabilization by default). When load stops, the rate
// falls over the next two scrapes and is 0 from the third (10-15 s), then the
// scale-down stabilization window (15 s on the local cluster, or
// behavior.scaleDown.stabilizationWindowSeconds) holds the count. Prometheus
// with a [1m] rate over a 15-30 s scrape interval, the usual
// prometheus-adapter setup, takes several times as long both ways.
//
// Counter resets: a total smaller than the one before means the process
// restarted (its counters start at 0 again, the pod and its uid stay), so
// the increase over that step is the new total, as Prometheus' rate() counts
// it. The pod's total is one counter here (the sum over its series): all the
// series of a process reset together, and a series appears with its first
// request (prometheus_client creates it then), so a new series adds its whole
// value, which is what it counted. A restart whose new total has already
// passed the old one at the next scrape goes unnoticed (as it does per series
// for Prometheus); the rate undercounts that one interval.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

const (
	scrapeInterval = 5 * time.Second
	rateWindow     = 15 * time.Second
	// scrapeTimeout: a pod's /metrics answers in milliseconds; one that does
	// not answer within a second (or an IP nothing routes to, as a kwok pod's)
	// gets no sample this round.
	scrapeTimeout = time.Second
	// idleAfter: a pod nobody asked about for this long is no longer scraped
	// and its history is dropped (the HPA asks every sync period, 5 s here, 15 s
	// by default; a deleted pod is never asked about again). So the adapter
	// scrapes only the pods of HPAs that use the metric, not every pod in the
	// cluster (e.g. the hundreds of kwok pods of the scale benchmark).
	idleAfter = 3 * time.Minute
	// maxExposition bounds one /metrics body (the services' is ~10 KiB).
	maxExposition = 8 << 20

	// The conventional scrape annotations (Prometheus' example Kubernetes
	// configuration, most charts): port and path of the pod's /metrics.
	portAnnotation = "prometheus.io/port"
	pathAnnotation = "prometheus.io/path"
	// Without them: the container port a MicroService's Deployment names
	// "http" (operator/src/desired/deployment.rs), path /metrics.
	defaultPortName = "http"
	defaultPath     = "/metrics"
)

// errNoEndpoint: the pod is not one that can be scraped now.
var errNoEndpoint = errors.New("no metrics endpoint")

// metricsURL is where a pod's /metrics is: its IP, the port and path from
// the scrape annotations, else the container port named "http" and /metrics.
// Plain HTTP (prometheus.io/scheme is not looked at: the services serve no
// TLS). Pods that are not Running, are being deleted or have no IP yet have
// none (and so no value). prometheus.io/scrape is not looked at either: the
// HPA asking for the pod's rate is the reason to scrape it.
func metricsURL(pod *corev1.Pod) (string, error) {
	if pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		return "", fmt.Errorf("%w: pod is %s", errNoEndpoint, phase(pod))
	}
	if pod.Status.PodIP == "" {
		return "", fmt.Errorf("%w: pod has no IP", errNoEndpoint)
	}
	port := 0
	if raw, ok := pod.Annotations[portAnnotation]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%w: annotation %s=%q is not a port", errNoEndpoint, portAnnotation, raw)
		}
		port = n
	} else {
	containers:
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == defaultPortName && p.ContainerPort > 0 {
					port = int(p.ContainerPort)
					break containers
				}
			}
		}
		if port == 0 {
			return "", fmt.Errorf("%w: no annotation %s and no container port named %q", errNoEndpoint, portAnnotation, defaultPortName)
		}
	}
	path := defaultPath
	if raw := strings.TrimSpace(pod.Annotations[pathAnnotation]); raw != "" {
		path = raw
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
	}
	return "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + path, nil
}

func phase(pod *corev1.Pod) string {
	if pod.DeletionTimestamp != nil {
		return "terminating"
	}
	if pod.Status.Phase == "" {
		return "without a phase"
	}
	return string(pod.Status.Phase)
}

// sample is one scrape: when it started and the pod's counter total.
type sample struct {
	at    time.Time
	total float64
}

// rateOf is the per-second increase of the counter over the samples taken in
// (now-window, now], with resets handled; ok is false with fewer than two
// samples there (no rate yet, or the pod stopped answering). oldest and
// newest are the samples' times (the value's window and timestamp).
func rateOf(samples []sample, now time.Time, window time.Duration) (perSecond float64, oldest, newest time.Time, ok bool) {
	var prev *sample
	increase := 0.0
	for i := range samples {
		s := &samples[i]
		if !s.at.After(now.Add(-window)) || s.at.After(now) {
			continue
		}
		if prev == nil {
			oldest = s.at
		} else if s.total >= prev.total {
			increase += s.total - prev.total
		} else {
			// Reset: the counter restarted from 0 since prev.
			increase += s.total
		}
		prev = s
	}
	if prev == nil || !prev.at.After(oldest) {
		return 0, time.Time{}, time.Time{}, false
	}
	newest = prev.at
	return increase / newest.Sub(oldest).Seconds(), oldest, newest, true
}

// target is one pod being scraped.
type target struct {
	pod     string // namespace/name, for the log
	url     string
	asked   time.Time
	samples []sample // in time order, pruned to the window
	lastErr string   // logged once, not every 5 s
}

// tracker keeps the targets, one scrape loop each.
type tracker struct {
	ctx      context.Context
	client   *http.Client
	interval time.Duration
	window   time.Duration
	idle     time.Duration
	now      func() time.Time

	mu      sync.Mutex
	targets map[types.UID]*target
}

func newTracker(ctx context.Context) *tracker {
	return &tracker{
		ctx: ctx,
		client: &http.Client{
			Timeout: scrapeTimeout,
			Transport: &http.Transport{
				Proxy:               nil, // pod IPs, never through an HTTP(S)_PROXY
				DialContext:         (&net.Dialer{Timeout: scrapeTimeout}).DialContext,
				MaxIdleConnsPerHost: 1,
				IdleConnTimeout:     2 * scrapeInterval,
			},
		},
		interval: scrapeInterval,
		window:   rateWindow,
		idle:     idleAfter,
		now:      time.Now,
		targets:  map[types.UID]*target{},
	}
}

// rate notes that the pod was asked about (starting to scrape it if it is
// new) and returns its rate, if it has one yet.
func (t *tracker) rate(pod *corev1.Pod) (perSecond float64, oldest, newest time.Time, ok bool) {
	url, err := metricsURL(pod)
	if err != nil {
		klog.V(2).Infof("%s/%s: %v", pod.Namespace, pod.Name, err)
		return 0, time.Time{}, time.Time{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	tg, found := t.targets[pod.UID]
	if !found {
		tg = &target{pod: pod.Namespace + "/" + pod.Name}
		t.targets[pod.UID] = tg
		klog.V(1).Infof("%s: scraping %s every %s", tg.pod, url, t.interval)
		go t.loop(pod.UID)
	}
	tg.url = url
	tg.asked = now
	return rateOf(tg.samples, now, t.window)
}

// loop scrapes one target every interval until nobody has asked about it
// for idle.
func (t *tracker) loop(uid types.UID) {
	ticker := time.NewTicker(t.interval)
	defer ticker.Stop()
	for {
		t.mu.Lock()
		tg := t.targets[uid]
		if tg != nil && t.now().Sub(tg.asked) > t.idle {
			klog.V(1).Infof("%s: not asked about for %s, no longer scraped", tg.pod, t.idle)
			delete(t.targets, uid)
			tg = nil
		}
		var url string
		if tg != nil {
			url = tg.url
		}
		t.mu.Unlock()
		if tg == nil {
			return
		}
		at := t.now()
		total, err := t.scrape(url)
		t.record(uid, at, total, err)
		select {
		case <-t.ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// record adds a sample (or logs why there is none) and drops the samples
// that have left the window.
func (t *tracker) record(uid types.UID, at time.Time, total float64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tg := t.targets[uid]
	if tg == nil {
		return
	}
	if err != nil {
		if msg := err.Error(); msg != tg.lastErr {
			klog.Infof("%s: no sample: %v", tg.pod, err)
			tg.lastErr = msg
		}
		return
	}
	if tg.lastErr != "" {
		klog.Infof("%s: scraped again", tg.pod)
		tg.lastErr = ""
	}
	tg.samples = append(tg.samples, sample{at: at, total: total})
	keep := 0
	for keep < len(tg.samples) && !tg.samples[keep].at.After(at.Add(-t.window)) {
		keep++
	}
	tg.samples = tg.samples[keep:]
}

// scrape reads the pod's request counter total from url.
func (t *tracker) scrape(url string) (float64, error) {
	ctx, cancel := context.WithTimeout(t.ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExposition+1))
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxExposition {
		return 0, fmt.Errorf("GET %s: more than %d bytes", url, maxExposition)
	}
	got, err := parseRequestsTotal(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	if !got.declared {
		return 0, fmt.Errorf("GET %s: no %s in the exposition", url, counterSeries)
	}
	if math.IsInf(got.total, 0) {
		return 0, fmt.Errorf("GET %s: %s overflows", url, counterSeries)
	}
	return got.total, nil
}
