# Amanat — the two commands of the quick start are `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/amanat

.PHONY: setup build demo test bench format-check clean

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
	.build/release/amanat-bench
	@python3 Scripts/perf-table.py >/dev/null && echo "Docs/performance.md updated from Benchmarks/results.json"

clean:
	rm -rf .build
