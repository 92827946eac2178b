# Berth's entry points. `make run` brings up everything on a fresh machine;
# `make test` runs every test (it is what .ci/run calls). Each area keeps its
# targets in mk/<area>.mk; `make help` lists them all.
SHELL := /bin/bash
.DEFAULT_GOAL := help

include $(sort $(wildcard mk/*.mk))

.PHONY: help test

test: lint test-operator test-services test-contract test-custom-metrics test-rules test-e2e test-chart test-node test-faults ## every test: lint, operator unit tests, services on both stores, each service against its OpenAPI document, the custom metrics adapter's unit tests, the Prometheus rules' unit tests and the dashboards, e2e on the local cluster, the e2e scenarios again with only the chart's RBAC, the real node (images, chart, PostgreSQL), then the fault tests alone

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'
