// Several tabs on one database, in headless Chromium: two pages race the same writes at the same
// instant, many rounds each; first opens race with different model sets; a full quota; forged
// channel messages; and a WebAssembly trap in one database while another keeps working.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch, CHROMIUM_ARGS } from "./harness.mjs";
import { chromium } from "playwright-core";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

const ROUNDS = 12;
const dbName = () => `tabs-${Math.random().toString(36).slice(2)}`;

/** Two pages (tabs) of one browser profile, each with an ORM on database `name`. */
async function twoTabs(name, modelsSource = "default") {
  const context = await env.browser.newContext();
  const tabs = [await env.page("/tests/js/page.html", context), await env.page("/tests/js/page.html", context)];
  for (const tab of tabs) await tab.evaluate(setupTab, [name, modelsSource]);
  return { context, a: tabs[0], b: tabs[1] };
}

// Runs in the page: an ORM whose `items` model pushes nowhere (offline), so the outbox keeps
// every write for the test to inspect. `window.at(t, f)` runs `f` at wall-clock time `t`.
async function setupTab([name]) {
  const ms = await import("micro-sync");
  const offline = { isOnline: () => false, subscribe: () => () => {} };
  const items = ms.defineModel("items", { primaryKey: "id", sync: { mutation: async () => {} } });
  window.ms = ms;
  window.db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items }, engine: { networkDetector: offline } });
  window.items = window.db.model("items");
  window.at = (t, f) =>
    new Promise((resolve) => setTimeout(resolve, Math.max(0, t - Date.now()))).then(f).then(
      (v) => ({ ok: v }),
      (e) => ({ error: e.name, message: e.message }),
    );
  await window.db.ready;
}

/** Runs `fa` in tab a and `fb` in tab b at the same instant. */
const race = (a, b, fa, fb, arg) => {
  const t = Date.now() + 60;
  return Promise.all([a.evaluate(([t, f, arg]) => window.at(t, () => new Function("arg", `return (${f})(arg)`)(arg)), [t, fa.toString(), arg]), b.evaluate(([t, f, arg]) => window.at(t, () => new Function("arg", `return (${f})(arg)`)(arg)), [t, fb.toString(), arg])]);
};

/** What storage holds, read by a fresh ORM in a new page of the same profile. */
async function stored(context, name) {
  const page = await env.page("/tests/js/page.html", context);
  await page.evaluate(setupTab, [name]);
  const out = await page.evaluate(async () => ({
    rows: await window.items.select({ orderBy: [{ field: "id" }] }),
    outbox: (await window.db.pending()).map((e) => [e.action, e.key]),
  }));
  await page.evaluate(() => window.db.close());
  await page.close();
  return out;
}

test("two tabs inserting one key at the same instant: one succeeds, the other gets ConstraintError", async () => {
  const name = dbName();
  const { context, a, b } = await twoTabs(name);
  for (let round = 0; round < ROUNDS; round++) {
    const insert = (key) => window.items.insert({ values: { id: key, from: window.name || "tab" } });
    const [ra, rb] = await race(a, b, insert, insert, `k${round}`);
    const outcomes = [ra, rb].map((r) => r.error ?? "ok").sort();
    assert.deepEqual(outcomes, ["ConstraintError", "ok"], `round ${round}: ${JSON.stringify([ra, rb])}`);
  }
  const { rows, outbox } = await stored(context, name);
  assert.equal(rows.length, ROUNDS, "one row per key");
  assert.deepEqual(outbox.map(([action]) => action), Array(ROUNDS).fill("insert"), "one insert per key in the outbox, not two");
  await context.close();
});

test("an update racing another tab's delete never brings the row back", async () => {
  const name = dbName();
  const { context, a, b } = await twoTabs(name);
  for (let round = 0; round < ROUNDS; round++) {
    const key = `r${round}`;
    await a.evaluate((key) => window.items.insert({ values: { id: key, v: 0 } }), key);
    // Both tabs hold the row in memory before the race.
    await b.waitForFunction(async (key) => (await window.items.get(key)) !== null, key);
    await b.evaluate(() => window.items.count());
    const del = (key) => window.items.delete({ where: { id: key } });
    const upd = (key) => window.items.update({ where: { id: key }, values: { v: 1 } });
    const [ra, rb] = await race(a, b, del, upd, key);
    assert.ok(!ra.error && !rb.error, `round ${round}: ${JSON.stringify([ra, rb])}`);
  }
  const { rows } = await stored(context, name);
  assert.deepEqual(rows, [], "no deleted row came back");
  await context.close();
});

