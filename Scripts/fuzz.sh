#!/usr/bin/env bash
# Builds the fuzzing driver with libFuzzer and AddressSanitizer, then runs every target (or the ones named) for a
# number of seconds each (Docs/reliability.md).
#
#   Scripts/fuzz.sh [--seconds N] [--jobs J] [target ...]
#
# Each target starts from its seed corpus (Fuzz/corpus/<target>) and the inputs that once crashed it
# (Fuzz/regressions/<target>); what it learns is kept in .build-fuzz/corpus/<target> between runs. A crash is
# written to Fuzz/findings/<target>-crash-…: fix the code, move the input to Fuzz/regressions/<target>/ and
# `make test` replays it forever after. Prints CPU seconds, executions, coverage and findings per target.
set -euo pipefail
cd "$(dirname "$0")/.."

budget=60
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) budget="$2"; shift 2 ;;
    --seconds=*) budget="${1#--seconds=}"; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
    esac
done
case "$budget" in '' | *[!0-9]*) echo "fuzz: --seconds needs a whole number, not '$budget'." >&2; exit 2 ;; esac

swiftc_path="$(command -v swiftc)"
runtime=$(ls -d "$(dirname "$swiftc_path")"/../lib/clang/*/lib/linux 2>/dev/null | head -n 1)
fuzzer_lib="$runtime/libclang_rt.fuzzer_no_main-x86_64.a"
if [ ! -f "$fuzzer_lib" ]; then
    echo "fuzz: this Swift toolchain has no libFuzzer library ($fuzzer_lib)." >&2
    exit 2
fi

# -sanitize=fuzzer would link libFuzzer's own main, which clashes with the driver's; the same instrumentation is
# asked for piece by piece and the library without main is linked instead (Docs/reliability.md).
echo "Building the fuzzing driver (release, AddressSanitizer, coverage) in .build-fuzz…" >&2
swift build -c release --build-path .build-fuzz --product amanat-fuzz \
    -Xswiftc -sanitize=address \
    -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table \
    -Xswiftc -DAMANAT_LIBFUZZER -Xswiftc -g \
    -Xlinker "$fuzzer_lib" -Xlinker -lstdc++ >&2
driver=.build-fuzz/release/amanat-fuzz

if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("$driver" list | cut -d' ' -f1)
fi

# The Swift runtime's crash handler would read the crashing stack itself and trip the sanitizer; libFuzzer's own
# handler reports the trap and writes the input. Leak checking is off: the Swift runtime's caches read as leaks.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"

# Targets that read a file write each input to a private folder: in memory when the machine has /dev/shm.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

mkdir -p Fuzz/findings .build-fuzz/logs
summary=()
found=0
for target in "${targets[@]}"; do
    max_len=$("$driver" list | awk -v t="$target" '$1 == t { print $2 }')
    if [ -z "$max_len" ]; then echo "fuzz: no target named $target." >&2; exit 2; fi
    work=.build-fuzz/corpus/$target
    mkdir -p "$work" "Fuzz/corpus/$target" "Fuzz/regressions/$target"
    log=.build-fuzz/logs/$target.log
    echo "Fuzzing $target for ${budget}s…" >&2
    status=0
    /usr/bin/time -f "%U %S" -o ".build-fuzz/logs/$target.time" \
        "$driver" "$target" -max_total_time="$budget" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="Fuzz/findings/$target-" \
        "$work" "Fuzz/corpus/$target" "Fuzz/regressions/$target" >"$log" 2>&1 || status=$?
    cpu=$(awk '{ printf "%.0f", $1 + $2 }' ".build-fuzz/logs/$target.time" 2>/dev/null || echo "?")
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
    corpus=$(sed -n 's/.*corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
    verdict="no crash"
    if [ "$status" -ne 0 ]; then
        verdict="FINDING (see $log)"
        found=1
    fi
    summary+=("$(printf '%-12s %6ss cpu %12s runs  cov %-6s ft %-6s corpus %-10s %s' \
        "$target" "$cpu" "${runs:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$verdict")")
done

echo
printf '%s\n' "${summary[@]}"
exit $found
