import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "/work/main/tests/js/harness.mjs";
import { startServer } from "/work/main/www/server.mjs";
import { mkdtempSync } from "node:fs";
const server = await startServer(0);
const origin = `http://127.0.0.1:${server.address().port}`;
for (const persistent of [false, true]) {
  let context, browser;
  if (persistent) {
    context = await chromium.launchPersistentContext(mkdtempSync("/tmp/prof-"), { executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
  } else {
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    context = await browser.newContext();
  }
  const page = await context.newPage();
  await page.goto(origin + "/tests/js/page.html");
  await page.evaluate(async () => {
    const req = indexedDB.open("q");
    req.onupgradeneeded = () => req.result.createObjectStore("s");
    const db = await new Promise((ok) => (req.onsuccess = () => ok(req.result)));
    const tx = db.transaction("s", "readwrite"); tx.objectStore("s").put("x", "pre");
    await new Promise((ok) => (tx.oncomplete = ok));
    window.qdb = db;
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 2 * 1024 * 1024 });
  const r = await page.evaluate(async () => {
    const est = await navigator.storage.estimate();
    const db = window.qdb;
    const tx = db.transaction("s", "readwrite");
    for (let i = 0; i < 50; i++) tx.objectStore("s").put("y".repeat(100000) + i, i);
    const res = await new Promise((ok) => { tx.oncomplete = () => ok("complete"); tx.onabort = () => ok("abort " + tx.error?.name); });
    return { est, res };
  });
  console.log(persistent, JSON.stringify(r));
  await context.close(); await browser?.close();
}
server.close();
