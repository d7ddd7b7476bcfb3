# Loopy: `make run` (as root) runs Loopy on this machine; `make test` runs the tests.
# Both set up what they need first: Debian packages (when root and missing) and a
# virtualenv in .venv with Loopy installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# libpcap compiles capture filters; the rest are the end-to-end tests' real clients,
# and the attack tests' real attack tools (tests/support/attacks.py, also bench/detect).
RUN_DEBS := libpcap0.8
TEST_DEBS := libpcap0.8 dnsutils tcpdump tmux iproute2 procps \
	nmap hping3 dsniff iputils-arping iputils-ping curl
# The capture benchmark's contenders (tcpdump, tshark), the generator's compiler and
# headers, and the tools it reads the host's counters with (procps, iproute2).
BENCH_DEBS := tcpdump tshark gcc libc6-dev libpcap0.8 procps iproute2
BENCH_DIR := build/bench
BENCH_ARGS ?=
BENCH_DETECT_ARGS ?=
BENCH_MESH_ARGS ?=
BENCH_HISTORY_ARGS ?=
SOURCES := pyproject.toml $(shell find loopy twisted -name '*.py' 2>/dev/null)

.PHONY: run test setup debs-run debs-test bench bench-detect bench-mesh bench-history debs-bench clean

run: debs-run setup
	$(BIN)/loopy-local

test: debs-test setup
	cd $(CURDIR) && $(BIN)/python -m twisted.trial tests

# As root: sends only on lo; prints one table and the ratios (bench/README.md).
# `make bench BENCH_ARGS=--quick` for a ~2 minute run.
bench: debs-bench setup
	mkdir -p $(BENCH_DIR)
	gcc -O2 -Wall -o $(BENCH_DIR)/trafficgen bench/trafficgen.c
	$(BIN)/python bench/capture --build $(BENCH_DIR) $(BENCH_ARGS)

# As root: attacks in network namespaces it makes; detection latency per detector
# and false alerts (bench/README.md), about 5 minutes; BENCH_DETECT_ARGS=--quick: 1.5.
bench-detect: debs-test setup
	$(BIN)/python bench/detect $(BENCH_DETECT_ARGS)

# 5 hubs (a full mesh on 127.0.0.1) x 500 simulated agents: propagation, gossip octets,
# hub CPU (bench/README.md), about 1.5 minutes; needs no root.
bench-mesh: setup
	$(BIN)/python bench/mesh $(BENCH_MESH_ARGS)

# The hub's SQLite history: write throughput, CPU at 500 agents x 1 report/s, database
# size per agent per day, against a compressed JSON-lines log (bench/README.md); about
# 1.5 minutes, needs no root.
bench-history: setup
	$(BIN)/python bench/history $(BENCH_HISTORY_ARGS)

setup: $(VENV)/.installed

$(VENV)/.installed: $(SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Loopy needs Python 3.11 or newer ($(PYTHON) is older)"; exit 1; }
	$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian, apt-get install python3-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet .
	touch $@

debs-run:
	@sh .ci/debs $(RUN_DEBS)

debs-test:
	@sh .ci/debs $(TEST_DEBS)

debs-bench:
	@sh .ci/debs $(BENCH_DEBS)

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp
