// Sync end to end in headless Chromium: a counting HTTP backend, real offline/online events
// (context.setOffline), a permanent rejection, and two tabs sharing one database.
import { test, before, after, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./harness.mjs";

const deliveries = new Map(); // mutationId -> times received
const rows = new Map();

async function body(req) {
  let text = "";
  for await (const chunk of req) text += chunk;
  return JSON.parse(text);
}

async function api(req, res) {
  if (req.url === "/api/push" && req.method === "POST") {
    const m = await body(req);
    deliveries.set(m.mutationId, (deliveries.get(m.mutationId) ?? 0) + 1);
    if (JSON.stringify(m.query).includes("forbidden")) {
      res.writeHead(422).end("title not allowed");
      return true;
    }
    if (m.action === "insert") for (const r of m.query.values) rows.set(r.id, r);
    if (m.action === "update") for (const id of m.query.where.id.in) if (rows.has(id)) rows.set(id, { ...rows.get(id), ...m.query.values });
    if (m.action === "delete") for (const id of m.query.where.id.in) rows.delete(id);
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
    return true;
  }
  if (req.url === "/api/rows") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify([...rows.values()]));
    return true;
  }
  return false;
}

let env;
before(async () => (env = await launch({ api })));
after(async () => env?.close());
beforeEach(() => {
  deliveries.clear();
  rows.clear();
});

const dbName = () => `sync-${Math.random().toString(36).slice(2)}`;
const setup = (page, name) => page.evaluate(async (n) => (await import("/tests/js/sync-client.js")).setup(n), name);
const status = (page) => page.evaluate(() => window.db.model("todos").getSyncStatus());
const waitPending = (page, n) =>
  page.waitForFunction((n) => window.db.model("todos").getSyncStatus().pendingCount === n, n, { timeout: 15000 });

test("offline writes queue, then drain once when the browser comes back online", async () => {
  const page = await env.page();
  await setup(page, dbName());
  await page.context().setOffline(true);
  await page.waitForFunction(() => window.db.model("todos").getSyncStatus().online === false);
  await page.evaluate(async () => {
    const todos = window.db.model("todos");
    for (const id of ["a", "b", "c"]) await todos.insert({ values: { id, title: `task ${id}`, done: false } });
    await todos.update({ where: { id: "b" }, values: { done: true } });
  });
  await waitPending(page, 4);
  let s = await status(page);
  assert.equal(s.online, false);
  assert.equal(s.engineRunning, true);
  assert.equal(deliveries.size, 0, "nothing is pushed while offline");
  assert.equal((await page.evaluate(() => window.db.model("todos").count())), 3, "optimistic writes are readable at once");

  await page.context().setOffline(false);
  await waitPending(page, 0);
  s = await status(page);
  assert.equal(s.online, true);
  assert.equal(s.lastError, null);
  assert.ok(s.lastSyncedAt > 0);
  // The offline update of b merged into b's insert (coalescing): three pushes for four writes.
  assert.equal(deliveries.size, 3);
  assert.deepEqual([...deliveries.values()], [1, 1, 1], "each mutation delivered exactly once");
  assert.deepEqual(rows.get("b"), { id: "b", title: "task b", done: true }, "b arrives with the update applied");

  const seen = await page.evaluate(() => ({
    frozen: window.statuses.every(Object.isFrozen),
    offlineFour: window.statuses.some((s) => !s.online && s.pendingCount === 4),
    distinct: new Set(window.statuses).size === window.statuses.length,
  }));
  assert.deepEqual(seen, { frozen: true, offlineFour: true, distinct: true });
  await page.context().close();
});

