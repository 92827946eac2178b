# Scale benchmark of the operator (bench/scale/): on a cluster of its own
# (~/.cache/berth/cluster-scale, other ports), never the shared default one.
.PHONY: bench-scale

bench-scale: ## scale benchmark: N=100/500/1000 MicroServices (override: make bench-scale N="100 500" QUIET=120); results in target/bench-scale
	BERTH_CLUSTER_DIR=$${BENCH_CLUSTER_DIR:-$(HOME)/.cache/berth/cluster-scale} QUIET=$${QUIET:-180} bench/scale/run.sh $(N)
