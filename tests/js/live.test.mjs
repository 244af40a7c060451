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

test("two tabs racing un-awaited writes: each tab's live answers end equal to its select", async () => {
  const name = `live-race-${Math.random().toString(36).slice(2)}`;
  const context = await env.browser.newContext();
  const tabs = [await env.page("/tests/js/page.html", context), await env.page("/tests/js/page.html", context)];
  const QUERY = { where: { g: { in: [0, 1] } }, orderBy: [{ field: "v", direction: "asc" }], limit: 4 };
  for (const tab of tabs) {
    await tab.evaluate(async ([name, query]) => {
      const ms = await import("micro-sync");
      const items = ms.defineSyncModel("items", { primaryKey: "id", indexes: ["g", "v"] });
      window.db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
      window.items = window.db.model("items");
      window.answers = [];
      window.items.live(query, (rows) => window.answers.push(rows), (e) => window.answers.push(`${e.name}: ${e.message}`));
      await window.db.ready;
    }, [name, QUERY]);
  }
  for (let round = 0; round < 8; round++) {
    // Both tabs fire a burst of writes on the same few keys at the same instant, without awaiting each.
    const t = Date.now() + 50;
    await Promise.all(tabs.map((tab, i) => tab.evaluate(([t, seed]) => new Promise((resolve) => setTimeout(async () => {
      let x = seed;
      const rnd = (n) => ((x = (x * 1103515245 + 12345) % 2147483648), x % n);
      const calls = [];
      for (let k = 0; k < 12; k++) {
        const id = `k${rnd(6)}`;
        const op = rnd(3);
        if (op === 0) calls.push(window.items.delete({ where: { id } }).then(() => window.items.insert({ values: { id, g: rnd(3), v: rnd(50) } })));
        else if (op === 1) calls.push(window.items.update({ where: { id }, values: { v: rnd(50), g: rnd(3) } }));
        else calls.push(window.items.delete({ where: { id } }));
      }
      await Promise.allSettled(calls);
      resolve();
    }, Math.max(0, t - Date.now()))), [t, round * 7 + i + 1])));
    // Once each tab caught up with the other's commits, both show the same answer, and it is
    // what select answers in each.
    let seen;
    for (let i = 0; i < 100; i++) {
      seen = await Promise.all(tabs.map((tab) => tab.evaluate(async (query) => ({ last: JSON.stringify(window.answers.at(-1)), select: JSON.stringify(await window.items.select(query)) }), QUERY)));
      if (seen[0].last === seen[1].last && seen.every((s) => s.last === s.select)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(seen[0].last, seen[1].last, `round ${round}: both tabs show the same answer`);
    for (const s of seen) assert.equal(s.last, s.select, `round ${round}: the live answer is select's`);
  }
  const errors = await Promise.all(tabs.map((tab) => tab.evaluate(() => window.answers.filter((x) => typeof x === "string"))));
  assert.deepEqual(errors, [[], []]);
  await context.close();
});
