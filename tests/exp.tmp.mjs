import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "/work/main/tests/js/harness.mjs";
import { startServer } from "/work/main/www/server.mjs";
const server = await startServer(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
const page = await (await browser.newContext()).newPage();
await page.goto(`${origin}/tests/bench/page.html`);
const r = await page.evaluate(async () => {
  const w = await import("/tests/bench/workloads.js");
  const users = w.makeUsers(6000);
  const req = (r) => new Promise((ok, ko) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => ko(r.error))));
  const done = (tx) => new Promise((ok, ko) => ((tx.oncomplete = ok), (tx.onerror = tx.onabort = () => ko(tx.error))));
  const open = indexedDB.open("exp" + Math.random(), 1);
  open.onupgradeneeded = () => { open.result.createObjectStore("users", { keyPath: "id" }); open.result.createObjectStore("out", { keyPath: "mutationId" }); };
  const db = await req(open);
  const out = {};
  for (const mode of ["none", "object", "string", "object", "string", "none"]) {
    const rows = mode === "none" ? users.slice(0, 2000) : mode === "object" ? users.slice(2000, 4000) : users.slice(4000, 6000);
    const t = performance.now();
    let i = 0;
    for (const row of rows) {
      const tx = db.transaction(mode === "none" ? ["users"] : ["users", "out"], "readwrite");
      tx.objectStore("users").put(row);
      const id = `${mode}-${i++}-${Math.random()}`;
      const body = { action: "insert", query: { values: [row] }, before: [{ key: row.id, row: null }] };
      if (mode === "object") tx.objectStore("out").put({ mutationId: id, model: "users", createdAt: Date.now(), attempts: 0, lastError: null, nextAttemptAt: 0, ...body });
      if (mode === "string") tx.objectStore("out").put({ mutationId: id, model: "users", createdAt: Date.now(), attempts: 0, lastError: null, nextAttemptAt: 0, data: JSON.stringify(body) });
      await done(tx);
    }
    out[mode] = (out[mode] ?? []).concat(Math.round(2000 / ((performance.now() - t) / 1000)));
  }
  return out;
});
console.log(JSON.stringify(r));
await browser.close(); server.close();
