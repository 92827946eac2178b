# Berth's entry points. `make run` brings up everything on a fresh machine;
# `make test` runs every test (it is what .ci/run calls). Each area keeps its
# targets in mk/<area>.mk.
SHELL := /bin/bash
.DEFAULT_GOAL := help

include $(sort $(wildcard mk/*.mk))

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'
