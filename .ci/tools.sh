#!/usr/bin/env bash
# Installs every tool the build and the tests need, skipping each one that is
# already present at the pinned version. Safe to run again and again: a warm
# run only compares versions. Only registries are used (crates.io, npm,
# Debian's apt): nothing is downloaded from anywhere else.
set -euo pipefail

WASM_PACK_VERSION=0.15.1
# Must equal the `wasm-bindgen = "=X"` pin in Cargo.toml (checked below).
WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = { *version = "=\([0-9.]*\)".*/\1/p; s/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' "$(dirname "$0")/../Cargo.toml" | head -n1)
: "${WASM_BINDGEN_VERSION:?could not read the wasm-bindgen pin from Cargo.toml}"

say() { printf '\033[1m[tools]\033[0m %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

export PATH="$HOME/.cargo/bin:$PATH"

# 1. The wasm32 target.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
# rustfmt and clippy are part of `make test`.
for comp in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$comp"; then
    say "adding rust component $comp"
    rustup component add "$comp"
  fi
done

# 2. Chromium and its driver from Debian (never a browser download).
if ! have chromium || ! have chromedriver; then
  say "installing chromium and chromium-driver from apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

# 2b. PostgreSQL from Debian, for the demo's end-to-end tests against a real server (tests/pg.sh
#     starts a throwaway cluster; the package's own cluster is not used).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  say "installing postgresql from apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql
fi

# 3. wasm-pack at the pinned version.
if ! have wasm-pack || [ "$(wasm-pack --version | awk '{print $2}')" != "$WASM_PACK_VERSION" ]; then
  say "cargo install wasm-pack $WASM_PACK_VERSION (a few minutes)"
  cargo install wasm-pack --version "=$WASM_PACK_VERSION" --locked --force
fi

# 4. wasm-bindgen-cli matching the library pin exactly, or wasm-pack would try
#    to download one. `--locked` fails for some versions (a locked dependency is
#    gone from the index), so fall back to an unlocked install.
if ! have wasm-bindgen || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --locked --force \
    || cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force
fi

say "ok: $(wasm-pack --version), $(wasm-bindgen --version), $(chromium --version 2>/dev/null | head -n1)"
