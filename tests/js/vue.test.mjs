// The Vue adapter in a real Vue app in Chromium: rows and status re-render the component, and
// unmounting stops the engine and releases every subscription.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./harness.mjs";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

test("useRepo re-renders on data and status changes and cleans up with the scope", async () => {
  const page = await env.page();
  await page.evaluate(async () => {
    const { createApp, h } = await import("vue");
    const ms = await import("micro-sync");
    const { useSyncOrm } = await import("micro-sync/adapters/vue");
    // A detector the test controls, counting its subscriptions.
    const detector = {
      online: false,
      listeners: new Set(),
      isOnline() { return this.online; },
      subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); },
      set(v) { this.online = v; for (const fn of this.listeners) fn(v); },
    };
    const pushed = [];
    const notes = ms.defineModel("notes", { primaryKey: "id", sync: { mutation: async (m) => pushed.push(m.mutationId) } });
    window.t = { detector, pushed };
    const app = createApp({
      setup() {
        const sync = useSyncOrm({ storage: ms.createMemoryStorage(), models: { notes }, engine: { intervalMs: 50, networkDetector: detector } });
        const repo = sync.useRepo("notes");
        repo.select({ orderBy: [{ field: "id" }] });
        window.t.sync = sync;
        return () => h("div", [
          h("ul", repo.rows.value.map((r) => h("li", { key: r.id }, r.text))),
          h("p", { id: "status" }, `pending=${repo.status.value.pendingCount} online=${repo.status.value.online} running=${repo.status.value.engineRunning}`),
        ]);
      },
    });
    app.mount("#app");
    window.t.app = app;
    await window.t.sync.db.ready;
  });
  await page.waitForFunction(() => document.querySelector("#status")?.textContent === "pending=0 online=false running=true");
  await page.evaluate(() => window.t.sync.db.model("notes").insert({ values: [{ id: 1, text: "first" }, { id: 2, text: "second" }] }));
  await page.waitForFunction(() => document.querySelectorAll("li").length === 2);
  await page.waitForFunction(() => document.querySelector("#status").textContent === "pending=1 online=false running=true");
  await page.evaluate(() => window.t.detector.set(true));
  await page.waitForFunction(() => document.querySelector("#status").textContent === "pending=0 online=true running=true");
  assert.equal(await page.evaluate(() => window.t.pushed.length), 1);
  await page.evaluate(() => window.t.sync.db.model("notes").delete({ where: { id: 1 } }));
  await page.waitForFunction(() => [...document.querySelectorAll("li")].map((l) => l.textContent).join() === "second");

  const after = await page.evaluate(async () => {
    window.t.app.unmount();
    const closed = await window.t.sync.db.model("notes").count().then(() => "open", (e) => e.name);
    return { listeners: window.t.detector.listeners.size, closed };
  });
  assert.deepEqual(after, { listeners: 0, closed: "DatabaseClosedError" });
  assert.deepEqual(env.errors, []);
});

