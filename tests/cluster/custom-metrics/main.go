// berth-custom-metrics: a minimal custom.metrics.k8s.io adapter for the local
// cluster, built on sigs.k8s.io/custom-metrics-apiserver (the library
// prometheus-adapter itself is built on). It serves one metric per pod,
// http_requests_per_second, which is what MicroService
// autoscaling.targetRequestsPerSecond makes the HPA ask for.
//
// A pod's value is the rate of its own request counter: the adapter scrapes
// the pod's Prometheus endpoint (pod IP; port and path from the annotations
// prometheus.io/port and prometheus.io/path, else the container port named
// "http" and /metrics; plain HTTP, 1 s timeout) every 5 s, sums
// http_requests_total over its series except the probe and scrape routes
// (/healthz, /readyz, /metrics), and divides the increase from the oldest to
// the newest sample of the last 15 s (three samples 5 s apart) by the time
// between them, counter resets handled as Prometheus does (exposition.go,
// tracker.go). It scrapes only the pods it has been asked about in the last
// 3 minutes. It is the short version of what a real cluster runs: Prometheus
// scraping the pods and prometheus-adapter serving
// sum(rate(http_requests_total{route!~"/healthz|/readyz|/metrics"}[1m])) by
// (namespace, pod) under this name (README.md).
//
// Pods with no value (not Running, no IP, no endpoint, fewer than two samples
// in the window because they are new or stopped answering) are left out of
// lists and are not found by name. The HPA treats a pod left out as missing
// (while scaling up, as if it used 0; while scaling down, as if it used
// exactly the target) and a list with no pod at all as an error
// (ScalingActive=False, FailedGetPodsMetric: it keeps the replica count).
//
// The adapter runs as a process on this machine, from where the real node's
// pod IPs (10.245.0.0/24) are reachable. kwok's pods run no process and
// their IPs serve no /metrics, so they never get a value.
package main

import (
	"context"
	"math"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/logs"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/custom_metrics"

	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
)

const metricName = "http_requests_per_second"

var podsResource = schema.GroupResource{Resource: "pods"}

type requestRates struct {
	client kubernetes.Interface
	rates  *tracker
}

func (p *requestRates) ListAllMetrics() []provider.CustomMetricInfo {
	return []provider.CustomMetricInfo{{GroupResource: podsResource, Namespaced: true, Metric: metricName}}
}

func (p *requestRates) GetMetricByName(ctx context.Context, name types.NamespacedName, info provider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValue, error) {
	if err := supported(info); err != nil {
		return nil, err
	}
	pod, err := p.client.CoreV1().Pods(name.Namespace).Get(ctx, name.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, provider.NewMetricNotFoundForError(podsResource, info.Metric, name.Name)
	}
	if err != nil {
		return nil, err
	}
	value, ok := p.value(pod)
	if !ok {
		return nil, provider.NewMetricNotFoundForError(podsResource, info.Metric, name.Name)
	}
	return &value, nil
}

func (p *requestRates) GetMetricBySelector(ctx context.Context, namespace string, selector labels.Selector, info provider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValueList, error) {
	if err := supported(info); err != nil {
		return nil, err
	}
	pods, err := p.client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, err
	}
	// An empty list, not null: "no pods with a value" is an answer, not an
	// error (the HPA makes its own error of it).
	list := &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{}}
	for i := range pods.Items {
		if value, ok := p.value(&pods.Items[i]); ok {
			list.Items = append(list.Items, value)
		}
	}
	return list, nil
}

func supported(info provider.CustomMetricInfo) error {
	if info.GroupResource != podsResource || info.Metric != metricName {
		return provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	return nil
}

// value is the pod's request rate, if it has one yet; asking starts the
// pod's scraping.
func (p *requestRates) value(pod *corev1.Pod) (custom_metrics.MetricValue, bool) {
	perSecond, oldest, newest, ok := p.rates.rate(pod)
	if !ok {
		return custom_metrics.MetricValue{}, false
	}
	window := int64(math.Round(newest.Sub(oldest).Seconds()))
	return custom_metrics.MetricValue{
		DescribedObject: custom_metrics.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
		},
		Metric:        custom_metrics.MetricIdentifier{Name: metricName},
		Timestamp:     metav1.NewTime(newest),
		WindowSeconds: &window,
		// The HPA reads milli-units: 2.5 requests/s is 2500m.
		Value: *resource.NewMilliQuantity(int64(math.Round(perSecond*1000)), resource.DecimalSI),
	}, true
}

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()
	cmd := &basecmd.AdapterBase{Name: "berth-custom-metrics"}
	logs.AddFlags(cmd.Flags())
	if err := cmd.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("flags: %v", err)
	}
	config, err := cmd.ClientConfig()
	if err != nil {
		klog.Fatalf("client config: %v", err)
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		klog.Fatalf("client: %v", err)
	}
	ctx := context.Background()
	cmd.WithCustomMetrics(&requestRates{client: client, rates: newTracker(ctx)})
	if err := cmd.Run(ctx); err != nil {
		klog.Fatalf("adapter: %v", err)
	}
}
