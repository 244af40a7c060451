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
