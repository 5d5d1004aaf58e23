#!/bin/sh
# Run one libFuzzer harness for a bounded time, as a test:
#	run.sh HARNESS SEED_DIR WORK_DIR
# New inputs go to WORK_DIR (the seeds under tests/ stay as they are), a
# crash to WORK_DIR/crash-*. FUZZ_SECONDS (default 20) bounds the run and
# FUZZ_RSS_MB (default 2048) the memory; any crash, leak, sanitizer report
# or timeout fails the test (lsan.supp lists leaks that are libraries').
set -eu
harness=$1 seeds=$2 work=$3
mkdir -p "$work"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$(dirname "$0")/lsan.supp}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$harness" -max_total_time="${FUZZ_SECONDS:-20}" \
    -rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout=10 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$work/" "$work" "$seeds"