test("updates of different fields from two tabs at the same instant both survive", async () => {
  const name = dbName();
  const { context, a, b } = await twoTabs(name);
  await a.evaluate(() => window.items.insert({ values: { id: "shared", fa: 0, fb: 0 } }));
  await b.waitForFunction(async () => (await window.items.get("shared")) !== null);
  for (let round = 1; round <= ROUNDS; round++) {
    const setA = (v) => window.items.update({ where: { id: "shared" }, values: { fa: v } });
    const setB = (v) => window.items.update({ where: { id: "shared" }, values: { fb: v } });
    const [ra, rb] = await race(a, b, setA, setB, round);
    assert.ok(!ra.error && !rb.error, `round ${round}: ${JSON.stringify([ra, rb])}`);
    const { rows } = await stored(context, name);
    assert.deepEqual(rows, [{ id: "shared", fa: round, fb: round }], `round ${round}: no lost field`);
  }
  // Each tab also sees the other's field once it caught up.
  await a.waitForFunction((n) => window.items.get("shared").then((r) => r.fb === n), ROUNDS);
  await context.close();
});

test("two ORMs on one database in one tab never overwrite each other either", async () => {
  const context = await env.browser.newContext();
  const page = await env.page("/tests/js/page.html", context);
  const result = await page.evaluate(async (name) => {
    const ms = await import("micro-sync");
    const items = ms.defineModel("items", { primaryKey: "id" });
    const one = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
    const two = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
    await one.model("items").insert({ values: { id: "x", a: 0, b: 0 } });
    await two.model("items").count(); // loaded in both
    const settled = await Promise.allSettled([one.model("items").insert({ values: { id: "y" } }), two.model("items").insert({ values: { id: "y" } })]);
    await Promise.all([one.model("items").update({ where: { id: "x" }, values: { a: 1 } }), two.model("items").update({ where: { id: "x" }, values: { b: 1 } })]);
    // Calls across the two ORMs take effect in call order too.
    await Promise.all([1, 2, 3].map((v, i) => [one, two][i % 2].model("items").update({ where: { id: "x" }, values: { c: v } })));
    // What storage holds, through a third ORM (the other two catch up with each other shortly).
    const three = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
    return { outcomes: settled.map((s) => s.status === "fulfilled" ? "ok" : s.reason.name), x: await three.model("items").get("x") };
  }, dbName());
  assert.deepEqual(result.outcomes, ["ok", "ConstraintError"]);
  assert.deepEqual(result.x, { id: "x", a: 1, b: 1, c: 3 });
  await context.close();
});

test("two tabs opening a new database at the same moment with different models both get their stores", async () => {
  for (let round = 0; round < 6; round++) {
    const name = dbName();
    const context = await env.browser.newContext();
    const tabs = [await env.page("/tests/js/page.html", context), await env.page("/tests/js/page.html", context)];
    const t = Date.now() + 80;
    const open = ([name, t, which]) =>
      new Promise((r) => setTimeout(r, Math.max(0, t - Date.now()))).then(async () => {
        const ms = await import("micro-sync");
        const shared = ms.defineModel("shared", { primaryKey: "id" });
        const own = ms.defineModel(which, { primaryKey: "id", indexes: ["k"] });
        const db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { shared, [which]: own } });
        try {
          await db.model(which).insert({ values: { id: 1, k: which } });
          return (await db.model(which).select({ where: { k: which } })).length;
        } catch (e) {
          return `${e.name}: ${e.message}`;
        }
      });
    const results = await Promise.all([tabs[0].evaluate(open, [name, t, "left"]), tabs[1].evaluate(open, [name, t, "right"])]);
    assert.deepEqual(results, [1, 1], `round ${round}`);
    await context.close();
  }
});

