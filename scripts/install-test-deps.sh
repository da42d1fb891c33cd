#!/usr/bin/env bash
# What the test suite needs beyond requirements.txt, installed only when missing:
# - promtool (Debian's prometheus package) for the alert-rule and /metrics checks;
# - anvil (npm's @foundry-rs/anvil, pinned in package-lock.json), the local EVM node of
#   the block-trigger tests;
# - Debian's chromium, driven by Playwright (never `playwright install`) in the page tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

stamp=node_modules/.package-lock.json
if [ ! -x node_modules/.bin/anvil ] || [ package-lock.json -nt "$stamp" ]; then
  echo "npm ci (anvil for the block-trigger tests)"
  npm ci --no-audit --no-fund --loglevel=error
fi
