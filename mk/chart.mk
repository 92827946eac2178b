# The Helm charts (charts/) and the operator image. `make test-chart` proves
# the chart's RBAC: every operator e2e scenario, with the operator running as
# the chart's ServiceAccount (a token from `kubectl create token`) instead of
# the cluster admin. The chart's own tests (lint, template, install, upgrade,
# uninstall, scoped mode, a missing rule) are chart:: in `make test-e2e`.
# A 403 that only makes the operator log a warning (an event it could not
# record) fails the target too: no operator log of the run may say forbidden.
HELM = $(CLUSTER_BIN)/helm
CHART_RELEASE ?= berth-rbac
CHART_NAMESPACE ?= berth-rbac
CHART_KUBECONFIG := target/chart/$(CHART_RELEASE).kubeconfig

.PHONY: chart-lint test-chart chart-package operator-image operator-image-check

chart-lint: ## helm lint --strict both charts
	$(HELM) lint --strict charts/berth-operator charts/berth-services

# After test-e2e under `make test`, so the two suites do not share the 2 cores.
test-chart: cluster-up run-clear operator-build $(if $(filter test,$(MAKECMDGOALS)),test-e2e) ## every operator e2e scenario with only the chart's ClusterRole (installs, then uninstalls, release berth-rbac)
	cargo build -p berth-e2e --tests
	@mkdir -p target/chart
	export KUBECONFIG=$${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig} KUBECTL=$(CLUSTER_BIN)/kubectl; \
	trap '$(HELM) uninstall $(CHART_RELEASE) -n $(CHART_NAMESPACE) --wait >/dev/null 2>&1; rm -f $(CHART_KUBECONFIG)' EXIT; \
	$(HELM) upgrade --install $(CHART_RELEASE) charts/berth-operator -n $(CHART_NAMESPACE) --create-namespace \
		--wait --timeout 120s --force-conflicts >/dev/null && \
	tests/chart/sa-kubeconfig.sh $(CHART_NAMESPACE) $(CHART_RELEASE)-berth-operator $(CHART_KUBECONFIG) 2h && \
	touch target/chart/started && \
	BERTH_E2E_OPERATOR_KUBECONFIG=$(CURDIR)/$(CHART_KUBECONFIG) \
		cargo test -p berth-e2e --test e2e -- --skip chart:: --test-threads=$${E2E_THREADS:-3} && \
	{ denied=$$(find target/e2e-logs -name 'operator-*.log' -newer target/chart/started -exec grep -il forbidden {} +); \
	  [ -z "$$denied" ] || { echo "test-chart: the operator was refused a call (events and lease calls only log it):" $$denied; exit 1; }; }

chart-package: ## package both charts into target/chart/ (the CRD symlink is packaged as a file)
	$(HELM) package charts/berth-operator charts/berth-services -d target/chart

operator-image: ## build the operator's container image with podman or buildah (needs registry access for the base images)
	engine=$$(command -v podman || command -v buildah || command -v docker) && \
	$$engine build -f Containerfile --target berth-operator -t berth/berth-operator:dev .

operator-image-check: ## without registry access: the Containerfile's scratch stages around static binaries (operator, item, order), run by buildah (chroot)
	tests/chart/image-runtime-check.sh