test("a permanent rejection rolls the row back and reports lastError", async () => {
  const page = await env.page();
  await setup(page, dbName());
  await page.evaluate(() => window.db.model("todos").insert({ values: { id: "x", title: "fine" } }));
  await waitPending(page, 0);
  await page.evaluate(() => window.db.model("todos").update({ where: { id: "x" }, values: { title: "forbidden" } }));
  await waitPending(page, 0);
  const row = await page.evaluate(() => window.db.model("todos").get("x"));
  assert.deepEqual(row, { id: "x", title: "fine" }, "rolled back to the confirmed state");
  const s = await status(page);
  assert.match(s.lastError, /rejected: title not allowed/);
  const pulled = await page.evaluate(() => window.db.model("todos").sync());
  assert.deepEqual(pulled, [{ id: "x", title: "fine" }], "pull agrees with the backend");
  await page.context().close();
});

test("two tabs: one drainer at a time, each mutation delivered once, pending counts shared", async () => {
  const context = await env.browser.newContext();
  const name = dbName();
  const a = await env.page("/tests/js/page.html", context);
  const b = await env.page("/tests/js/page.html", context);
  await setup(a, name);
  await setup(b, name);
  await context.setOffline(true);
  await a.evaluate(async () => {
    for (let i = 0; i < 5; i++) await window.db.model("todos").insert({ values: { id: `a${i}`, title: "from A" } });
  });
  await waitPending(b, 5); // tab B sees tab A's pending writes
  await b.evaluate(async () => {
    for (let i = 0; i < 5; i++) await window.db.model("todos").insert({ values: { id: `b${i}`, title: "from B" } });
  });
  await waitPending(a, 10);
  assert.equal(await a.evaluate(() => window.db.model("todos").count()), 10, "tab A reads tab B's rows");

  await context.setOffline(false);
  await waitPending(a, 0);
  await waitPending(b, 0);

  // Online bursts from both tabs at once: the drainer keeps the outbox lock across its burst,
  // the other tab's writes are pushed when it lets go, and both counts end at zero.
  const burst = ([tab, prefix]) =>
    Promise.all(
      [0, 1].map(async (k) => {
        for (let i = 0; i < 20; i++) await window.db.model("todos").insert({ values: { id: `${prefix}${k}-${i}`, title: tab } });
      }),
    );
  await Promise.all([a.evaluate(burst, ["A", "ba"]), b.evaluate(burst, ["B", "bb"])]);
  await waitPending(a, 0);
  await waitPending(b, 0);
  // Both engines keep ticking; give them a few intervals to prove nothing is sent twice.
  await a.waitForTimeout(600);
  assert.equal(deliveries.size, 90);
  assert.ok([...deliveries.values()].every((n) => n === 1), `duplicates: ${JSON.stringify([...deliveries])}`);

  // Tab B has the model in memory. Tab A's single-row writes make B re-read only those rows (by
  // key), never the whole store, and B's reads show them.
  assert.equal(await b.evaluate(() => window.db.model("todos").count()), 90);
  await b.evaluate(() => {
    window.wholeReads = 0;
    const original = IDBObjectStore.prototype.getAll;
    IDBObjectStore.prototype.getAll = function (...args) {
      if (this.name === "todos" && args.length === 0) window.wholeReads++;
      return original.apply(this, args);
    };
  });
  await a.evaluate(async () => {
    const todos = window.db.model("todos");
    await todos.update({ where: { id: "a0" }, values: { title: "edited in A" } });
    await todos.delete({ where: { id: "a1" } });
    await todos.insert({ values: { id: "a-new", title: "new in A" } });
  });
  await b.waitForFunction(async () => {
    const todos = window.db.model("todos");
    return (await todos.get("a0"))?.title === "edited in A" && (await todos.get("a1")) === null && (await todos.get("a-new")) !== null && (await todos.count()) === 90;
  }, null, { timeout: 15000 });
  await waitPending(a, 0);
  await waitPending(b, 0);
  await b.waitForTimeout(200); // the drain's announcement too
  assert.equal((await b.evaluate(() => window.db.model("todos").get("a-new")))?.title, "new in A");
  assert.equal(await b.evaluate(() => window.wholeReads), 0, "tab B never re-read the whole store");
  await context.close();
});

