// The built package, imported as users import it: under Node (SSR) and in a plain module page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launch } from "./harness.mjs";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

test("Node import: memory storage works, IndexedDB storage reports it is unavailable", async () => {
  const ms = await import("../../pkg/index.js");
  const users = ms.defineModel("users", { primaryKey: "id" });
  const db = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { users } });
  await db.model("users").insert({ values: [{ id: 1, name: "Ada" }, { id: 2, name: "Alan" }] });
  const rows = await db.model("users").select({ where: { name: { fzlike: "aln" } } });
  assert.deepEqual(rows, [{ id: 2, name: "Alan" }]);

  const idb = ms.createSyncOrm({ storage: ms.createIndexedDbStorage(), models: { users } });
  await assert.rejects(idb.model("users").select(), (e) => e.name === "StorageError" && /IndexedDB is not available/.test(e.message));
});

test("plain <script type=module> page: IndexedDB round trip that survives a reload", async () => {
  const page = await env.page("/tests/js/plain.html");
  await page.waitForFunction(() => window.result !== undefined);
  const first = await page.evaluate(() => window.result);
  assert.equal(first.error, undefined, first.error);
  assert.deepEqual(first.rows, [{ id: "t1", title: "write the spec", done: false }]);

  await page.reload();
  await page.waitForFunction(() => window.result !== undefined);
  const second = await page.evaluate(() => window.result);
  assert.equal(second.error, undefined, second.error);
  assert.equal(second.before, 1, "the row inserted before the reload is still stored");
  await page.context().close();
  assert.deepEqual(env.errors, []);
});
