// berth-custom-metrics: a minimal custom.metrics.k8s.io adapter for the local
// cluster, built on sigs.k8s.io/custom-metrics-apiserver (the library
// prometheus-adapter itself is built on). It serves one metric per pod,
// http_requests_per_second, which is what MicroService
// autoscaling.targetRequestsPerSecond makes the HPA ask for.
//
// What stands in for real traffic: kwok plays the kubelets, so no process
// runs in the pods and no pod serves a Prometheus /metrics endpoint. In a
// real cluster prometheus-adapter computes the metric from the services'
// http_requests_total counters (rate over a window). Here a pod's rate is
// read from its annotation berth.dev/usage-requests-per-second (absent: 0),
// the same way kwok reads CPU use from kwok.x-k8s.io/usage-cpu. Everything
// from this API onwards (aggregation layer, the HPA's custom metrics client,
// its decisions, the MicroService status) is the real path.
package main

import (
	"context"
	"fmt"
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

const (
	metricName = "http_requests_per_second"
	annotation = "berth.dev/usage-requests-per-second"
)

var podsResource = schema.GroupResource{Resource: "pods"}

type requestRates struct {
	client kubernetes.Interface
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
	value, err := rate(pod)
	if err != nil {
		return nil, err
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
	// An empty list, not null: "no pods" is an answer, not an error.
	list := &custom_metrics.MetricValueList{Items: []custom_metrics.MetricValue{}}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
			continue
		}
		value, err := rate(pod)
		if err != nil {
			klog.Warningf("%s/%s: %v", pod.Namespace, pod.Name, err)
			continue
		}
		list.Items = append(list.Items, value)
	}
	return list, nil
}

func supported(info provider.CustomMetricInfo) error {
	if info.GroupResource != podsResource || info.Metric != metricName {
		return provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	return nil
}

func rate(pod *corev1.Pod) (custom_metrics.MetricValue, error) {
	value := resource.MustParse("0")
	if raw, ok := pod.Annotations[annotation]; ok {
		parsed, err := resource.ParseQuantity(raw)
		if err != nil {
			return custom_metrics.MetricValue{}, fmt.Errorf("annotation %s: %w", annotation, err)
		}
		value = parsed
	}
	window := int64(10)
	return custom_metrics.MetricValue{
		DescribedObject: custom_metrics.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
		},
		Metric:        custom_metrics.MetricIdentifier{Name: metricName},
		Timestamp:     metav1.Now(),
		WindowSeconds: &window,
		Value:         value,
	}, nil
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
	cmd.WithCustomMetrics(&requestRates{client: client})
	if err := cmd.Run(context.Background()); err != nil {
		klog.Fatalf("adapter: %v", err)
	}
}
