// Runs the guarantees suite (guarantees.js) in headless Chromium against both storages.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { launch } from "./harness.mjs";

let env;
let page;
before(async () => {
  env = await launch();
  page = await env.page();
});
after(async () => env?.close());

const source = await readFile(new URL("./guarantees.js", import.meta.url), "utf8");
const names = [...source.matchAll(/^  async "([^"]+)"\(kind\)/gm)].map((m) => m[1]);
assert.ok(names.length >= 10, "guarantee cases found");

for (const kind of ["memory", "indexeddb"]) {
  for (const name of names) {
    test(`${kind}: ${name}`, async () => {
      const error = await page.evaluate(
        async ([kind, name]) => {
          try {
            const suite = await import("/tests/js/guarantees.js");
            await suite.run(kind, name);
            return null;
          } catch (e) {
            return `${e.name}: ${e.message}`;
          }
        },
        [kind, name],
      );
      assert.equal(error, null);
    });
  }
}

test("no uncaught errors in the page", () => assert.deepEqual(env.errors, []));
