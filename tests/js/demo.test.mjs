// End to end: the demo app and its real backend (PGlite in memory) in Chromium, across offline and
// online. Screenshots of each state are saved in tests/artifacts/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { launch } from "./harness.mjs";

process.env.DEMO_DATA_DIR = "memory://";
const { createBackend } = await import("../../www/backend.mjs");
const shots = new URL("../artifacts/", import.meta.url).pathname;
mkdirSync(shots, { recursive: true });

let env;
let backend;
before(async () => {
  backend = await createBackend();
  env = await launch({ api: backend.handle });
});
after(async () => {
  await env?.close();
  await backend?.close();
});

test(`the backend runs on ${process.env.DATABASE_URL ? "PostgreSQL (DATABASE_URL)" : "PGlite, embedded"}`, async () => {
  const { rows } = await backend.query("select version() as v");
  assert.match(rows[0].v, /PostgreSQL/);
  const embedded = /emscripten|wasm/i.test(rows[0].v);
  assert.equal(embedded, !process.env.DATABASE_URL, rows[0].v);
});

const count = async (sql, params = []) => Number((await backend.query(sql, params)).rows[0].n);
const openDemo = async (context) => {
  const page = await env.page("/", context);
  await page.waitForFunction(() => window.demo?.sync);
  return page;
};
const tasks = (page) => page.evaluate(() => window.demo.sync.db.model("tasks"));
const waitPending = (page, n) => page.waitForFunction((n) => document.querySelector("[data-test=pending]")?.textContent === `${n} pending`, n, { timeout: 20000 });
const addTask = async (page, title) => {
  await page.fill("[data-test=new-task]", title);
  await page.click("[data-test=add-task]");
  await page.waitForFunction((t) => (document.querySelector("[data-test=tasks]")?.textContent ?? "").includes(t), title);
};
const addProject = async (page, name) => {
  await page.fill("[data-test=new-project]", name);
  await page.press("[data-test=new-project]", "Enter");
  await page.waitForFunction((n) => document.querySelector(".projects li.active")?.textContent.includes(n), name);
};
const titles = (page) => page.evaluate(async () => (await window.demo.sync.db.model("tasks").select({ orderBy: [{ field: "title" }] })).map((t) => t.title));

test("two devices: A offline writes, B online writes, both converge; each mutation stored once", async () => {
  const ctxA = await env.browser.newContext({ viewport: { width: 1150, height: 760 } });
  const ctxB = await env.browser.newContext({ viewport: { width: 1150, height: 760 } });
  const a = await openDemo(ctxA);
  await addProject(a, "Launch");
  await addTask(a, "Write the spec");
  await waitPending(a, 0);
  const b = await openDemo(ctxB);
  await b.waitForFunction(() => (document.querySelector("[data-test=tasks]")?.textContent ?? "").includes("Write the spec"), null, { timeout: 15000 });

  await ctxA.setOffline(true);
  await a.waitForFunction(() => (document.querySelector("[data-test=status]")?.textContent ?? "").includes("offline"));
  await addTask(a, "Offline on A");
  await addTask(a, "Also offline on A");
  await waitPending(a, 2);
  await a.screenshot({ path: `${shots}demo-offline.png` });
  await addTask(b, "Online on B");
  await waitPending(b, 0);

  await ctxA.setOffline(false);
  await waitPending(a, 0);
  await a.evaluate(() => window.demo.pull());
  await b.evaluate(() => window.demo.pull());
  const expected = ["Also offline on A", "Offline on A", "Online on B", "Write the spec"];
  assert.deepEqual(await titles(a), expected);
  assert.deepEqual(await titles(b), expected);
  await a.screenshot({ path: `${shots}demo-converged.png` });

  assert.equal(await count(`select count(*) as n from rows where model = 'tasks'`), 4);
  assert.equal(await count(`select count(*) as n from mutations`), 5, "1 project + 4 task inserts, each once");
  await ctxA.close();
  await ctxB.close();
});

test("closing the page mid-drain loses nothing and applies nothing twice", async () => {
  const ctx = await env.browser.newContext({ viewport: { width: 1150, height: 760 } });
  let page = await openDemo(ctx);
  const before = await count(`select count(*) as n from mutations`);
  await page.evaluate(() => fetch("/api/test/delay", { method: "POST", body: JSON.stringify({ ms: 250 }) }));
  // Ten acknowledged writes: each insert resolved, so each is in IndexedDB (row + outbox entry).
  await page.evaluate(async () => {
    const db = window.demo.sync.db;
    const [p] = await db.model("projects").insert({ values: { name: "Crash test" } });
    for (let i = 0; i < 10; i++) {
      await db.model("tasks").insert({ values: { projectId: p.id, title: `acknowledged ${i}`, createdAt: new Date().toISOString() } });
    }
  });
  await page.close(); // pushes are in flight
  const mid = await count(`select count(*) as n from mutations`);
  assert.ok(mid - before < 11, `the page closed before everything was pushed (${mid - before} of 11)`);
  await env.page("/", ctx).then((p) => p.evaluate(() => fetch("/api/test/delay", { method: "POST", body: JSON.stringify({ ms: 0 }) })).then(() => p.close()));

  page = await openDemo(ctx);
  // Before the database is open the status cannot know the pending count yet: ask the outbox.
  await page.waitForFunction(async () => (await window.demo.sync.db.pending()).length === 0, null, { timeout: 20000 });
  await waitPending(page, 0);
  assert.equal(await count(`select count(*) as n from mutations`), before + 11, "every acknowledged write arrived exactly once");
  assert.equal(await count(`select count(*) as n from rows where model = 'tasks' and data->>'title' like 'acknowledged %'`), 10);
  await page.screenshot({ path: `${shots}demo-after-reopen.png` });
  await ctx.close();
});

