import { chromium } from "playwright-core";
import { CHROMIUM_ARGS } from "../js/harness.mjs";
import { startServer } from "../../www/server.mjs";
const server = await startServer(0);
const origin = `http://127.0.0.1:${server.address().port}`;
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
const all = [];
for (let rep = 0; rep < 3; rep++) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/tests/bench/page.html`);
  const out = await page.evaluate(async () => {
    const ms = await import("micro-sync");
    const res = {};
    for (const kind of ["memory", "indexeddb"]) {
      const users = ms.defineModel("users", { primaryKey: "id", indexes: ["status"] });
      const db = ms.createSyncOrm({ storage: kind === "memory" ? ms.createMemoryStorage() : ms.createIndexedDbStorage({ name: "w1" + Math.random() }), models: { users } });
      await db.model("users").count();
      const N = 1500;
      let t = performance.now();
      for (let i = 0; i < N; i++) await db.model("users").insert({ values: { id: "u" + i, name: "Ada " + i, email: `u${i}@x.com`, age: i % 80, status: "vip" } });
      res[kind + "-insert"] = Math.round(N / ((performance.now() - t) / 1000));
      t = performance.now();
      for (let i = 0; i < N; i++) await db.model("users").update({ where: { id: "u" + i }, values: { age: 1 } });
      res[kind + "-update"] = Math.round(N / ((performance.now() - t) / 1000));
      await db.close();
    }
    return res;
  });
  all.push(out);
  await context.close();
}
console.log(JSON.stringify(all));
await browser.close(); server.close();
