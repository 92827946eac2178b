# Scale benchmark of the operator (bench/scale/): on a cluster of its own
# (~/.cache/berth/cluster-scale, other ports), never the shared default one.
# Settings pass through: QUIET (s, > RESYNC), RESYNC (the operator's
# --resync-seconds in the quiet interval), CONCURRENCY (the operator's
# --concurrency and the floors' parallel kubectl processes), PARALLEL,
# OLD_FLOOR=1 (also the floor of earlier rounds); see bench/scale/run.sh.
.PHONY: bench-scale bench-scale-10k

bench-scale: ## scale benchmark: N=100/500/1000 MicroServices against a fair floor, quiet interval with one full resync, then the operator alone at N=10000 (bench-scale-10k; skip it with N10K=); override: make bench-scale N="100 500" QUIET=120 RESYNC=60 CONCURRENCY=8 OLD_FLOOR=1; results in target/bench-scale
	BERTH_CLUSTER_DIR=$${BENCH_CLUSTER_DIR:-$(HOME)/.cache/berth/cluster-scale} QUIET=$${QUIET:-180} bench/scale/run.sh $(N)
	$(if $(N10K),$(MAKE) bench-scale-10k N=$(N10K))

N10K ?= 10000

bench-scale-10k: ## scale benchmark of the operator alone (bench/scale/run.sh --operator-only): N=10000 MicroServices at replicas 0, no autoscaling, no pods: converge, requests and bytes per MicroService, restart, one resync, API server APF figures (override: N=2000; alone: make bench-scale-10k N=10000); results in target/bench-scale
	BERTH_CLUSTER_DIR=$${BENCH_CLUSTER_DIR:-$(HOME)/.cache/berth/cluster-scale} QUIET=$${QUIET:-180} bench/scale/run.sh --operator-only $(N)