test("a backend asking for credentials pauses pushes until resumeSync(), rolling nothing back", async () => {
  const page = await env.page();
  const result = await page.evaluate(async () => {
    const ms = await import("micro-sync");
    const sent = [];
    let signedIn = false;
    const notes = ms.defineSyncModel("notes", {
      primaryKey: "id",
      sync: {
        mutations: async (entries) => {
          if (!signedIn) throw Object.assign(new Error("401: session expired"), { needsAuth: true });
          sent.push(...entries.map((e) => e.mutationId));
        },
      },
    });
    const db = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { notes }, engine: { intervalMs: 20 } });
    const repo = db.model("notes");
    const until = async (f) => {
      for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
      return f();
    };
    await repo.insert({ values: { id: 1, text: "a" } });
    await until(() => repo.getSyncStatus().needsAuth);
    await repo.insert({ values: { id: 2, text: "b" } });
    await db.retryPendingSync();
    await new Promise((r) => setTimeout(r, 150)); // several loop ticks
    const paused = { ...repo.getSyncStatus(), rows: await repo.count(), attempts: (await db.pending()).map((p) => p.attempts), sent: sent.length };
    signedIn = true;
    db.resumeSync();
    await until(() => repo.getSyncStatus().pendingCount === 0);
    const resumed = { needsAuth: repo.getSyncStatus().needsAuth, sent: sent.length, lastError: repo.getSyncStatus().lastError };
    await db.close();
    return { paused, resumed };
  });
  assert.equal(result.paused.needsAuth, true);
  assert.equal(result.paused.pendingCount, 2);
  assert.equal(result.paused.rows, 2, "nothing rolled back");
  assert.deepEqual(result.paused.attempts, [0, 0], "no attempt counted, so no backoff after resuming");
  assert.equal(result.paused.sent, 0);
  assert.match(result.paused.lastError, /session expired/);
  assert.deepEqual(result.resumed, { needsAuth: false, sent: 2, lastError: null });
});

test("createSyncOrm's sync.mutations pushes every model without a hook of its own, sharing batches in outbox order", async () => {
  const page = await env.page();
  const result = await page.evaluate(async () => {
    const ms = await import("micro-sync");
    const calls = [];
    const own = [];
    // coalesce: false, so every write is its own entry however the page's online state reads.
    const tasks = ms.defineModel("tasks", { primaryKey: "id", coalesce: false });
    const notes = ms.defineModel("notes", { primaryKey: "id", coalesce: false });
    const logs = ms.defineModel("logs", { primaryKey: "id", sync: { mutation: async (m) => void own.push(m.model) } });
    const bad = [];
    for (const sync of [{}, { mutations: 1 }, { mutation: async () => {} }, { mutations: async () => {}, batchSize: 0 }]) {
      try {
        ms.createSyncOrm({ models: { tasks }, sync });
      } catch (e) {
        bad.push(e.name);
      }
    }
    const db = ms.createSyncOrm({
      storage: ms.createMemoryStorage(),
      models: { tasks, notes, logs },
      sync: {
        batchSize: 3,
        mutations: async (entries) => {
          if (!reachable) throw new Error("backend down"); // writes queue up meanwhile
          calls.push(entries.map((e) => `${e.model}:${e.action}`));
        },
      },
    });
    let reachable = false;
    await db.model("tasks").insert({ values: { id: 1 } });
    await db.model("notes").insert({ values: { id: 1 } });
    await db.model("tasks").update({ where: { id: 1 }, values: { done: true } });
    await db.model("notes").delete({ where: { id: 1 } });
    await db.model("logs").insert({ values: { id: 1 } });
    await db.model("tasks").insert({ values: { id: 2 } });
    reachable = true;
    await db.retryPendingSync();
    const left = (await db.pending()).length;
    await db.close();
    return { bad, calls, own, left };
  });
  assert.deepEqual(result.bad, ["QueryError", "QueryError", "QueryError", "QueryError"]);
  assert.deepEqual(result.calls, [["tasks:insert", "notes:insert", "tasks:update"], ["notes:delete"], ["tasks:insert"]]);
  assert.deepEqual(result.own, ["logs"]);
  assert.equal(result.left, 0);
});