test("a full quota is QuotaExceededError with its DOM name, and nothing is half-written", async () => {
  const context = await env.browser.newContext();
  const page = await env.page("/tests/js/page.html", context);
  // Chromium applies the override only to an origin that has not used storage yet.
  const cdp = await context.newCDPSession(page);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: env.origin, quotaSize: 2 * 1024 * 1024 });
  const name = dbName();
  await page.evaluate(setupTab, [name]);
  await page.evaluate(() => window.items.insert({ values: { id: "before", text: "x" } }));
  const result = await page.evaluate(async () => {
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: `big${i}`, text: "y".repeat(100_000) }));
    try {
      await window.items.insert({ values: rows });
      return { ok: true };
    } catch (e) {
      return { name: e.name, domName: e.domName, isMicroSync: e instanceof window.ms.MicroSyncError };
    }
  });
  assert.deepEqual(result, { name: "QuotaExceededError", domName: "QuotaExceededError", isMicroSync: true });
  const after = await page.evaluate(async () => ({ count: await window.items.count(), pending: (await window.db.pending()).length }));
  assert.deepEqual(after, { count: 1, pending: 1 }, "neither rows nor outbox entries of the failed write");
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: env.origin });
  await page.evaluate(() => window.items.insert({ values: { id: "after" } }));
  const { rows, outbox } = await stored(context, name);
  assert.deepEqual(rows.map((r) => r.id), ["after", "before"]);
  assert.equal(outbox.length, 2);
  await context.close();
});

test("messages on the channel that are not micro-sync's are ignored; real ones still work", async () => {
  const name = dbName();
  const { context, a, b } = await twoTabs(name);
  const errors = [];
  b.on("pageerror", (e) => errors.push(e));
  await a.evaluate((name) => {
    const channel = new BroadcastChannel(`micro-sync:${name}`);
    for (const m of [null, "hello", 42, [], { models: "abc" }, { models: [1, 2], keys: "x" }, { seq: "7" }, { seq: -1 }, { seq: 1.5 }, { seq: 1e300 }, { seq: Number.MAX_SAFE_INTEGER }]) {
      channel.postMessage(m);
    }
    channel.close();
  }, name);
  await a.evaluate(() => window.items.insert({ values: { id: "real" } }));
  await b.waitForFunction(async () => (await window.items.get("real")) !== null, null, { timeout: 10_000 });
  await b.evaluate(() => window.items.insert({ values: { id: "still-works" } }));
  assert.deepEqual(errors, []);
  await context.close();
});

