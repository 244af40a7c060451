// A small static server for the demo (and the JS tests): serves www/ at /, the built package at
// /pkg/, and the test tooling's node_modules at /node_modules/. Loopback only.
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".cjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};
const MOUNTS = [
  ["/pkg/", [join(root, "pkg")]],
  ["/node_modules/", [join(root, "www", "node_modules"), join(root, "tests", "node_modules")]],
  ["/tests/", [join(root, "tests")]],
  ["/", [join(root, "www")]],
];

async function resolveFile(path) {
  const [prefix, dirs] = MOUNTS.find(([p]) => path.startsWith(p));
  for (const dir of dirs) {
    let file = normalize(join(dir, path.slice(prefix.length)));
    if (!file.startsWith(dir)) break;
    const info = await stat(file).catch(() => null);
    if (info?.isDirectory()) file = join(file, "index.html");
    if (info) return file;
  }
  throw Object.assign(new Error("not found"), { code: "ENOENT" });
}

/** `api(req, res)` may answer a request first (return true when it did). */
export function startServer(port = 0, api = null) {
  const server = createServer(async (req, res) => {
    try {
      if (api && (await api(req, res))) return;
      const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
      const file = await resolveFile(path);
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(body);
    } catch (e) {
      res.writeHead(e.code === "ENOENT" || e.code === "EISDIR" ? 404 : 500, { "content-type": "text/plain" });
      res.end(e.code === "ENOENT" ? "not found" : String(e.message));
    }
  });
  return new Promise((ok) => server.listen(port, "127.0.0.1", () => ok(server)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { createBackend } = await import("./backend.mjs");
  const backend = await createBackend();
  const server = await startServer(Number(process.env.PORT ?? 8080), backend.handle);
  const db = process.env.DATABASE_URL ? "PostgreSQL (DATABASE_URL)" : `PGlite in ${process.env.DEMO_DATA_DIR ?? "www/.data"}`;
  console.log(`micro-sync demo: http://127.0.0.1:${server.address().port}/  (backend: ${db})`);
}
