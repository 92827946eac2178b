# A PNG of panels of Berth's Grafana dashboards, drawn from the local
# Prometheus without Grafana (scripts/monitoring/plot-panel.py; its --help
# lists the options). matplotlib, pinned in scripts/monitoring/requirements.txt,
# goes into a venv of its own under ~/.cache/berth, made again when the list
# changes. E.g. (bench/monitoring/README.md):
#   make monitoring-plot ARGS="--microservice plotdemo --minutes 4 --output bench/monitoring/plotdemo.png"

PLOT_VENV ?= $(HOME)/.cache/berth/venv-plot
PLOT_PYTHON ?= python3

.PHONY: monitoring-plot

monitoring-plot: $(PLOT_VENV)/requirements.txt ## PNG of dashboard panels from the local Prometheus (default: item's request rate above its replicas, last 10 min, into target/monitoring/): make monitoring-plot ARGS="--microservice item --minutes 5 --output x.png"
	$(PLOT_VENV)/bin/python scripts/monitoring/plot-panel.py $(ARGS)

# The installed list, copied last: a failed install is retried next time.
$(PLOT_VENV)/requirements.txt: scripts/monitoring/requirements.txt
	$(PLOT_PYTHON) -m venv $(PLOT_VENV)
	$(PLOT_VENV)/bin/pip install --quiet --disable-pip-version-check -r $<
	cp $< $@
