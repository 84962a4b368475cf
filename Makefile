# Amanat — the two commands of the quick start are `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/amanat

.PHONY: setup build demo test bench load fuzz format format-check clean

setup:
	@Scripts/setup.sh

build: setup
	$(SWIFT) build

demo: build
	@Scripts/demo.sh $(BIN)

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: setup
	$(SWIFT) build -c release --product amanat-bench
	$(SWIFT) build -c release --product amanat-load
	.build/release/amanat-bench
	.build/release/amanat-load --out Benchmarks/load-results.json
	@python3 Scripts/perf-table.py >/dev/null && echo "Docs/performance.md updated from Benchmarks/results.json"

# Load test of the relay on loopback: AMANAT_LOAD_CLIENTS (50), AMANAT_LOAD_SECONDS (20), AMANAT_LOAD_VAULTS (10).
load: setup
	$(SWIFT) build -c release --product amanat-load
	.build/release/amanat-load --out Benchmarks/load-results.json

# Fuzzing with libFuzzer and AddressSanitizer (Docs/reliability.md): every target for SECONDS seconds (60).
# SECONDS is passed on as an option: inside bash it is a variable that counts up by itself.
fuzz: setup
	@Scripts/fuzz.sh --seconds $(or $(SECONDS),60)

# Formatting (.swift-format: 4 spaces, 120 columns). AlwaysUseLowerCamelCase is off because the JSON contracts
# (status --json, bundle documents) use snake_case keys, mirrored by Codable property names.
format:
	swift-format format --in-place --recursive Sources Tests Benchmarks Package.swift

format-check:
	swift-format lint --strict --recursive Sources Tests Benchmarks Package.swift

clean:
	rm -rf .build
