// The README's quick start, taken from README.md and run as written in a module page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { launch } from "./harness.mjs";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

test("README quick start runs as written", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Quick start"));
  const code = section.match(/```ts\n([\s\S]*?)```/)[1];
  assert.match(code, /createSyncOrm/);
  const page = await env.page();
  const result = await page.evaluate(async (code) => {
    const url = URL.createObjectURL(new Blob([`${code}\nwindow.quickstart = rows;`], { type: "text/javascript" }));
    try {
      await import(url);
      return window.quickstart;
    } catch (e) {
      return `${e.name}: ${e.message}`;
    }
  }, code);
  assert.ok(Array.isArray(result), String(result));
  assert.equal(result.length, 1);
  assert.equal(result[0].name, "Ada");
  assert.deepEqual(result[0].posts, [{ title: "Notes" }]);
  await page.context().close();
});