test("useQuery: an app-wide ORM from the plugin, reactive inputs, errors, and no leak over 100 mounts", async () => {
  const page = await env.page();
  const result = await page.evaluate(async () => {
    const { createApp, h, ref, nextTick } = await import("vue");
    const ms = await import("micro-sync");
    const { syncOrmPlugin, useQuery, useSyncOrm } = await import("micro-sync/adapters/vue");
    const todos = ms.defineSyncModel("todos", { primaryKey: "id", indexes: ["done"] });
    const tags = ms.defineSyncModel("tags", { primaryKey: "id" });
    ms.defineRelations(todos, { tags: ms.hasMany(tags, "id", "todoId") });
    const db = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { todos, tags } });
    await db.model("todos").insert({ values: [{ id: 1, text: "a", done: false }, { id: 2, text: "b", done: true }] });
    const until = async (f) => {
      for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
      return f();
    };
    const text = () => document.querySelector("#app").textContent;

    const done = ref(false);
    const List = {
      setup() {
        const { data, error, isLoading } = useQuery("todos", () => ({ where: { done: done.value }, relations: { tags: { fields: ["name"] } } }));
        return () => h("p", isLoading.value ? "loading" : error.value ? `error ${error.value.name}` : data.value.map((t) => `${t.text}[${t.tags.map((g) => g.name)}]`).join(","));
      },
    };
    const app = createApp(List);
    app.use(syncOrmPlugin, db);
    app.mount("#app");
    const steps = {};
    steps.first = await until(() => text() === "a[]") && text();
    await db.model("tags").insert({ values: { id: "t", todoId: 1, name: "x" } });
    steps.relation = await until(() => text() === "a[x]") && text();
    done.value = true; // a reactive input
    steps.input = await until(() => text() === "b[]") && text();
    await db.model("todos").insert({ values: { id: 3, text: "c", done: true } });
    steps.write = await until(() => text() === "b[],c[]") && text();
    app.unmount();

    // An invalid query shows its error; fixing the input brings rows back.
    const field = ref("nope");
    const Bad = { setup() { const q = useQuery("todos", () => ({ relations: { [field.value]: true } })); return () => h("p", q.error.value ? `error ${q.error.value.name}` : `rows ${q.data.value.length}`); } };
    const app2 = createApp(Bad).use(syncOrmPlugin, { db });
    app2.mount("#app");
    steps.error = await until(() => text() === "error QueryError") && text();
    field.value = "tags";
    steps.recovered = await until(() => text() === "rows 3") && text();
    app2.unmount();

    // 100 mount/unmount cycles of a component using useQuery leave no subscription behind.
    const base = db._subscriptions;
    for (let i = 0; i < 100; i++) {
      const a = createApp(List).use(syncOrmPlugin, db);
      a.mount("#app");
      await nextTick();
      a.unmount();
    }
    steps.leftover = db._subscriptions - base;

    // Outside an effect scope: a warning and no subscription.
    const warnings = [];
    const warn = console.warn;
    console.warn = (m) => warnings.push(String(m));
    let outside;
    const Late = {
      async setup() {
        const sync = useSyncOrm();
        await Promise.resolve();
        outside = useQuery(sync.db.model("todos"), () => ({}));
        return () => h("p", "late");
      },
    };
    const before = db._subscriptions;
    const { Suspense } = await import("vue");
    const a3 = createApp({ render: () => h(Suspense, null, { default: () => h(Late) }) }).use(syncOrmPlugin, db);
    a3.mount("#app");
    await until(() => outside && !outside.isLoading.value);
    console.warn = warn;
    steps.outside = { warned: warnings.some((w) => /outside an effect scope/.test(w)), rows: outside.data.value.length, subscriptions: db._subscriptions - before };
    a3.unmount();

    // Without any provided ORM: a named error.
    const lonely = createApp({ setup() { useSyncOrm(); return () => null; } });
    steps.missing = "no error";
    lonely.config.errorHandler = (e) => (steps.missing = e.name);
    lonely.mount(document.createElement("div"));
    await db.close();
    return steps;
  });
  assert.deepEqual(result, {
    first: "a[]",
    relation: "a[x]",
    input: "b[]",
    write: "b[],c[]",
    error: "error QueryError",
    recovered: "rows 3",
    leftover: 0,
    outside: { warned: true, rows: 3, subscriptions: 0 },
    missing: "MissingSyncOrmError",
  });
  assert.deepEqual(env.errors, []);
});

test("provideSyncOrm shares one ORM with descendants and closes it with the provider", async () => {
  const page = await env.page();
  const result = await page.evaluate(async () => {
    const { createApp, h } = await import("vue");
    const ms = await import("micro-sync");
    const { provideSyncOrm, useRepo, useQuery } = await import("micro-sync/adapters/vue");
    const notes = ms.defineSyncModel("notes", { primaryKey: "id" });
    let db;
    const Child = {
      setup() {
        const repo = useRepo("notes");
        const { data } = useQuery(repo, () => ({}));
        window.insert = (v) => repo.insert({ values: v });
        return () => h("p", data.value.map((n) => n.text).join(","));
      },
    };
    const app = createApp({
      setup() {
        db = provideSyncOrm({ storage: ms.createMemoryStorage(), models: { notes }, engine: false }).db;
        return () => h(Child);
      },
    });
    app.mount("#app");
    await window.insert({ id: 1, text: "hello" });
    for (let i = 0; i < 100 && document.querySelector("#app").textContent !== "hello"; i++) await new Promise((r) => setTimeout(r, 10));
    const shown = document.querySelector("#app").textContent;
    app.unmount();
    const after = await db.model("notes").count().then(() => "open", (e) => e.name);
    return { shown, after };
  });
  assert.deepEqual(result, { shown: "hello", after: "DatabaseClosedError" });
  assert.deepEqual(env.errors, []);
});
