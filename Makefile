# Amanat — the two commands of the quick start are `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/amanat

.PHONY: setup build demo test man install bench load fuzz format format-check clean

PREFIX ?= /usr/local
MANPAGE := .build/plugins/GenerateManual/outputs/amanat/amanat.1

setup:
	@Scripts/setup.sh

build: setup
	$(SWIFT) build

demo: build
	@Scripts/demo.sh $(BIN)

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) package plugin generate-manual --configuration debug >/dev/null
	python3 Scripts/man-sections.py $(MANPAGE) $(BIN)
	$(SWIFT) test --skip-build

# The man page, generated from the same definitions as the help (swift-argument-parser's generate-manual plugin).
man: setup
	$(SWIFT) package plugin generate-manual --configuration debug
	python3 Scripts/man-sections.py $(MANPAGE) $(BIN)
	@echo "The man page is $(MANPAGE); read it with: man -l $(MANPAGE)"

# Installs the release build, its man page and shell completions (bash, zsh, fish) under PREFIX (/usr/local);
# DESTDIR stages the files elsewhere, as packagers expect.
install: setup man
	$(SWIFT) build -c release --product amanat
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 .build/release/amanat $(DESTDIR)$(PREFIX)/bin/amanat
	install -m 644 $(MANPAGE) $(DESTDIR)$(PREFIX)/share/man/man1/amanat.1
	.build/release/amanat --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/amanat
	.build/release/amanat --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_amanat
	.build/release/amanat --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/amanat.fish
	@echo "Installed amanat, its man page and completions under $(DESTDIR)$(PREFIX)"

bench: setup
	@python3 -c "import loro" 2>/dev/null || python3 -m pip install --quiet loro 2>/dev/null \
		|| echo "The Loro package cannot be installed: B2 is measured without its CRDT peer."
	$(SWIFT) build -c release --product amanat-bench
	$(SWIFT) build -c release --product amanat-load
	$(SWIFT) build -c release --product amanat
	.build/release/amanat-bench
	.build/release/amanat-load --out Benchmarks/load-results.json
	.build/release/amanat-load --storage postgres --out Benchmarks/load-results-postgres.json
	@python3 Scripts/perf-table.py >/dev/null && echo "Docs/performance.md updated from Benchmarks/results.json"

# Load test of the relay on loopback: AMANAT_LOAD_CLIENTS (50), AMANAT_LOAD_SECONDS (20), AMANAT_LOAD_VAULTS (10).
# Twice: one relay over SQLite files, then two `amanat serve` processes over one PostgreSQL database (B7).
load: setup
	$(SWIFT) build -c release --product amanat-load
	$(SWIFT) build -c release --product amanat
	.build/release/amanat-load --out Benchmarks/load-results.json
	.build/release/amanat-load --storage postgres --out Benchmarks/load-results-postgres.json
	@python3 Scripts/perf-table.py >/dev/null && echo "Docs/performance.md updated with both B7 rows"

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