test("a WebAssembly trap fails only its database: calls reject with EngineFailedError, its lock is released, a new ORM works", async (t) => {
  // WebAssembly memory capped at 48 MiB so that a large write runs the module out of memory.
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: [...CHROMIUM_ARGS, "--js-flags=--wasm-max-mem-pages=768"] });
  t.after(() => browser.close());
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${env.origin}/tests/js/page.html`);
  const out = await page.evaluate(async (name) => {
    const ms = await import("micro-sync");
    const pushed = [];
    let hang = true;
    const notes = ms.defineModel("notes", {
      primaryKey: "id",
      sync: { mutation: (m) => (hang ? new Promise(() => {}) : Promise.resolve(pushed.push(m.mutationId))), timeoutMs: Infinity },
    });
    const online = { isOnline: () => true, subscribe: () => () => {} };
    const storage = ms.createIndexedDbStorage({ name });
    const first = ms.createSyncOrm({ storage, models: { notes }, engine: { intervalMs: 60_000, networkDetector: online } });
    await first.model("notes").insert({ values: { id: "kept", text: "small" } }); // its push hangs: first holds the outbox lock
    // Another ORM on the same database shares first's write queue; one on another database does not.
    const sibling = ms.createSyncOrm({ storage, models: { notes } });
    const plain = ms.defineModel("notes", { primaryKey: "id" });
    const elsewhere = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { notes: plain } });
    await Promise.all([sibling.ready, elsewhere.ready]);
    const huge = "z".repeat(16 * 1024 * 1024);
    const results = await Promise.allSettled([
      first.model("notes").insert({ values: { id: "huge", text: huge } }),
      first.model("notes").insert({ values: { id: "after", text: "queued behind it" } }),
    ]);
    const later = await Promise.allSettled([first.model("notes").count(), first.pending(), sibling.model("notes").insert({ values: { id: "sib" } })]);
    await elsewhere.model("notes").insert({ values: { id: "unaffected" } });
    await Promise.race([first.close(), new Promise((_, ko) => setTimeout(() => ko(new Error("close hung")), 3000))]);
    // A new ORM on the same database: takes the outbox lock and delivers the write kept before.
    hang = false;
    const second = ms.createSyncOrm({ storage, models: { notes }, engine: { intervalMs: 60_000, networkDetector: online } });
    await second.model("notes").insert({ values: { id: "new" } });
    await second.retryPendingSync();
    const failure = results[0].reason;
    return {
      statuses: [...results, ...later].map((r) => (r.status === "fulfilled" ? "ok" : r.reason.name)),
      elsewhere: await elsewhere.model("notes").count(),
      cause: String(failure?.cause?.message ?? failure?.cause),
      rows: (await second.model("notes").select({ orderBy: [{ field: "id" }] })).map((r) => r.id),
      pending: (await second.pending()).length,
      pushed: pushed.length,
    };
  }, dbName());
  assert.deepEqual(out.statuses, ["EngineFailedError", "EngineFailedError", "EngineFailedError", "EngineFailedError", "EngineFailedError"]);
  assert.equal(out.elsewhere, 1, "an ORM on another storage keeps working");
  assert.match(out.cause, /memory/);
  assert.deepEqual(out.rows, ["kept", "new"], "the failed write left nothing; acknowledged writes are kept");
  assert.equal(out.pending, 0, "the new ORM got the outbox lock and pushed everything");
  assert.equal(out.pushed, 2);
});

test("crypto.getRandomValues failing does not break writes (ids fall back to Math.random)", async () => {
  const page = await env.page();
  const result = await page.evaluate(async () => {
    const ms = await import("micro-sync");
    const notes = ms.defineModel("notes", { primaryKey: "id", sync: { mutation: async () => {} } });
    const db = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { notes } });
    await db.ready;
    const original = crypto.getRandomValues;
    crypto.getRandomValues = () => {
      throw new Error("no entropy");
    };
    try {
      const rows = await db.model("notes").insert({ values: [{ text: "a" }, { text: "b" }] });
      return rows.map((r) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(r.id));
    } finally {
      crypto.getRandomValues = original;
    }
  });
  assert.deepEqual(result, [true, true]);
  await page.context().close();
});

test("records that cannot be read are set aside and listed; everything else works", async () => {
  const page = await env.page();
  const name = dbName();
  const out = await page.evaluate(async (name) => {
    const ms = await import("micro-sync");
    const items = ms.defineModel("items", { primaryKey: "id" });
    const db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
    await db.model("items").insert({ values: [{ id: "a" }, { id: "b" }] });
    await db.close();
    // What another version or program could leave behind: a row nested 200 deep (beyond what
    // JSON readers take), a row JSON cannot hold (a BigInt), a broken outbox entry.
    let deep = 1;
    for (let i = 0; i < 200; i++) deep = { a: deep };
    const raw = await new Promise((ok, ko) => Object.assign(indexedDB.open(name), { onsuccess: (e) => ok(e.target.result), onerror: ko }));
    const tx = raw.transaction(["items", "_pendingSync"], "readwrite");
    tx.objectStore("items").put({ id: "deep", deep });
    tx.objectStore("items").put({ id: "big", n: 10n });
    tx.objectStore("_pendingSync").put({ mutationId: "01900000-0000-7000-8000-000000000001", model: "items" });
    await new Promise((ok) => (tx.oncomplete = ok));
    raw.close();
    const again = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
    const ids = (await again.model("items").select({ orderBy: [{ field: "id" }] })).map((r) => r.id);
    await again.model("items").insert({ values: { id: "c" } });
    const unreadable = (await again.unreadable()).map((e) => [e.name, e instanceof ms.MicroSyncError, e.store, e.key]);
    return { ids, unreadable: unreadable.sort(), pending: (await again.pending()).length, lastError: again.model("items").getSyncStatus().lastError };
  }, name);
  assert.deepEqual(out.ids, ["a", "b"]);
  assert.deepEqual(out.unreadable, [
    ["UnreadableDataError", true, "_pendingSync", "01900000-0000-7000-8000-000000000001"],
    ["UnreadableDataError", true, "items", "big"],
    ["UnreadableDataError", true, "items", "deep"],
  ]);
  assert.equal(out.pending, 0);
  assert.match(out.lastError, /set aside/);
  await page.context().close();
});

// ---------------------------------------------------------------- the only writer
// An engine alone on its database (it holds the writers' lease exclusively) commits without a
// change log record; a tab that opens makes it step down first. These count the log's records to
// see which mode the writes took, and race the hand-over.

/** Number of records in the database's change log (read through a connection of the page's own). */
const logCount = (page, name) =>
  page.evaluate(async (name) => {
    const raw = await new Promise((ok, ko) => Object.assign(indexedDB.open(name), { onsuccess: (e) => ok(e.target.result), onerror: ko }));
    const tx = raw.transaction("_changes");
    const n = await new Promise((ok) => (tx.objectStore("_changes").count().onsuccess = (e) => ok(e.target.result)));
    raw.close();
    return n;
  }, name);

/**
 * Calls `write(i)` (which answers how many log records its write added) up to `tries` times,
 * `ms` apart, until one adds none; whether one did.
 */
async function soonUnlogged(tries, ms, write) {
  for (let i = 0; i < tries; i++) {
    if ((await write(i)) === 0) return true;
    await new Promise((r) => setTimeout(r, ms));
  }
  return false;
}

test("a tab alone writes no change log; a tab that opens sees those writes, and racing it loses nothing", async () => {
  const name = dbName();
  const context = await env.browser.newContext();
  const a = await env.page("/tests/js/page.html", context);
  await a.evaluate(setupTab, [name]);
  await a.evaluate(() => window.items.insert({ values: { id: "shared", fa: 0, fb: 0 } }));
  const before = await logCount(a, name);
  await a.evaluate(async () => {
    for (let i = 0; i < 30; i++) await window.items.insert({ values: { id: `solo${i}` } });
  });
  assert.equal(await logCount(a, name), before, "30 commits of a lone tab wrote no log record");
  for (let round = 1; round <= 6; round++) {
    // Tab a keeps writing field fa, un-awaited, while tab b opens and writes field fb at once.
    await a.evaluate((round) => {
      window.burst = Promise.all(Array.from({ length: 20 }, (_, i) => window.items.update({ where: { id: "shared" }, values: { fa: round * 100 + i } })));
    }, round);
    const b = await env.page("/tests/js/page.html", context);
    await b.evaluate(setupTab, [name]);
    const seen = await b.evaluate(async (round) => {
      const solo = await window.items.count({ where: { id: { like: "solo%" } } });
      await Promise.all(Array.from({ length: 20 }, (_, i) => window.items.update({ where: { id: "shared" }, values: { fb: round * 100 + i } })));
      return solo;
    }, round);
    await a.evaluate(() => window.burst);
    assert.equal(seen, 30, `round ${round}: the new tab sees what the lone tab wrote`);
    const { rows } = await stored(context, name);
    assert.deepEqual(rows.find((r) => r.id === "shared"), { id: "shared", fa: round * 100 + 19, fb: round * 100 + 19 }, `round ${round}: no lost field`);
    await b.evaluate(() => window.db.close());
    await b.close();
  }
  await context.close();
});

test("when the other tab closes, the one left writes without the log again, and a newcomer still sees everything", async () => {
  const name = dbName();
  const { context, a, b } = await twoTabs(name);
  await a.evaluate(() => window.items.insert({ values: { id: "x", v: 0 } }));
  let n = await logCount(a, name);
  await b.evaluate(() => window.items.insert({ values: { id: "y", v: 0 } }));
  assert.equal(await logCount(a, name), n + 1, "with two tabs open, every commit is logged");
  await b.evaluate(() => window.db.close());
  await b.close();
  await a.evaluate(async () => {
    for (let i = 1; i <= 20; i++) await window.items.update({ where: { id: "x" }, values: { v: i } });
  });
  n = await logCount(a, name);
  await a.evaluate(() => window.items.update({ where: { id: "x" }, values: { v: 21 } }));
  assert.equal(await logCount(a, name), n, "the tab left alone writes without the log");
  // A newcomer reads what the lone tab wrote, and both tabs' writes to one row survive.
  const c = await env.page("/tests/js/page.html", context);
  await c.evaluate(setupTab, [name]);
  assert.deepEqual(await c.evaluate(() => window.items.get("x")), { id: "x", v: 21 });
  const [ra, rc] = await race(a, c, () => window.items.update({ where: { id: "x" }, values: { fa: 1 } }), () => window.items.update({ where: { id: "x" }, values: { fc: 1 } }));
  assert.ok(!ra.error && !rc.error, JSON.stringify([ra, rc]));
  const { rows } = await stored(context, name);
  assert.deepEqual(rows.find((r) => r.id === "x"), { id: "x", v: 21, fa: 1, fc: 1 });
  await context.close();
});

test("when the other tab ends without closing its database, the one left still goes back to writing without the log", async () => {
  const name = dbName();
  const { context, a, b } = await twoTabs(name);
  await b.evaluate(() => window.items.insert({ values: { id: "from-b" } }));
  await b.close(); // no db.close(): nothing is said on the channel
  // Within a few seconds tab a finds itself the lease's only holder and stops logging.
  const unlogged = await soonUnlogged(40, 250, async (i) => {
    const n = await logCount(a, name);
    await a.evaluate((i) => window.items.insert({ values: { id: `after${i}` } }), i);
    return (await logCount(a, name)) - n;
  });
  assert.ok(unlogged, "tab a writes without the log again");
  const c = await env.page("/tests/js/page.html", context);
  await c.evaluate(setupTab, [name]);
  const ids = await c.evaluate(async () => (await window.items.select()).map((r) => r.id));
  assert.ok(ids.includes("from-b") && ids.includes("after0"), JSON.stringify(ids));
  await context.close();
});

test("a hidden page stops writing without the log, and starts again once visible", async () => {
  const name = dbName();
  const context = await env.browser.newContext();
  const a = await env.page("/tests/js/page.html", context);
  await a.evaluate(setupTab, [name]);
  await a.evaluate(() => window.items.insert({ values: { id: "x", v: 0 } }));
  const writeLogs = async (v) => {
    const n = await logCount(a, name);
    await a.evaluate((v) => window.items.update({ where: { id: "x" }, values: { v } }), v);
    return (await logCount(a, name)) - n;
  };
  assert.equal(await writeLogs(1), 0, "alone and visible: no log record");
  const setHidden = (hidden) =>
    a.evaluate((hidden) => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
      document.dispatchEvent(new Event("visibilitychange"));
    }, hidden);
  await setHidden(true);
  assert.equal(await writeLogs(2), 1, "hidden: every commit is logged");
  await setHidden(false);
  const unlogged = await soonUnlogged(20, 50, (i) => writeLogs(10 + i));
  assert.ok(unlogged, "visible again: back to no log records");
  await context.close();
});

test("a lock the browser takes away is given up: the writes after it are logged", async () => {
  const name = dbName();
  const context = await env.browser.newContext();
  const a = await env.page("/tests/js/page.html", context);
  await a.evaluate(setupTab, [name]);
  await a.evaluate(() => window.items.insert({ values: { id: "x", v: 0 } }));
  const before = await logCount(a, name);
  await a.evaluate(() => window.items.update({ where: { id: "x" }, values: { v: 1 } }));
  assert.equal(await logCount(a, name), before, "alone: no log record");
  // Another page steals the lease's lock and keeps it for a moment.
  const b = await env.page("/tests/js/page.html", context);
  await b.evaluate((name) => {
    window.stolen = new Promise((held) =>
      navigator.locks.request(`micro-sync:${name}:writers`, { steal: true }, () => {
        held();
        return new Promise((r) => setTimeout(r, 300));
      }),
    );
    return window.stolen;
  }, name);
  // The browser tells page a of the steal in a message of its own, which races this script's next
  // call to page a (seen losing on a loaded machine): let it arrive before writing.
  await a.evaluate(() => new Promise((r) => setTimeout(r, 50)));
  await a.evaluate(() => window.items.update({ where: { id: "x" }, values: { v: 2 } }));
  assert.equal(await logCount(a, name), before + 1, "after losing the lock, the commit is checked and logged");
  assert.deepEqual(await a.evaluate(() => window.items.get("x")), { id: "x", v: 2 });
  await context.close();
});
