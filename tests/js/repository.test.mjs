// Runs the repository behaviour suite (suite.js) in headless Chromium against both storages.
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

// Case names are read from the module's source so each becomes its own node:test test.
const source = await readFile(new URL("./suite.js", import.meta.url), "utf8");
const names = [...source.matchAll(/^  async "([^"]+)"\(kind\)/gm)].map((m) => m[1]);
assert.ok(names.length >= 7, "suite cases found");

for (const kind of ["memory", "indexeddb"]) {
  for (const name of names) {
    test(`${kind}: ${name}`, async () => {
      const error = await page.evaluate(
        async ([kind, name]) => {
          try {
            const suite = await import("/tests/js/suite.js");
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