test("a permanent rejection shows the error and rolls the row back", async () => {
  const ctx = await env.browser.newContext({ viewport: { width: 1150, height: 760 } });
  const page = await openDemo(ctx);
  await addProject(page, "Rules");
  await waitPending(page, 0);
  // The backend may reject it before the list ever shows it: don't wait for it to appear.
  await page.fill("[data-test=new-task]", "A forbidden task");
  await page.click("[data-test=add-task]");
  await page.waitForFunction(() => document.querySelector("[data-test=last-error]")?.textContent.includes("rejected"), null, { timeout: 15000 });
  await page.waitForFunction(() => !(document.querySelector("[data-test=tasks]")?.textContent ?? "").includes("A forbidden task"));
  const local = await page.evaluate(() => window.demo.sync.db.model("tasks").count({ where: { title: "A forbidden task" } }));
  assert.equal(local, 0, "rolled back locally");
  const error = await page.textContent("[data-test=last-error]");
  assert.match(error, /not accepted/);
  assert.equal(await count(`select count(*) as n from rows where data->>'title' = 'A forbidden task'`), 0);
  // The rejected write is listed with the backend's reason until dismissed.
  await page.waitForSelector("[data-test=rejected-list]");
  assert.match(await page.textContent("[data-test=rejected-list]"), /A forbidden task.*not accepted/s);
  // A write the backend accepted gets its tick once confirmed.
  await addTask(page, "An accepted task");
  await page.waitForFunction(() => [...document.querySelectorAll("[data-test=tasks] li")].some((li) => li.textContent.includes("An accepted task") && li.querySelector("[data-test=confirm]")?.textContent === "✓"), null, { timeout: 15000 });
  await page.screenshot({ path: `${shots}demo-rejected.png` });
  await page.click("[data-test=dismiss]");
  await page.waitForFunction(() => !document.querySelector("[data-test=rejected-list]"));
  assert.deepEqual(await page.evaluate(() => window.demo.sync.db.rejected()), []);
  await ctx.close();
  assert.deepEqual(env.errors, []);
});

test("going online with 1,000 pending writes: a few batched requests, each write applied once, in order", async () => {
  const context = await env.browser.newContext({ viewport: { width: 1150, height: 760 } });
  const page = await openDemo(context);
  await addProject(page, "Bulk");
  await waitPending(page, 0);
  const before = await backend.stats();
  await context.setOffline(true);
  await page.waitForFunction(() => (document.querySelector("[data-test=status]")?.textContent ?? "").includes("offline"));
  // 700 new tasks, then 300 edits of some of them (renames and ticks): 1,000 writes, queued.
  const written = await page.evaluate(async () => {
    const repo = window.demo.sync.db.model("tasks");
    const projectId = (await window.demo.sync.db.model("projects").select({ where: { name: "Bulk" } }))[0].id;
    const calls = [];
    for (let i = 0; i < 700; i++) calls.push(repo.insert({ values: { id: `bulk-${i}`, projectId, title: `bulk ${i}`, createdAt: new Date(2026, 0, 1, 0, 0, i).toISOString() } }));
    for (let i = 0; i < 300; i++) calls.push(repo.update({ where: { id: `bulk-${(i * 7) % 700}` }, values: i % 2 ? { done: true } : { title: `bulk ${(i * 7) % 700} (edited ${i})` } }));
    await Promise.all(calls);
    return (await window.demo.sync.db.pending()).length;
  });
  assert.equal(written, 1000, "1,000 writes wait in the outbox");
  await context.setOffline(false);
  await waitPending(page, 0);
  const after = await backend.stats();
  const requests = after.requests - before.requests;
  assert.ok(requests <= 12, `drained in ${requests} requests`);
  // The backend holds exactly what the page shows.
  const local = await page.evaluate(async () => (await window.demo.sync.db.model("tasks").select({ where: { title: { like: "bulk%" } }, orderBy: [{ field: "id" }] })));
  const remote = (await backend.query(`select data from rows where model = 'tasks' and id like 'bulk-%' order by id`)).rows.map((r) => (typeof r.data === "string" ? JSON.parse(r.data) : r.data));
  assert.equal(local.length, 700);
  assert.deepEqual(remote, local);
  assert.match(await page.textContent("[data-test=batches]"), /writes sent in \d+ requests/);
  await page.screenshot({ path: `${shots}demo-batches.png` });
  await context.close();
});
