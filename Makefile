# Loopy: `make run` (as root) runs Loopy on this machine; `make test` runs the tests.
# Both set up what they need first: Debian packages (when root and missing) and a
# virtualenv in .venv with Loopy installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# libpcap compiles capture filters; the rest are the end-to-end tests' real clients.
RUN_DEBS := libpcap0.8
TEST_DEBS := libpcap0.8 dnsutils tcpdump tmux iproute2 procps
SOURCES := pyproject.toml $(shell find loopy twisted -name '*.py' 2>/dev/null)

.PHONY: run test setup debs-run debs-test bench clean

run: debs-run setup
	$(BIN)/loopy-local

test: debs-test setup
	cd $(CURDIR) && $(BIN)/python -m twisted.trial tests

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

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp
