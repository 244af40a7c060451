// `make bench`: runs the workloads in headless Debian Chromium for each library, each in a fresh
// browser profile, several repetitions; prints medians with ratios to raw IndexedDB and writes
// BENCHMARKS.md at the repository root. `BENCH_ONLY=scale` (or `drain`) runs only that section and
// prints it (BENCHMARKS.md is left alone).
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { CHROMIUM_ARGS } from "../js/harness.mjs";
import { startServer } from "../../www/server.mjs";

const REPS = Number(process.env.BENCH_REPS ?? 5);
const SCALE_REPS = Number(process.env.BENCH_SCALE_REPS ?? 3);
const ONLY = process.env.BENCH_ONLY;
if (ONLY && ONLY !== "scale" && ONLY !== "drain") throw new Error(`BENCH_ONLY=${ONLY}: "scale" or "drain"`);
const root = fileURLToPath(new URL("../..", import.meta.url));
const LIBS = ["raw IndexedDB", "Dexie 4", "micro-sync", "micro-sync + outbox"];
const METRICS = [
  ["W1", "insert 1 row, awaited, ×2,000", "ops/s", true],
  ["W2", "insert 10,000 rows in one call", "ms", false],
  ["W3", "status = X, 20 ≤ age < 40, orderBy name, limit 50 (10,000 rows)", "ms/query", false],
  ["W4", "select all 10,000 rows", "ms", false],
  ["W5", "update 1 row ×1,000", "ops/s", true],
  ["W6", "delete 1 row ×1,000", "ops/s", true],
  ["W7", "100 users with their posts (1,000 users × 10 posts)", "ms", false],
  ["W8", "cold start: new page, open 10,000 persisted rows, W3", "ms", false],
  ["W9", "write → live view updated (Vue rows / Dexie liveQuery)", "ms", false],
  ["heapMB", "JS heap after W4", "MB", false],
  ["wasmMB", "WebAssembly memory after W4", "MB", false],
];

// The demo's backend (PGlite in memory) answers /api/* for W12.
process.env.DEMO_DATA_DIR = "memory://";
const { createBackend } = await import("../../www/backend.mjs");
const backend = await createBackend();
const server = await startServer(0, backend.handle);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: [...CHROMIUM_ARGS, "--enable-precise-memory-info"] });
const results = Object.fromEntries(LIBS.map((l) => [l, []]));

