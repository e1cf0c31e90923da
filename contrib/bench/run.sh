#!/usr/bin/env bash
# `make bench`: figures, not pass/fail. Starts nginx and catena on loopback
# in a scratch directory and prints throughput and request rates through
# catena beside the same measurement made directly against the origin.
set -euo pipefail
build=$(realpath "${1:-build}")
exec /usr/bin/python3 "$(dirname "$0")/bench.py" --build "$build" "${@:2}"
