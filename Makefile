# Top-level entry points. The build itself is CMake; this file wires set-up, tests and tools.
#   make          build everything into build/bin (installs missing Debian packages first)
#   make test     build, run every test (unit, CLI, fuzz-corpus replay), then the same unit
#                 tests and replays under ASan+UBSan
#   make run      build and start a local single-node ledger (see README)
#   make asan     only the sanitizer run        make fuzz   libFuzzer for FUZZ_SECONDS each
#   make bench    benchmarks, results in bench/results.md, bench/load-results.md (with RSS at
#                 250k..1M entries), bench/slow-*-results.md and
#                 bench/attest-results.md (copy the figures into docs/performance.md)
#   make format   clang-format every C file
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
BENCH_BUILD ?= build-bench
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 60
CTEST_ARGS ?=

.PHONY: all deps build test unit asan fuzz bench format run clean

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_ARGS)

test: unit asan
	@echo "make test: all suites passed (normal and ASan+UBSan builds)"

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCLEDGER_SANITIZE=ON >/dev/null

# Unit tests and corpus replays under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j$(JOBS) -E '^cli_' $(CTEST_ARGS)

$(FUZZ_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLEDGER_FUZZ=ON >/dev/null

# Runs every libFuzzer target for FUZZ_SECONDS on a scratch copy of its corpus; new crashers land
# in the current directory as crash-*; add them to tests/fuzz/corpus/<target>/ once fixed.
fuzz: deps $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@set -e; for f in $(FUZZ_BUILD)/bin/fuzz_*; do \
	  t=$${f##*/fuzz_}; work=$$(mktemp -d); cp -r tests/fuzz/corpus/$$t/. $$work/; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$work 2>&1 | tail -3; \
	  rm -rf $$work; done

$(BENCH_BUILD)/CMakeCache.txt:
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

bench: deps $(BENCH_BUILD)/CMakeCache.txt
	cmake --build $(BENCH_BUILD) -j$(JOBS)
	bash bench/run.sh $(BENCH_BUILD)/bin
	LOAD_1M=$${LOAD_1M:-1} sh bench/load.sh $(BENCH_BUILD)/bin
	/usr/bin/python3 bench/slow_readers.py $(BENCH_BUILD)/bin
	/usr/bin/python3 bench/slow_uploads.py $(BENCH_BUILD)/bin
	sh bench/collections.sh $(BENCH_BUILD)/bin
	sh bench/attest.sh $(BENCH_BUILD)/bin

format:
	find src tests bench -name '*.[ch]' -not -path '*/node_modules/*' | xargs clang-format -i

run: build
	@bash scripts/run.sh $(BUILD)/bin

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(BENCH_BUILD)