for (let rep = 0; rep < (ONLY ? 0 : REPS); rep++) {
  for (const lib of LIBS) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${origin}/tests/bench/page.html`);
    const tag = `${rep}`;
    const out = await page.evaluate(async ([lib, tag]) => (await import("/tests/bench/workloads.js")).runAll(lib, tag), [lib, tag]);
    await page.close();
    const cold = await context.newPage();
    await cold.goto(`${origin}/tests/bench/page.html`);
    out.W8 = await cold.evaluate(async ([lib, tag]) => {
      const t0 = performance.now();
      const w = await import("/tests/bench/workloads.js");
      return w.coldStart(lib, tag, t0);
    }, [lib, tag]);
    await context.close();
    results[lib].push(out);
    process.stdout.write(`rep ${rep + 1}/${REPS} ${lib}: ${JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v == null ? v : +v.toFixed(2)])))}\n`);
  }
}
// Worst-case inputs (micro-sync only): each repetition in a fresh profile.
const WORST = [
  ["like10k", "like: a 9,999-character pattern, near-matching everywhere, over one 100,000-character value", "ms"],
  ["like5kx200", "like: two 4,990-character segments, near-matching everywhere, over 200 rows of 20,000 characters", "ms"],
  ["or1000", "where: an or of 999 equality branches on one field over 10,000 rows", "ms"],
  ["or1000mixed", "where: an or of 999 branches on two fields over 10,000 rows", "ms"],
  ["in100k", "where: an in-list of 100,000 values over 10,000 rows (count)", "ms"],
  ["pull50k", "pull of 50,000 rows into IndexedDB: total", "ms"],
  ["pull50kBlock", "pull of 50,000 rows: longest time the page was blocked", "ms"],
];
const worstRuns = [];
for (let rep = 0; rep < (ONLY ? 0 : Math.min(REPS, 3)); rep++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/tests/bench/page.html`);
  const out = await page.evaluate(async () => (await import("/tests/bench/worst.js")).runWorst());
  await context.close();
  worstRuns.push(out);
  process.stdout.write(`worst cases rep ${rep + 1}: ${JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, +v.toFixed(1)])))}\n`);
}
// Scale: per (library, N) a fresh profile; one page writes N users, then two new pages (same profile,
// so the database persists) each time from before the import: to the first W3, and to the whole
// model in memory (then W3 warm and WebAssembly memory in that page).
// W12: 1,000 pending writes drained through the demo backend, batched and one request per write.
const DRAIN_N = 1000;
const DRAIN_MODES = ["batched", "single"];
const drainRuns = Object.fromEntries(DRAIN_MODES.map((m) => [m, []]));
for (let rep = 0; rep < (ONLY && ONLY !== "drain" ? 0 : Math.min(REPS, 3)); rep++) {
  for (const mode of DRAIN_MODES) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${origin}/tests/bench/page.html`);
    const out = await page.evaluate(async (args) => (await import("/tests/bench/drain.js")).drainPending(...args), [mode, DRAIN_N, `${rep}`]);
    await context.close();
    drainRuns[mode].push(out);
    process.stdout.write(`W12 rep ${rep + 1} ${mode}: ${out.requests} requests, ${out.ms.toFixed(0)} ms\n`);
  }
}
const SCALE_LIBS = ["Dexie 4", "micro-sync"];
const SCALE_NS = [10_000, 100_000];
const scaleRuns = Object.fromEntries(SCALE_LIBS.flatMap((l) => SCALE_NS.map((n) => [`${l} ${n}`, []])));
const coldPage = async (context, step, args) => {
  const page = await context.newPage();
  await page.goto(`${origin}/tests/bench/page.html`);
  const out = await page.evaluate(async ([step, ...args]) => {
    const t0 = performance.now();
    return (await import("/tests/bench/scale.js"))[step](...args, t0);
  }, [step, ...args]);
  await page.close();
  return out;
};
for (let rep = 0; rep < (ONLY === "drain" ? 0 : SCALE_REPS); rep++) {
  for (const n of SCALE_NS) {
    for (const lib of SCALE_LIBS) {
      const context = await browser.newContext();
      const args = [lib, n, `scale-${n}-${rep}`];
      const page = await context.newPage();
      await page.goto(`${origin}/tests/bench/page.html`);
      const populate = await page.evaluate(async (args) => (await import("/tests/bench/scale.js")).populate(...args), args);
      await page.close();
      const firstW3 = await coldPage(context, "coldFirstW3", args);
      const out = { populate, firstW3, ...(await coldPage(context, "coldWhole", args)) };
      if (lib === "micro-sync") Object.assign(out, await coldPage(context, "liveQueries", args));
      await context.close();
      scaleRuns[`${lib} ${n}`].push(out);
      process.stdout.write(`scale rep ${rep + 1}/${SCALE_REPS} ${lib} ${n} rows: ${JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v == null ? v : +v.toFixed(2)])))}\n`);
    }
  }
}
await browser.close();
server.close();
await backend.close();

const median = (xs) => {
  const v = xs.filter((x) => x != null).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : null;
};
const fmt = (v) => (v == null ? "–" : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const check = (ok) => (ok ? "met" : "missed");

const sc = (lib, n, k) => median(scaleRuns[`${lib} ${n}`].map((r) => r[k]));
const MB = 2 ** 20;
let scaleTable = "| rows | rows as JSON (MB) | micro-sync WebAssembly memory (MB, bytes/row, × JSON) | W3 warm (ms) micro-sync / Dexie | cold: first W3 (ms) micro-sync / Dexie | cold: whole model (ms) micro-sync / Dexie |\n|---|---|---|---|---|---|\n";
for (const n of SCALE_NS) {
  const json = sc("micro-sync", n, "jsonBytes");
  const wasm = sc("micro-sync", n, "wasmBytes");
  const both = (k) => `${fmt(sc("micro-sync", n, k))} / ${fmt(sc("Dexie 4", n, k))}`;
  scaleTable += `| ${n.toLocaleString("en")} | ${fmt(json / MB)} | ${fmt(wasm / MB)} MB, ${(wasm / n).toFixed(0)} B/row, ${(wasm / json).toFixed(2)}× | ${both("w3Warm")} | ${both("firstW3")} | ${both("whole")} |\n`;
}
const [n1, n2] = SCALE_NS;
const msScale = (n, k) => sc("micro-sync", n, k);
const scaleTargets = [
  ["WebAssembly memory at 100,000 rows ≤ 3× the rows' JSON", `${(msScale(n2, "wasmBytes") / msScale(n2, "jsonBytes")).toFixed(2)}×`, msScale(n2, "wasmBytes") <= 3 * msScale(n2, "jsonBytes")],
  ["W3 at 100,000 rows ≤ 5 ms warm", `${fmt(msScale(n2, "w3Warm"))} ms`, msScale(n2, "w3Warm") <= 5],
  ["W3 at 100,000 rows ≤ 12× the 10,000-row time", `${(msScale(n2, "w3Warm") / msScale(n1, "w3Warm")).toFixed(1)}×`, msScale(n2, "w3Warm") <= 12 * msScale(n1, "w3Warm")],
  ["cold start at 100,000 rows: first W3 ≤ 200 ms", `${fmt(msScale(n2, "firstW3"))} ms`, msScale(n2, "firstW3") <= 200],
  ["cold start at 100,000 rows: whole model ≤ 800 ms", `${fmt(msScale(n2, "whole"))} ms`, msScale(n2, "whole") <= 800],
];
let liveTable = "| rows | W10: commit → callback (ms) | W10 beyond the commit (ms) | W11: commit → callback (ms) | W11 beyond the commit (ms) |\n|---|---|---|---|---|\n";
for (const n of SCALE_NS) {
  liveTable += `| ${n.toLocaleString("en")} | ${fmt(msScale(n, "W10commit"))} → ${fmt(msScale(n, "W10"))} | ${fmt(msScale(n, "W10beyond"))} | ${fmt(msScale(n, "W11commit"))} → ${fmt(msScale(n, "W11"))} | ${fmt(msScale(n, "W11beyond"))} |\n`;
}
scaleTargets.push(
  ["W10 at 100,000 rows: callback ≤ 2 ms beyond the write's commit", `${fmt(msScale(n2, "W10beyond"))} ms`, msScale(n2, "W10beyond") <= 2],
  ["W11 at 100,000 rows (100 live queries): ≤ 10 ms", `${fmt(msScale(n2, "W11"))} ms (${fmt(msScale(n2, "W11beyond"))} beyond the commit)`, msScale(n2, "W11") <= 10],
);
const dm = (mode, k) => median(drainRuns[mode].map((r) => r[k]));
const drainTable = `| W12: drain ${DRAIN_N.toLocaleString("en")} pending writes | requests | ms | writes/s |\n|---|---|---|---|\n${DRAIN_MODES.map((m) => `| ${m === "batched" ? "sync.mutations, batchSize 100" : "sync.mutation, one request per write"} | ${fmt(dm(m, "requests"))} | ${fmt(dm(m, "ms"))} | ${dm(m, "ms") ? fmt((DRAIN_N / dm(m, "ms")) * 1000) : "–"} |`).join("\n")}\n`;
const drainTargets = [["W12: 1,000 pending writes drain in ≤ 12 requests", `${fmt(dm("batched", "requests"))} requests, ${fmt(dm("batched", "ms"))} ms (one per write: ${fmt(dm("single", "ms"))} ms)`, dm("batched", "requests") <= 12]];
const tableOf = (rows) => `| target | measured | |\n|---|---|---|\n${rows.map(([t, m, ok]) => `| ${t} | ${m} | ${check(ok)} |\n`).join("")}`;
if (ONLY === "drain") {
  console.log(`\n${drainTable}\n${tableOf(drainTargets)}\n(BENCH_ONLY=drain: BENCHMARKS.md not written)`);
  process.exit(0);
}
if (ONLY) {
  console.log(`\n${scaleTable}\n${liveTable}\n${tableOf(scaleTargets)}\n(BENCH_ONLY=scale: BENCHMARKS.md not written)`);
  process.exit(0);
}

const med = Object.fromEntries(LIBS.map((l) => [l, Object.fromEntries(METRICS.map(([k]) => [k, median(results[l].map((r) => r[k]))]))]));
const ratio = (lib, k) => {
  const r = med["raw IndexedDB"][k];
  const v = med[lib][k];
  return r && v != null ? ` (${(v / r).toFixed(2)}×)` : "";
};

const gz = (f) => gzipSync(readFileSync(`${root}/pkg/${f}`), { level: 9 }).length;
const pkgFiles = ["micro_sync_bg.wasm", "micro_sync.js", "index.js"];
const pkgGzip = pkgFiles.reduce((s, f) => s + gz(f), 0);

const ms = med["micro-sync"];
const mso = med["micro-sync + outbox"];
const dx = med["Dexie 4"];
const rw = med["raw IndexedDB"];
const targets = [
  ["W3 ≥ 20× faster than Dexie", `${(dx.W3 / ms.W3).toFixed(1)}×`, dx.W3 / ms.W3 >= 20],
  ["W1 ops/s ≥ Dexie (local / with outbox)", `${fmt(ms.W1)} / ${fmt(mso.W1)} vs ${fmt(dx.W1)}`, ms.W1 >= dx.W1 && mso.W1 >= dx.W1],
  ["W5 ops/s ≥ Dexie (local / with outbox)", `${fmt(ms.W5)} / ${fmt(mso.W5)} vs ${fmt(dx.W5)}`, ms.W5 >= dx.W5 && mso.W5 >= dx.W5],
  ["W6 ops/s ≥ Dexie (local / with outbox)", `${fmt(ms.W6)} / ${fmt(mso.W6)} vs ${fmt(dx.W6)}`, ms.W6 >= dx.W6 && mso.W6 >= dx.W6],
  ["W2 within 1.2× of raw IndexedDB", `${(ms.W2 / rw.W2).toFixed(2)}×`, ms.W2 / rw.W2 <= 1.2],
  ["W7 ≥ 2× faster than Dexie", `${(dx.W7 / ms.W7).toFixed(1)}×`, dx.W7 / ms.W7 >= 2],
  ["W8 no slower than Dexie", `${fmt(ms.W8)} vs ${fmt(dx.W8)} ms`, ms.W8 <= dx.W8],
  ["package (wasm + js) ≤ 120 KB gzip", `${(pkgGzip / 1024).toFixed(1)} KB`, pkgGzip <= 120 * 1024],
  ...scaleTargets,
  ...drainTargets,
];

let table = `| workload | unit | ${LIBS.join(" | ")} |\n|---|---|${LIBS.map(() => "---").join("|")}|\n`;
for (const [k, label, unit] of METRICS) {
  table += `| ${k}: ${label} | ${unit} | ${LIBS.map((l) => fmt(med[l][k]) + (k.startsWith("W") ? ratio(l, k) : "")).join(" | ")} |\n`;
}
const targetTable = tableOf(targets);

let worstTable = "| case | unit | micro-sync |\n|---|---|---|\n";
for (const [k, label, unit] of WORST) worstTable += `| ${label} | ${unit} | ${fmt(median(worstRuns.map((r) => r[k])))} |\n`;

const chromiumVersion = execFileSync("/usr/bin/chromium", ["--version"], { encoding: "utf8" }).trim();
const dexieVersion = JSON.parse(readFileSync(`${root}/tests/node_modules/dexie/package.json`, "utf8")).version;
const msVersion = JSON.parse(readFileSync(`${root}/pkg/package.json`, "utf8")).version;
// Package size per build: the rows of the previous BENCHMARKS.md are kept, and this build's row
// (by commit) is added or replaced, so the table shows how the size moved from build to build.
const SIZE_HEAD = "| build | date | micro_sync_bg.wasm | micro_sync.js | index.js | total (KB gzip -9) |\n|---|---|---|---|---|---|\n";
const commit = (() => {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "src", "Cargo.toml", "pkg-template"], { cwd: root, encoding: "utf8" }).trim();
    return dirty ? `${head}+changes` : head;
  } catch {
    return "unknown";
  }
})();
const previous = (() => {
  try {
    const old = readFileSync(`${root}/BENCHMARKS.md`, "utf8");
    const section = old.split("## Package size by build")[1] ?? "";
    return section.split("\n").filter((l) => /^\| [^-b|]/.test(l) && !l.startsWith("| build"));
  } catch {
    return [];
  }
})();
const sizeRow = `| ${commit} | ${new Date().toISOString().slice(0, 10)} | ${pkgFiles.map((f) => (gz(f) / 1024).toFixed(1)).join(" | ")} | ${(pkgGzip / 1024).toFixed(1)} |`;
const sizeTable = SIZE_HEAD + [...previous.filter((l) => !l.startsWith(`| ${commit} |`)), sizeRow].join("\n") + "\n";

const doc = `# Benchmarks

