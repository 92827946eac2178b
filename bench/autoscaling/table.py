#!/usr/bin/env python3
"""Prints the real-load rows of bench/autoscaling/results.md from the
figures the node scenarios wrote (bench/autoscaling/real-load.sh).

    bench/autoscaling/table.py DIR
"""

import json
import os
import sys


def load(directory, name):
    path = os.path.join(directory, f"{name}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"table.py: cannot read {path}: {e} (run bench/autoscaling/real-load.sh first)")


def latency(s):
    return f"{s['p50_ms']} / {s['p99_ms']} / {s['max_ms']}"


def failures(s):
    failed = {k: v for k, v in s["by_kind"].items() if not k.startswith("2")}
    return f"{s['failed']} of {s['sent']}" + (f" {failed}" if failed else "")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bench/autoscaling/table.py DIR")
    directory = sys.argv[1]
    print("| scenario | load | first scale-up (s) | all Ready (s) | p99 under target (s) | load dropped -> 1 (s) | failed | Berth's Deployment writes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in ("cpu", "requests-per-second"):
        f = load(directory, name)
        back = f["p99_back_under_target_s"]
        print(f"| {name} (1..{f['max_replicas']}) | {f['rate']}/s | {f['first_scale_up_s']:.1f} | {f['all_ready_s']:.1f} | "
              f"{'never over' if back is not None and back <= f['first_scale_up_s'] else back} | "
              f"{f['scale_down_after_drop_s']:.1f} | {failures(f['loaded'])} + {failures(f['trickle'])} | "
              f"{f['operator_deployment_writes']:g} |")
    print()
    print("| latency (ms, p50 / p99 / max) | cpu scenario | requests-per-second scenario |")
    print("| --- | --- | --- |")
    cpu, rps = load(directory, "cpu"), load(directory, "requests-per-second")
    print(f"| one item pod, before the first scale-up | {latency(cpu['loaded_one_pod'])} | {latency(rps['loaded_one_pod'])} |")
    print(f"| the autoscaled set, all Ready | {latency(cpu['loaded_scaled'])} | {latency(rps['loaded_scaled'])} |")
    print()
    r = load(directory, "rollout")
    print("| rollout | pods | load | duration (s) | requests served | failed | p99 (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {r['from'].split(':')[-1]} -> {r['to'].split(':')[-1]} | {r['replicas']} | {r['rate']}/s | {r['rollout_s']:.1f} | "
          f"{r['load']['sent'] - r['load']['failed']} | {failures(r['load'])} | {r['load']['p99_ms']} |")
    print()
    d = load(directory, "disruption")
    print("| pod lost under load | until replaced / Ready (s) | requests in that time | failed |")
    print("| --- | --- | --- | --- |")
    for label, key, seconds in (("deleted", "delete", "seconds_to_replaced"), ("evicted", "evict", "seconds_to_replaced"),
                                ("process SIGKILLed", "sigkill", "seconds_to_ready")):
        print(f"| {label} | {d[key][seconds]:.1f} | {d[key]['load']['sent']} | {failures(d[key]['load'])} |")


if __name__ == "__main__":
    main()
