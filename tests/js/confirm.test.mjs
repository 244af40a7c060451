// Confirmations in headless Chromium against the built package: a write's mutationIds, whenSynced
// resolving or rejecting, the rejected list kept in IndexedDB across reopen and shared by tabs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./harness.mjs";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

const dbName = () => `confirm-${Math.random().toString(36).slice(2)}`;

// Runs in the page: an ORM on IndexedDB database `name` whose push hook rejects titles saying
// "forbidden" for good and accepts the rest; `online` decides whether this tab pushes at all.
async function setup([name, online]) {
  const ms = await import("micro-sync");
  const detector = { isOnline: () => online, subscribe: () => () => {} };
  window.pushed = [];
  const notes = ms.defineModel("notes", {
    primaryKey: "id",
    sync: {
      mutation: async (m) => {
        if (JSON.stringify(m.query).includes("forbidden")) throw Object.assign(new Error("title not allowed"), { retryable: false });
        window.pushed.push(m.mutationId);
      },
    },
  });
  window.ms = ms;
  window.open_ = () => ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { notes }, engine: { intervalMs: 30, networkDetector: detector } });
  window.db = window.open_();
  window.notes = window.db.model("notes");
  window.settled = (p) => p.then((v) => ({ ok: v ?? null }), (e) => ({ error: e.name, message: e.message, mutationId: e.mutationId }));
}

test("a write's mutationIds, whenSynced resolving and rejecting, the rejected list surviving a reopen until acknowledged", async () => {
  const page = await env.page();
  await page.evaluate(setup, [dbName(), true]);
  const r = await page.evaluate(async () => {
    const ok = await notes.insert({ values: { id: 1, title: "fine" } });
    const shape = { keys: Object.keys(ok), json: JSON.stringify(ok), ids: [...ok.mutationIds] };
    const okSynced = await settled(db.whenSynced(ok));
    const bad = await notes.insert({ values: { id: 2, title: "forbidden" } });
    const badSynced = await settled(db.whenSynced(bad.mutationIds));
    const row2 = await notes.get(2);
    const listed = await db.rejected();
    await db.close();
    window.db = open_();
    const afterReopen = await db.rejected();
    const again = await settled(db.whenSynced(listed[0].mutationId));
    const ack = await db.acknowledgeRejected(listed[0].mutationId);
    const ackAgain = await db.acknowledgeRejected(listed[0].mutationId);
    const left = await db.rejected();
    const allNow = await settled(db.whenSynced());
    const badArg = await settled(db.whenSynced([1]));
    const nullArg = await settled(db.whenSynced(null));
    const local = await window.db.model("notes").update({ where: { id: 99 }, values: { title: "x" } });
    return { shape, pushed: [...pushed], okSynced, bad: [...bad.mutationIds], badSynced, row2, listed, afterReopen, again, ack, ackAgain, left, allNow, badArg, nullArg, localIds: [...local.mutationIds] };
  });
  assert.deepEqual(r.shape.keys, ["0"], "mutationIds is not enumerable");
  assert.equal(r.shape.json, '[{"id":1,"title":"fine"}]');
  assert.equal(r.shape.ids.length, 1);
  assert.deepEqual(r.okSynced, { ok: null });
  assert.ok(r.pushed.includes(r.shape.ids[0]), "resolved once the backend had it");
  assert.equal(r.badSynced.error, "RejectedWriteError");
  assert.equal(r.badSynced.mutationId, r.bad[0]);
  assert.match(r.badSynced.message, /title not allowed/);
  assert.equal(r.row2, null, "rolled back");
  assert.equal(r.listed.length, 1);
  assert.equal(r.listed[0].mutationId, r.bad[0]);
  assert.equal(r.listed[0].error, "title not allowed");
  assert.deepEqual(r.listed[0].rows, [{ id: 2, title: "forbidden" }], "the rows as the write had made them");
  assert.deepEqual(r.afterReopen, r.listed, "kept in IndexedDB");
  assert.equal(r.again.error, "RejectedWriteError", "still rejected after a reopen");
  assert.deepEqual([r.ack, r.ackAgain], [true, false]);
  assert.deepEqual(r.left, []);
  assert.deepEqual(r.allNow, { ok: null });
  assert.equal(r.badArg.error, "QueryError");
  assert.equal(r.nullArg.error, "QueryError");
  assert.deepEqual(r.localIds, [], "a write that changed nothing queued nothing");
  await page.evaluate(() => db.close());
});

test("two tabs: a tab that does not push sees its writes confirmed or rejected by the tab that does, and an acknowledgement reaches both", async () => {
  const name = dbName();
  const context = await env.browser.newContext();
  const pusher = await env.page("/tests/js/page.html", context);
  const writer = await env.page("/tests/js/page.html", context);
  await writer.evaluate(setup, [name, false]);
  await writer.evaluate(() => db.ready);
  for (let round = 0; round < 5; round++) {
    // The writer queues while no tab pushes, then waits while the pusher (opened now) drains.
    const ids = await writer.evaluate(async (round) => {
      const a = await notes.insert({ values: { id: `ok-${round}`, title: "fine" } });
      const b = await notes.insert({ values: { id: `bad-${round}`, title: "forbidden" } });
      window.waitA = settled(db.whenSynced(a));
      window.waitB = settled(db.whenSynced(b));
      window.waitAll = settled(db.whenSynced());
      return [a.mutationIds[0], b.mutationIds[0]];
    }, round);
    await pusher.evaluate(setup, [name, true]);
    const seen = await writer.evaluate(async () => ({ a: await waitA, b: await waitB, all: await waitAll, rejected: (await db.rejected()).map((e) => e.mutationId), pending: (await db.pending()).length }));
    assert.deepEqual(seen.a, { ok: null }, `round ${round}`);
    assert.equal(seen.b.error, "RejectedWriteError");
    assert.equal(seen.b.mutationId, ids[1]);
    assert.equal(seen.all.error, "RejectedWriteError", "waiting for everything pending includes the rejected write");
    assert.deepEqual(seen.rejected, [ids[1]]);
    assert.equal(seen.pending, 0);
    assert.ok(await pusher.evaluate((id) => pushed.includes(id), ids[0]));
    // The pusher acknowledges; the writer's list empties through the shared database.
    assert.equal(await pusher.evaluate((id) => db.acknowledgeRejected(id), ids[1]), true);
    await writer.waitForFunction(async () => (await db.rejected()).length === 0, null, { timeout: 5000 });
    await pusher.evaluate(() => db.close());
  }
  await writer.evaluate(() => db.close());
  await context.close();
});
