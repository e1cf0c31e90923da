#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time over a scratch copy of its
# corpus (test/fuzz/corpus/<name>, name without the fuzz_ prefix), so the
# checked-in corpus only changes when a developer copies new finds in.
# Usage: test/fuzz/run.sh SECONDS BIN...
set -euo pipefail
secs=$1; shift
status=0
for bin in "$@"; do
  name=$(basename "$bin"); name=${name#fuzz_}
  work=$(mktemp -d)
  [ -d "test/fuzz/corpus/$name" ] && cp -r "test/fuzz/corpus/$name/." "$work/"
  echo "fuzz: $name for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="build/fuzz/$name-" "$work" >"build/fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see build/fuzz/$name.log and build/fuzz/$name-*"
    tail -40 "build/fuzz/$name.log"
    status=1
  else
    grep -E 'stat::number_of_executed_units|cov:' "build/fuzz/$name.log" | tail -2 | sed 's/^/  /'
  fi
  rm -rf "$work"
done
exit $status
