#!/usr/bin/env bash
# The demo's end-to-end tests (tests/js/demo.test.mjs) against a real PostgreSQL server: a
# throwaway cluster in a temporary directory, on a free port, removed afterwards. `make test`
# runs it after the same tests ran against the embedded database (PGlite).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/initdb" ] || { echo "pg.sh: PostgreSQL is not installed (make tools installs Debian's postgresql)"; exit 1; }

# PostgreSQL refuses to run as root: as root, the cluster belongs to the package's postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(mktemp -d /tmp/micro-sync-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
cleanup() {
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -k $dir -h 127.0.0.1 -F" start >/dev/null
echo "pg.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on port $port"
DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres" node --test --test-concurrency=1 tests/js/demo.test.mjs
