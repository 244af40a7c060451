// The README's quick start, taken from README.md and run as written in a module page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { launch } from "./harness.mjs";

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

test("README quick start runs as written, twice on one database", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Quick start"));
  const code = section.match(/```ts\n([\s\S]*?)```/)[1];
  assert.match(code, /createSyncOrm/);
  assert.doesNotMatch(code, /^(const|let|var)? *\S* *= *await /m, "no top-level await (it would need an ES2022 build target)");
  const context = await env.browser.newContext();
  for (let run = 1; run <= 2; run++) {
    const page = await env.page("/tests/js/page.html", context);
    const result = await page.evaluate(async (code) => {
      const logged = [];
      const log = console.log;
      console.log = (...args) => logged.push(args);
      const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
      try {
        await import(url);
        for (let i = 0; i < 200 && !logged.some((a) => Array.isArray(a[0])); i++) await new Promise((r) => setTimeout(r, 10));
        return { rows: logged.find((a) => Array.isArray(a[0]))?.[0], live: logged.filter((a) => a[0] === "users now:").map((a) => a[1]) };
      } catch (e) {
        return `${e.name}: ${e.message}`;
      } finally {
        console.log = log;
      }
    }, code);
    assert.ok(Array.isArray(result?.rows), JSON.stringify(result));
    assert.equal(result.rows.length, run, "one Ada per run");
    assert.ok(result.rows.every((r) => r.name === "Ada" && r.posts.length === 1 && r.posts[0].title === "Notes"), JSON.stringify(result.rows));
    assert.ok(result.live.includes(run), `the live query saw ${run} users: ${JSON.stringify(result.live)}`);
    await page.close();
  }
  await context.close();
});
