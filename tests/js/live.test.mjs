// Live queries in headless Chromium: the browser-side suite (live.js) against both storages, and
// a live query in one tab following writes made in another.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { browserSuite, launch } from "./harness.mjs";

await browserSuite("live.js", { test, before, after, assert, minCases: 5 });

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

test("a live query follows another tab's writes, many rounds", async () => {
  const name = `live-tabs-${Math.random().toString(36).slice(2)}`;
  const context = await env.browser.newContext();
  const [a, b] = [await env.page("/tests/js/page.html", context), await env.page("/tests/js/page.html", context)];
  const setup = async (name) => {
    const ms = await import("micro-sync");
    const items = ms.defineSyncModel("items", { primaryKey: "id", indexes: ["n"] });
    window.db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
    window.items = window.db.model("items");
    await window.db.ready;
  };
  await a.evaluate(setup, name);
  await b.evaluate(setup, name);
  await a.evaluate(() => {
    window.answers = [];
    window.stop = window.items.live({ orderBy: [{ field: "n", direction: "desc" }], limit: 3 }, (rows) => window.answers.push(rows));
  });
  for (let round = 1; round <= 10; round++) {
    await b.evaluate((n) => window.items.insert({ values: { id: `r${n}`, n } }), round);
    await a.waitForFunction((n) => window.answers.at(-1)?.[0]?.n === n, round, { timeout: 5000 });
  }
  const [last, fresh] = await a.evaluate(async () => [window.answers.at(-1), await window.items.select({ orderBy: [{ field: "n", direction: "desc" }], limit: 3 })]);
  assert.deepEqual(last, fresh);
  assert.deepEqual(last.map((r) => r.n), [10, 9, 8]);
  // Another tab's delete of a row in the window brings the next one in.
  await b.evaluate(() => window.items.delete({ where: { id: "r9" } }));
  await a.waitForFunction(() => window.answers.at(-1).map((r) => r.n).join() === "10,8,7", null, { timeout: 5000 });
  await context.close();
});