test("conflict strategies on pull: lww keeps the newer row, a function merges, pending fields stay on top", async () => {
  const page = await env.page();
  const result = await page.evaluate(async () => {
    const ms = await import("micro-sync");
    let backend = [];
    const calls = [];
    const sync = { query: async () => backend, mutation: async () => { throw new Error("backend down"); } }; // writes stay pending
    const byTime = ms.defineModel("byTime", { primaryKey: "id", conflict: { lww: "at" }, sync });
    const merged = ms.defineModel("merged", {
      primaryKey: "id",
      sync,
      conflict: (local, remote, base) => {
        calls.push({ local, remote, base });
        return { ...remote, tags: [...new Set([...(local?.tags ?? []), ...remote.tags])] };
      },
    });
    const bad = [];
    for (const conflict of ["server", { lww: 1 }, { lww: "at", x: 1 }, null]) {
      try {
        ms.defineModel("x", { primaryKey: "id", conflict });
      } catch (e) {
        bad.push(e.name);
      }
    }
    const db = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { byTime, merged } });
    const t = db.model("byTime");
    const m = db.model("merged");
    backend = [{ id: 1, title: "v1", at: 10 }];
    await t.sync();
    await t.update({ where: { id: 1 }, values: { title: "local", at: 30 } });
    backend = [{ id: 1, title: "remote", at: 20, extra: "r" }];
    const older = await t.sync(); // the backend's row is older than ours
    backend = [{ id: 1, title: "remote", at: 40, extra: "r" }];
    const newer = await t.sync();
    backend = [{ id: 1, tags: ["a"], note: "n1" }];
    await m.sync();
    await m.update({ where: { id: 1 }, values: { tags: ["a", "b"] } });
    backend = [{ id: 1, tags: ["a", "c"], note: "n2" }];
    const mergedRows = await m.sync();
    const thrower = ms.defineModel("thrower", { primaryKey: "id", sync, conflict: () => { throw new Error("cannot merge"); } });
    const db2 = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { thrower } });
    backend = [{ id: 1, v: 1 }];
    await db2.model("thrower").sync();
    await db2.model("thrower").update({ where: { id: 1 }, values: { v: 2 } });
    backend = [{ id: 1, v: 3 }];
    await db2.model("thrower").sync();
    const throwerRow = await db2.model("thrower").get(1);
    const throwerError = db2.model("thrower").getSyncStatus().lastError;
    await Promise.all([db.close(), db2.close()]);
    return { bad, older, newer, mergedRows, calls, throwerRow, throwerError };
  });
  assert.deepEqual(result.bad, ["QueryError", "QueryError", "QueryError", "QueryError"]);
  assert.deepEqual(result.older, [{ id: 1, title: "local", at: 30 }], "an older backend row does not replace ours");
  assert.deepEqual(result.newer, [{ id: 1, title: "local", at: 30, extra: "r" }], "a newer one becomes the base, the pending fields on top");
  assert.equal(result.calls.length, 1, "the function runs only for a row with pending writes");
  assert.deepEqual(result.calls[0].base, { id: 1, tags: ["a"], note: "n1" });
  assert.deepEqual(result.calls[0].local, { id: 1, tags: ["a", "b"], note: "n1" });
  assert.deepEqual(result.mergedRows, [{ id: 1, tags: ["a", "b"], note: "n2" }], "the pending write's tags stay on top of the merged base");
  assert.deepEqual(result.throwerRow, { id: 1, v: 2 }, "a failing function changes nothing");
  assert.match(result.throwerError, /cannot merge/);
});
