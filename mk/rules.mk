# The monitoring the operator chart ships: Prometheus rules
# (charts/berth-operator/rules/, the PrometheusRule's spec and what the local
# Prometheus loads) and Grafana dashboards (charts/berth-operator/dashboards/).
# `make test-rules` needs no cluster: promtool (built once from Go modules,
# like the cluster's binaries) checks the rules and runs their unit tests
# (tests/monitoring/*.test.yaml: every alert firing and not firing, the
# recorded values); every dashboard must parse, and every panel have queries,
# each with a non-empty expr and a legendFormat.
PROMTOOL = $(CLUSTER_BIN)/promtool
DASHBOARDS = $(wildcard charts/berth-operator/dashboards/*.json)

# Panels (rows aside) with no query, or a query without expr or legendFormat.
DASHBOARD_CHECK_JQ = [.panels[] | recurse(.panels[]?) | select(.type != "row") \
	| select((.targets // []) | length == 0 or any(.[]; ((.expr // "") | test("\\S") | not) or (has("legendFormat") | not))) \
	| .title] | if length > 0 then "\(input_filename): panels without a complete query: \(join(", "))\n" | halt_error(1) else true end
DASHBOARD_CHECK_PY = import json, sys; \
	bad = [f + ": " + str(p.get("title")) for f in sys.argv[1:] for p in json.load(open(f))["panels"] if p.get("type") != "row" \
	and (not p.get("targets") or any(not str(t.get("expr", "")).strip() or "legendFormat" not in t for t in p["targets"]))]; \
	bad and sys.exit("panels without a complete query:\n" + "\n".join(bad))

.PHONY: test-rules

test-rules: ## Prometheus rules (promtool check, unit tests in tests/monitoring/) and the Grafana dashboards' JSON; builds promtool once (minutes, cold)
	tests/cluster/build.sh promtool >/dev/null
	$(PROMTOOL) check rules charts/berth-operator/rules/*.yaml
	$(PROMTOOL) test rules tests/monitoring/*.test.yaml
	@if command -v jq >/dev/null; then \
		for f in $(DASHBOARDS); do jq -e '$(DASHBOARD_CHECK_JQ)' "$$f" >/dev/null || exit 1; done; \
	else python3 -c '$(DASHBOARD_CHECK_PY)' $(DASHBOARDS); fi
	@echo "dashboards: $(words $(DASHBOARDS)) parse, every panel has its queries"
