# micro-sync: `make demo` builds and serves the demo, `make test` runs every check.
# Both install what is missing first (.ci/tools.sh), skipping what is already there.

SHELL := /bin/bash
export PATH := $(CURDIR)/tests/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
WASM_PACK_FLAGS := --mode no-install
CHROMEDRIVER = $(shell command -v chromedriver)

.PHONY: tools test build bench demo fmt-check clippy host-test browser-test type-test js-test pg-test clean

tools:
	@bash .ci/tools.sh
	@# npm 11 writes only this platform's optional packages (rollup, esbuild) into the lock, and
	@# `npm ci` then refuses it; `npm install` resolves the same pinned versions.
	@if [ ! -x tests/node_modules/.bin/wasm-opt ] || [ ! -x tests/node_modules/.bin/vite ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then \
	  echo "[tools] npm (tests/)"; cd tests && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error; }; fi
	@if [ ! -d www/node_modules/@electric-sql/pglite ] || [ www/package-lock.json -nt www/node_modules/.package-lock.json ]; then \
	  echo "[tools] npm (www/)"; cd www && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error; }; fi
	@# The fixture apps (Vite + Vue, Nuxt 3, Nuxt 4) that tests/js/fixtures.test.mjs builds; npm's
	@# cache keeps a reinstall fast.
	@for app in tests/fixtures/*/; do \
	  if [ ! -d $$app/node_modules/.bin ] || [ $$app/package-lock.json -nt $$app/node_modules/.package-lock.json ]; then \
	    echo "[tools] npm ($$app)"; (cd $$app && { npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error; }) || exit 1; fi; done

test: tools fmt-check clippy host-test browser-test build type-test js-test pg-test
	@echo "make test: all checks passed"

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --all-targets -- -D warnings

host-test:
	cargo test

browser-test:
	@bash .ci/browser-test.sh "$(CHROMEDRIVER)"

# Assembles the npm package in pkg/ from wasm-pack output plus pkg-template/.
build: tools
	wasm-pack build --release --target web $(WASM_PACK_FLAGS) --out-dir target/wasm-pack --out-name micro_sync
	rm -rf pkg && mkdir -p pkg
	cp target/wasm-pack/micro_sync.js target/wasm-pack/micro_sync_bg.wasm pkg/
	cp -R pkg-template/. pkg/
	cd pkg && node dev-entry.build.mjs && rm dev-entry.build.mjs
	cp README.md LICENSE pkg/
	@for f in pkg/micro_sync_bg.wasm pkg/micro_sync.js pkg/index.js; do \
	  printf '%-24s %8d bytes raw %8d bytes gzip\n' "$$(basename $$f)" "$$(wc -c < $$f)" "$$(gzip -9c $$f | wc -c)"; done

type-test:
	tsc -p tests/types
	@echo "type-test: tests/types/usage.ts type-checks against pkg/*.d.ts"

js-test:
	node --test --test-concurrency=1 tests/js/

# The demo's end-to-end tests again, against a real PostgreSQL server (a throwaway cluster).
pg-test:
	bash tests/pg.sh

# Benchmarks beside Dexie and raw IndexedDB (prints a table, writes BENCHMARKS.md).
bench: build
	node tests/bench/run.mjs

demo: build
	node www/server.mjs

clean:
	rm -rf pkg target tests/node_modules tests/artifacts
