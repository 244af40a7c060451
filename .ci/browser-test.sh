#!/usr/bin/env bash
# Runs the wasm-bindgen browser suites in headless Chromium and fails unless at least one test ran
# (a suite without run_in_browser is silently skipped with exit 0).
set -euo pipefail
driver="${1:-$(command -v chromedriver)}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
wasm-pack test --headless --chrome --mode no-install --chromedriver "$driver" 2>&1 | tee "$log"
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$log" | awk '{s+=$4} END {print s+0}')
if [ "$passed" -lt 1 ]; then
  echo "browser-test: no browser test ran" >&2
  exit 1
fi
echo "browser-test: $passed browser tests passed in headless Chromium"
