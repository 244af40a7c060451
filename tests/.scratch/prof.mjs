import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "../js/harness.mjs";
import { startServer } from "../../www/server.mjs";
import { writeFileSync } from "node:fs";
const kind = process.argv[2] ?? "memory";
const server = await startServer(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
const context = await browser.newContext();
const page = await context.newPage();
await page.goto(`${origin}/tests/bench/page.html`);
await page.evaluate(async (kind) => {
  const ms = await import("micro-sync");
  const users = ms.defineModel("users", { primaryKey: "id", indexes: ["status"] });
  window.db = ms.createSyncOrm({ storage: kind === "memory" ? ms.createMemoryStorage() : ms.createIndexedDbStorage({ name: "p" + Math.random() }), models: { users } });
  await window.db.model("users").count();
}, kind);
const cdp = await context.newCDPSession(page);
await cdp.send("Profiler.enable");
await cdp.send("Profiler.setSamplingInterval", { interval: 50 });
await cdp.send("Profiler.start");
const rate = await page.evaluate(async () => {
  const N = 3000; const t = performance.now();
  for (let i = 0; i < N; i++) await window.db.model("users").insert({ values: { id: "u" + i, name: "Ada " + i, email: `u${i}@x.com`, age: i % 80, status: "vip" } });
  return N / ((performance.now() - t) / 1000);
});
const { profile } = await cdp.send("Profiler.stop");
console.log("ops/s", Math.round(rate));
// self time per function
const self = new Map();
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const dt = profile.timeDeltas; const samples = profile.samples;
for (let i = 0; i < samples.length; i++) {
  const n = byId.get(samples[i]); const key = `${n.callFrame.functionName || "(anon)"} ${n.callFrame.url.split("/").pop()}:${n.callFrame.lineNumber}`;
  self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log((100 * v / total).toFixed(1).padStart(5), k);
await browser.close(); server.close();
