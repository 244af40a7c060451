import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "../js/harness.mjs";
import { startServer } from "../../www/server.mjs";
const server = await startServer(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
for (let rep = 0; rep < 3; rep++) {
const context = await browser.newContext();
const page = await context.newPage();
await page.goto(`${origin}/tests/bench/page.html`);
const out = await page.evaluate(async () => {
  const req = indexedDB.open("cost" + Math.random(), 1);
  req.onupgradeneeded = () => { req.result.createObjectStore("users", { keyPath: "id" }); req.result.createObjectStore("log", { keyPath: "seq" }); };
  const db = await new Promise((ok) => (req.onsuccess = () => ok(req.result)));
  const done = (tx) => new Promise((ok, ko) => ((tx.oncomplete = ok), (tx.onerror = tx.onabort = () => ko(tx.error))));
  const res = {};
  const N = 1000;
  let seq = 0;
  const variants = {
    put1: async (i) => { const tx = db.transaction("users", "readwrite"); tx.objectStore("users").put({ id: "a" + i, name: "x" }); await done(tx); },
    put1logCommit: async (i) => { const tx = db.transaction(["users", "log"], "readwrite"); tx.objectStore("log").add({ seq: ++seq, changes: [["users", ["g" + i]]] }); tx.objectStore("users").put({ id: "g" + i, name: "x" }); tx.commit(); await done(tx); },
    put2sameCommit: async (i) => { const tx = db.transaction(["users"], "readwrite"); tx.objectStore("users").put({ id: "h" + i, name: "x" }); tx.objectStore("users").put({ id: "hh" + i, name: "x" }); tx.commit(); await done(tx); },
    put1scope2Commit: async (i) => { const tx = db.transaction(["users", "log"], "readwrite"); tx.objectStore("users").put({ id: "k" + i, name: "x" }); tx.commit(); await done(tx); },
    put1commit: async (i) => { const tx = db.transaction("users", "readwrite"); tx.objectStore("users").put({ id: "e" + i, name: "x" }); tx.commit(); await done(tx); },
    put1logprobeCommit: async (i) => { const tx = db.transaction(["users", "log"], "readwrite"); const log = tx.objectStore("log"); const p = log.getKey(IDBKeyRange.lowerBound(seq, true)); tx.objectStore("users").put({ id: "f" + i, name: "x" }); log.add({ seq: ++seq, changes: [["users", ["f" + i]]] }); await new Promise((ok) => (p.onsuccess = ok)); tx.commit(); await done(tx); },
    put1log: async (i) => { const tx = db.transaction(["users", "log"], "readwrite"); tx.objectStore("users").put({ id: "b" + i, name: "x" }); tx.objectStore("log").add({ seq: ++seq, changes: [["users", ["b" + i]]] }); await done(tx); },
    put1logprobe: async (i) => { const tx = db.transaction(["users", "log"], "readwrite"); const log = tx.objectStore("log"); const p = log.getKey(IDBKeyRange.lowerBound(seq, true)); tx.objectStore("users").put({ id: "c" + i, name: "x" }); log.add({ seq: ++seq, changes: [["users", ["c" + i]]] }); await new Promise((ok) => (p.onsuccess = ok)); await done(tx); },
    put1logprobeAwait: async (i) => { const tx = db.transaction(["users", "log"], "readwrite"); const log = tx.objectStore("log"); const p = log.getKey(IDBKeyRange.lowerBound(seq, true)); await new Promise((ok) => (p.onsuccess = ok)); tx.objectStore("users").put({ id: "d" + i, name: "x" }); log.add({ seq: ++seq, changes: [["users", ["d" + i]]] }); await done(tx); },
  };
  for (const [k, f] of Object.entries(variants)) {
    const t = performance.now();
    for (let i = 0; i < N; i++) await f(i);
    res[k] = Math.round(N / ((performance.now() - t) / 1000));
  }
  return res;
});
console.log(JSON.stringify(out));
await context.close();
}
await browser.close(); server.close();
