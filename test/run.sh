#!/usr/bin/env bash
# The test runner: unit suites (cmocka), fuzz corpora replayed through the
# plain driver, then the end-to-end suite (pytest, real programs on loopback).
# Usage: test/run.sh BUILD_DIR [unit|e2e|all] [pytest args...]
# Ends with one plain line: "N passed, N failed".
set -uo pipefail
build=${1:-build}; shift || true
what=${1:-all}; shift || true
passed=0; failed=0
failures=()

if [ "$what" = all ] || [ "$what" = unit ]; then
  for t in "$build"/test/*_test; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
    p=${p:-0}; f=${f:-0}
    # A crash or a sanitizer report counts as a failure even if cmocka said nothing.
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$f" -ne 0 ]; then
      failures+=("unit: $(basename "$t")"); printf '%s\n' "$out" | tail -30
    fi
    echo "unit $(basename "$t"): $p passed, $f failed"
  done
  for r in "$build"/test/replay_fuzz_*; do
    [ -x "$r" ] || continue
    name=$(basename "$r"); name=${name#replay_fuzz_}
    if out=$("$r" "test/fuzz/corpus/$name" 2>&1); then
      passed=$((passed + 1)); echo "fuzz corpus $name: $out"
    else
      failed=$((failed + 1)); failures+=("fuzz corpus: $name"); printf '%s\n' "$out" | tail -30
    fi
  done
fi

if [ "$what" = all ] || [ "$what" = e2e ]; then
  py=/usr/bin/python3   # Debian's, where python3-pytest is installed
  log=$(mktemp)
  CATENA_BUILD=$(realpath "$build") "$py" -m pytest -p no:cacheprovider -q -ra test/e2e "$@" \
      2>&1 | tee "$log"
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped)|no tests ran' "$log" | tail -1)
  p=$(printf '%s' "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
  f=$(printf '%s' "$summary" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s += $1} END {print s + 0}')
  [ -n "$summary" ] || { f=1; failures+=("e2e: pytest did not finish"); }
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ "${f:-0}" -ne 0 ] && failures+=("e2e: $f failed")
  rm -f "$log"
fi

for x in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $x"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
