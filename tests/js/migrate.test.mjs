// Migrations in headless Chromium against the built package: a page opens data written by
// version 1 of a model (confirmed rows and pending writes) with version 2, then with a version 3
// whose migrate throws, a version that changes keys, and the old version 1 code.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./harness.mjs";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

test("version 2 migrates stored rows and pending writes in one upgrade; a failing migrate changes nothing", async () => {
  const page = await env.page();
  const r = await page.evaluate(async (name) => {
    const ms = await import("micro-sync");
    const pushed = [];
    const detector = (online) => ({ isOnline: () => online, subscribe: () => () => {} });
    const model = (extra) => ms.defineModel("tasks", { primaryKey: "id", sync: { mutation: async (m) => void pushed.push(m) }, ...extra });
    const open = (extra, online = false) => ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { tasks: model(extra) }, engine: { networkDetector: detector(online) } });
    const settled = (p) => p.then((v) => ({ ok: v }), (e) => ({ error: e.name, message: e.message }));
    const state = async (db) => ({
      rows: await db.model("tasks").select({ orderBy: [{ field: "id" }] }),
      pending: (await db.pending()).map((e) => ({ action: e.action, query: e.query })),
    });

    // Version 1: three rows confirmed by the backend, then three writes made offline.
    let db = open({}, true);
    await db.model("tasks").insert({ values: [{ id: 1, title: "one" }, { id: 2, title: "two" }, { id: 3, title: "three", priority: 1 }] });
    await db.whenSynced();
    await db.close();
    db = open({});
    await db.model("tasks").update({ where: { id: 1 }, values: { title: "uno" } });
    await db.model("tasks").delete({ where: { id: 2 } });
    await db.model("tasks").insert({ values: { id: 4, title: "four" } });
    const v1 = await state(db);
    await db.close();

    // Version 2: title becomes name; priority defaults to 2.
    const calls = [];
    const toV2 = (row, from) => {
      calls.push(from);
      const { title, ...rest } = row;
      return { ...rest, name: title, priority: rest.priority ?? 2 };
    };
    db = open({ version: 2, migrate: toV2 });
    const v2 = await state(db);
    await db.close();
    db = open({ version: 2, migrate: toV2 });
    const callsAfterReopen = calls.length;
    await state(db);
    const migratedOnce = calls.length === callsAfterReopen;
    await db.close();

    // Version 3 whose migrate throws on one row; one that changes keys; the old code.
    db = open({ version: 3, migrate: (row) => { if (row.id === 3) throw new Error("cannot convert task 3"); return { ...row, v3: true }; } });
    const failed = await settled(db.model("tasks").select());
    await db.close().catch(() => {});
    db = open({ version: 3, migrate: (row) => ({ ...row, id: `k${row.id}` }) });
    const rekeyed = await settled(db.model("tasks").count());
    await db.close().catch(() => {});
    db = open({ version: 3, migrate: (row) => ({ ...row, at: () => 1 }) });
    const notJson = await settled(db.model("tasks").count());
    await db.close().catch(() => {});
    db = open({});
    const older = await settled(db.model("tasks").count());
    await db.close().catch(() => {});

    // Version 2 again: the data is as the successful migration left it; the pushes carry v2 shapes.
    db = open({ version: 2, migrate: toV2 }, true);
    const intact = await state(db);
    await db.retryPendingSync();
    await db.whenSynced();
    await db.close();
    return { v1, v2, calls, migratedOnce, failed, rekeyed, notJson, older, intact, pushed: pushed.slice(1).map((m) => ({ action: m.action, query: m.query })) };
  }, `migrate-${Math.random().toString(36).slice(2)}`);

  assert.deepEqual(r.v1.rows, [{ id: 1, title: "uno" }, { id: 3, title: "three", priority: 1 }, { id: 4, title: "four" }]);
  assert.deepEqual(r.v2.rows, [
    { id: 1, name: "uno", priority: 2 },
    { id: 3, name: "three", priority: 1 },
    { id: 4, name: "four", priority: 2 },
  ]);
  assert.deepEqual(r.v2.pending, [
    // The update's change migrated through whole rows: priority's default is no change.
    { action: "update", query: { where: { id: { in: [1] } }, values: { name: "uno" } } },
    { action: "delete", query: { where: { id: { in: [2] } } } },
    { action: "insert", query: { values: [{ id: 4, name: "four", priority: 2 }] } },
  ]);
  assert.ok(r.calls.every((from) => from === 1), "migrate hears the stored version");
  assert.equal(r.migratedOnce, true, "a reopen at the same version migrates nothing");
  assert.equal(r.failed.error, "MigrationError");
  assert.match(r.failed.message, /cannot convert task 3.*left as it was/);
  assert.equal(r.rekeyed.error, "MigrationError");
  assert.match(r.rekeyed.message, /keep primary keys/);
  assert.equal(r.notJson.error, "MigrationError");
  assert.match(r.notJson.message, /at is a function/);
  assert.equal(r.older.error, "MigrationError");
  assert.match(r.older.message, /version 2, newer than this page's model \(version 1\)/);
  assert.deepEqual(r.intact, r.v2, "failed migrations changed nothing");
  assert.deepEqual(r.pushed, r.v2.pending);
});

test("two tabs opening version 1 data with version 2 at the same instant migrate it exactly once", async () => {
  const context = await env.browser.newContext();
  const [a, b] = [await env.page("/tests/js/page.html", context), await env.page("/tests/js/page.html", context)];
  for (let round = 0; round < 6; round++) {
    const name = `migrate-race-${round}-${Math.random().toString(36).slice(2)}`;
    await a.evaluate(async (name) => {
      const ms = await import("micro-sync");
      const items = ms.defineModel("items", { primaryKey: "id", sync: { mutation: async () => { throw new Error("offline"); } } });
      const db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
      await db.model("items").insert({ values: Array.from({ length: 50 }, (_, i) => ({ id: i, n: 0 })) });
      await db.close();
    }, name);
    // Not idempotent on purpose: a second run would show as n = 2.
    const open = async ([name, t]) => {
      const ms = await import("micro-sync");
      const items = ms.defineModel("items", { primaryKey: "id", version: 2, migrate: (row) => ({ ...row, n: row.n + 1 }), sync: { mutation: async () => { throw new Error("offline"); } } });
      await new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
      const db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { items } });
      const ns = (await db.model("items").select()).map((r) => r.n);
      const pending = (await db.pending()).flatMap((e) => e.query.values.map((v) => v.n));
      await db.close();
      return { ns: [...new Set(ns)], count: ns.length, pending: [...new Set(pending)] };
    };
    const t = Date.now() + 80;
    const [ra, rb] = await Promise.all([a.evaluate(open, [name, t]), b.evaluate(open, [name, t])]);
    for (const r of [ra, rb]) assert.deepEqual(r, { ns: [1], count: 50, pending: [1] }, `round ${round}`);
  }
  await context.close();
});
