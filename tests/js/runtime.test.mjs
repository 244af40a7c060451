// The sync runtime (Rust) in headless Chromium: the three ways the JS loop used to lose pushes.
// Each test failed on the JS runtime (0.1 before the move to Rust) and passes now.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./harness.mjs";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

const dbName = () => `runtime-${Math.random().toString(36).slice(2)}`;

// A page with a `todos` model whose mutation hook records each call (and fails the first
// `failures` of them); `window.calls` lists the pushed mutation ids in order.
async function page({ offline = false } = {}) {
  const p = await env.page();
  await p.evaluate(async () => {
    const ms = await import("micro-sync");
    window.ms = ms;
    window.calls = [];
    window.failures = 0;
    window.todos = ms.defineModel("todos", {
      primaryKey: "id",
      sync: {
        mutation: async (m) => {
          window.calls.push({ id: m.mutationId, at: Date.now() });
          if (window.failures > 0) {
            window.failures--;
            throw new Error("backend down");
          }
        },
      },
    });
    // Loaded now: offline, the page cannot fetch it.
    await ms.createSyncOrm({ models: { todos: window.todos } }).ready;
  });
  if (offline) {
    await p.context().setOffline(true);
    await p.waitForFunction(() => !navigator.onLine);
  }
  return p;
}

test("an ORM created offline without an engine pushes again once the browser is back online", async () => {
  const p = await page({ offline: true });
  await p.evaluate(async (name) => {
    window.db = window.ms.createSyncOrm({ storage: window.ms.createIndexedDbStorage({ name }), models: { todos: window.todos } });
    await window.db.ready;
    await window.db.model("todos").insert({ values: { id: "a", title: "written offline" } });
  }, dbName());
  assert.equal(await p.evaluate(() => window.db.model("todos").getSyncStatus().online), false);
  assert.equal(await p.evaluate(() => window.calls.length), 0, "nothing is pushed offline");

  await p.context().setOffline(false);
  await p.waitForFunction(() => window.db.model("todos").getSyncStatus().online === true, null, { timeout: 5000 });
  // No loop runs: the next write pushes (its own and the queued one), as does retryPendingSync.
  await p.evaluate(() => window.db.model("todos").insert({ values: { id: "b", title: "written online" } }));
  await p.waitForFunction(() => window.db.model("todos").getSyncStatus().pendingCount === 0, null, { timeout: 5000 });
  assert.equal(await p.evaluate(() => window.calls.length), 2);

  await p.context().setOffline(true);
  await p.evaluate(() => window.db.model("todos").insert({ values: { id: "c", title: "offline again" } }));
  await p.context().setOffline(false);
  await p.waitForFunction(() => window.db.model("todos").getSyncStatus().online === true, null, { timeout: 5000 });
  await p.evaluate(() => window.db.retryPendingSync());
  assert.equal(await p.evaluate(() => window.db.model("todos").getSyncStatus().pendingCount), 0, "retryPendingSync pushed it");
  assert.equal(await p.evaluate(() => window.calls.length), 3);
  await p.evaluate(() => window.db.close());
  await p.context().close();
});

test("createSyncEngine with a custom detector drains by that detector, not navigator.onLine", async () => {
  const p = await page({ offline: true });
  const out = await p.evaluate(async (name) => {
    const { ms } = window;
    // The app knows better than the browser: its detector says online.
    const listeners = new Set();
    const detector = { online: true, isOnline: () => detector.online, subscribe: (l) => (listeners.add(l), () => listeners.delete(l)) };
    const db = (window.db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { todos: window.todos } }));
    const engine = ms.createSyncEngine({ db, intervalMs: 60_000, networkDetector: detector });
    engine.start();
    await db.ready;
    await db.model("todos").insert({ values: { id: "a", title: "x" } });
    await db.retryPendingSync();
    const first = { calls: window.calls.length, online: db.model("todos").getSyncStatus().online, running: engine.running };
    // The detector goes offline: nothing is pushed, even by hand.
    detector.online = false;
    for (const l of listeners) l(false);
    await db.model("todos").insert({ values: { id: "b", title: "y" } });
    await db.retryPendingSync();
    const offline = { calls: window.calls.length, pending: db.model("todos").getSyncStatus().pendingCount };
    // And back: the engine drains at once on the detector's event.
    detector.online = true;
    for (const l of listeners) l(true);
    await new Promise((r) => setTimeout(r, 300));
    engine.stop();
    return { first, offline, back: { calls: window.calls.length, pending: db.model("todos").getSyncStatus().pendingCount, running: engine.running, listeners: listeners.size } };
  }, dbName());
  assert.deepEqual(out.first, { calls: 1, online: true, running: true });
  assert.deepEqual(out.offline, { calls: 1, pending: 1 });
  assert.deepEqual(out.back, { calls: 2, pending: 0, running: false, listeners: 1 });
  await p.evaluate(() => window.db.close());
  assert.equal(await p.evaluate(() => window.calls.length), 2);
  await p.context().close();
});

test("a failed push is retried when its backoff ends, not at the next interval tick", async () => {
  const p = await page();
  const out = await p.evaluate(async (name) => {
    const { ms } = window;
    window.failures = 1;
    // The default interval: 30 s.
    const db = (window.db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { todos: window.todos }, engine: {} }));
    await db.model("todos").insert({ values: { id: "a", title: "x" } });
    const deadline = Date.now() + 5000;
    while (window.calls.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const [failed] = await db.pending();
    return { calls: window.calls, pendingAfter: db.model("todos").getSyncStatus().pendingCount, failedNext: failed?.nextAttemptAt ?? null };
  }, dbName());
  assert.equal(out.calls.length, 2, "retried within 5 s (the backoff is 0.5 to 1 s)");
  const gap = out.calls[1].at - out.calls[0].at;
  assert.ok(gap >= 400 && gap < 2500, `retried ${gap} ms after the failure`);
  assert.equal(out.calls[0].id, out.calls[1].id, "the same mutation id");
  await p.waitForFunction(() => window.db.model("todos").getSyncStatus().pendingCount === 0);
  await p.evaluate(() => window.db.close());
  await p.context().close();
});