Generated by \`make bench\` on ${new Date().toISOString().slice(0, 10)}: headless ${chromiumVersion}, ${cpus().length} × ${cpus()[0]?.model ?? "CPU"},
Node ${process.version}; micro-sync ${msVersion} (release build), Dexie ${dexieVersion}. Each library ran in a fresh browser
profile, ${REPS} repetitions; the table shows medians, with each workload's ratio to raw IndexedDB in parentheses
(for ops/s higher is better, for ms lower is better). Data: 10,000 generated users {id, name, email, age, status}
and 1,000 users × 10 posts, fixed seed. Every library stores the same IndexedDB layout: users indexed on
status and name, posts on userId. W3, W7 and W8 answers are checked against a plain-JS reference.
"micro-sync + outbox" uses models with a \`sync.mutation\` hook that succeeds at once, so every write also
commits an outbox entry and is pushed (W8's database is written with the push finished, so it opens with an
empty outbox).

${table}
Package: ${pkgFiles.map((f) => `${f} ${(gz(f) / 1024).toFixed(1)} KB`).join(", ")}; total ${(pkgGzip / 1024).toFixed(1)} KB gzip.

## Targets

${targetTable}
## Worst cases

Inputs chosen to be slow (SPEC 9: nothing an app or a backend sends may block the page for long);
medians of ${worstRuns.length} runs, answers checked.

${worstTable}
## Scale

${SCALE_NS.map((n) => n.toLocaleString("en")).join(" and ")} users as above, each library and N in a fresh profile: one page writes them (micro-sync: \`insert\` of
10,000 rows at a time; Dexie: bulkAdd) and closes; new pages are timed from before the library's import to the first W3
answer, and to every row in memory (micro-sync: \`count()\` without \`where\`; Dexie: \`toArray()\`), then W3 warm (5 runs, then
the mean of 50) and \`memoryUsage().wasmBytes\` in that page; medians of ${SCALE_REPS} runs, answers checked.

${scaleTable}
## Live queries

In the page of the scale section's whole-model load (micro-sync): W10 opens one live query (status = X,
orderBy name, limit 50) and, 30 rounds, updates the email of a row in its answer, timing the call to the write's
resolution (its commit) and to the callback with the new answer; W11 does the same with 100 different live
queries open (10 statuses × 10 age ranges, each orderBy name, limit 50), timing to the callback of the query holding the row (every query is brought up to date before any callback runs). Medians.
The callback runs on the microtask queue right after the commit, before the write's own promise resolves to
its caller, so "beyond the commit" is the difference of two readings of a clock Chromium rounds to 0.1 ms. The
anchor: TanStack DB reports 0.7 ms to update one row in a sorted 100,000-row collection held in memory (no
storage write).

${liveTable}
## Sync: draining pending writes

W12: a page makes ${DRAIN_N.toLocaleString("en")} inserts (one call each, IndexedDB storage) while its network detector says offline, then
says online; timed until the outbox is empty, against the demo's backend (\`www/backend.mjs\`, PGlite in memory, in this
Node process, over loopback HTTP), which applies a batch in one transaction and deduplicates by mutation id. Fresh
profile per run; medians of ${drainRuns.batched.length} runs; the backend's counters check that each write arrived.

${drainTable}
## Package size by build

Release builds (\`make build\`), gzip level 9; one row per build this file was generated for (older rows kept).

${sizeTable}`;
writeFileSync(`${root}/BENCHMARKS.md`, doc);
console.log(`\n${table}\n${targetTable}\n${worstTable}\n${scaleTable}\n${liveTable}\n${drainTable}\nwrote BENCHMARKS.md`);
