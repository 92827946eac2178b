package main

// Reading a pod's request counter from its /metrics text.
//
// The services (services/common/src/metrics.rs, prometheus_client 0.26)
// answer in the OpenMetrics text format; for the counter family registered as
// "http_requests" that is
//
//	# HELP http_requests HTTP requests handled, by route, method and status.
//	# TYPE http_requests counter
//	http_requests_total{route="/v1/items/{id}",method="GET",status="404"} 1
//	http_requests_total{route="unmatched",method="GET",status="404"} 1
//	...
//	# EOF
//
// route is axum's matched path template ("/v1/items/{id}", braces included,
// never the raw path), or "unmatched" for a request no route matched (the
// 404 fallback). prometheus_client writes no _created lines for these
// counters, but a _created sample (OpenMetrics) is another metric name and is
// skipped like every other family, as are exemplars ("... 1 # {k="v"} 1.0")
// and timestamps after the value. The Prometheus text format 0.0.4
// (client_golang and most other exporters: "# TYPE http_requests_total
// counter") reads the same way.

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

const (
	// counterFamily is the family as OpenMetrics declares it (TYPE line).
	counterFamily = "http_requests"
	// counterSeries is the name of its samples in both text formats.
	counterSeries = "http_requests_total"
)

// excludedRoutes are the service's own probe and scrape endpoints: the
// kubelet's liveness and readiness probes and the scraper (this adapter, or
// Prometheus) hit them at a fixed pace whatever the traffic, so counting them
// would give an idle pod a rate of its own. "Requests per second" in
// autoscaling.targetRequestsPerSecond means the service's users' requests.
// Everything else counts, "unmatched" (404s for unknown paths) included:
// those are requests the pod had to answer.
var excludedRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// requestsTotal is what one scrape says about the pod's request counter.
type requestsTotal struct {
	// total is the sum of http_requests_total over every series whose route
	// is not excluded.
	total float64
	// declared: the exposition has the family at all (a TYPE line, or any
	// sample). A pod whose /metrics does not know http_requests_total is not
	// a pod with zero requests: it gets no value, as with prometheus-adapter.
	declared bool
}

// maxLine bounds one line of the exposition (a histogram line with many
// labels is a few hundred bytes).
const maxLine = 64 << 10

// parseRequestsTotal reads an exposition and sums the pod's request counter.
// A malformed http_requests_total line is an error (the whole scrape is
// dropped rather than read as a smaller total, which the rate would take for
// a counter reset); malformed lines of other families are not looked at.
func parseRequestsTotal(r io.Reader) (requestsTotal, error) {
	var out requestsTotal
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 0, 4096), maxLine)
	for n := 1; scanner.Scan(); n++ {
		line := scanner.Text()
		if strings.HasPrefix(line, "#") {
			// "# TYPE <name> <type>"; HELP, UNIT, EOF and comments are skipped.
			if f := strings.Fields(line); len(f) >= 4 && f[1] == "TYPE" &&
				(f[2] == counterFamily || f[2] == counterSeries) {
				out.declared = true
			}
			continue
		}
		if !isCounterSample(line) {
			continue
		}
		_, labels, value, err := parseSample(line)
		if err != nil {
			return requestsTotal{}, fmt.Errorf("line %d: %w", n, err)
		}
		out.declared = true
		if excludedRoutes[labels["route"]] {
			continue
		}
		out.total += value
	}
	if err := scanner.Err(); err != nil {
		return requestsTotal{}, err
	}
	return out, nil
}

// isCounterSample: the line is a sample of http_requests_total (not of
// http_requests_total_foo, not a _created sample).
func isCounterSample(line string) bool {
	rest, ok := strings.CutPrefix(line, counterSeries)
	return ok && rest != "" && (rest[0] == '{' || rest[0] == ' ' || rest[0] == '\t')
}

// parseSample splits `name{l="v",...} value [timestamp] [# exemplar]`
// (blanks around the braces, names and "=" allowed, as Prometheus' own text
// parser allows them).
func parseSample(line string) (name string, labels map[string]string, value float64, err error) {
	i := 0
	for i < len(line) && isNameChar(line[i], i == 0) {
		i++
	}
	if i == 0 {
		return "", nil, 0, fmt.Errorf("no metric name in %q", line)
	}
	name, rest := line[:i], strings.TrimLeft(line[i:], " \t")
	if strings.HasPrefix(rest, "{") {
		labels, rest, err = parseLabels(rest[1:])
		if err != nil {
			return "", nil, 0, fmt.Errorf("%s: %w", name, err)
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, fmt.Errorf("%s: no value", name)
	}
	value, err = strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%s: value: %w", name, err)
	}
	if math.IsNaN(value) || math.IsInf(value, 0) || value < 0 {
		return "", nil, 0, fmt.Errorf("%s: %v is not a counter value", name, value)
	}
	return name, labels, value, nil
}

func isNameChar(c byte, first bool) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(!first && c >= '0' && c <= '9')
}

// parseLabels reads `l="v",...}` (the opening brace already consumed) and
// returns the rest of the line after the closing brace. Values may contain
// anything, braces and commas included ("/v1/items/{id}"), with \\, \" and
// \n escaped.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, "}") {
			return labels, s[1:], nil
		}
		i := 0
		for i < len(s) && isNameChar(s[i], i == 0) {
			i++
		}
		key := s[:i]
		s = strings.TrimLeft(s[i:], " \t")
		if key == "" || !strings.HasPrefix(s, "=") {
			return nil, "", fmt.Errorf("bad label set near %q", s)
		}
		s = strings.TrimLeft(s[1:], " \t")
		if !strings.HasPrefix(s, `"`) {
			return nil, "", fmt.Errorf("bad label set near %q", s)
		}
		s = s[1:]
		var value strings.Builder
		closed := false
		for j := 0; j < len(s); j++ {
			c := s[j]
			if c == '"' {
				s = s[j+1:]
				closed = true
				break
			}
			if c == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					value.WriteByte('\n')
				default: // \\ and \"
					value.WriteByte(s[j])
				}
				continue
			}
			value.WriteByte(c)
		}
		if !closed {
			return nil, "", fmt.Errorf("unterminated value of label %s", key)
		}
		labels[key] = value.String()
		s = strings.TrimLeft(s, " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		} else if !strings.HasPrefix(s, "}") {
			return nil, "", fmt.Errorf("bad label set near %q", s)
		}
	}
}
