// Shared set-up for the JS tests: the static server and headless Debian Chromium via
// playwright-core (never a downloaded browser).
import { chromium } from "playwright-core";
import { startServer } from "../../www/server.mjs";

export const CHROMIUM_ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
];

export async function launch({ api = null } = {}) {
  const server = await startServer(0, api);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
  const errors = [];
  return {
    origin,
    browser,
    errors,
    /** A fresh context (empty profile) with the test page loaded. */
    async page(path = "/tests/js/page.html", context = null) {
      context ??= await browser.newContext();
      const page = await context.newPage();
      page.on("pageerror", (e) => errors.push(e));
      // Vue reports render errors on the console rather than as page errors.
      page.on("console", (m) => m.type() === "error" && /Vue warn|Unhandled error/i.test(m.text()) && errors.push(m.text()));
      await page.goto(origin + path);
      return page;
    },
    async close() {
      await browser.close();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/**
 * Registers one node:test test per case of a browser-side suite (`tests/js/<file>`, whose
 * `cases` are `async "name"(kind)` methods and whose `run(kind, name)` runs one), for each storage
 * kind, all in one page; then checks the page threw nothing uncaught.
 */
export async function browserSuite(file, { test, before, after, assert, minCases }) {
  const { readFile } = await import("node:fs/promises");
  let env;
  let page;
  before(async () => {
    env = await launch();
    page = await env.page();
  });
  after(async () => env?.close());
  // Case names are read from the module's source so each becomes its own test.
  const source = await readFile(new URL(`./${file}`, import.meta.url), "utf8");
  const names = [...source.matchAll(/^  async "([^"]+)"\(kind\)/gm)].map((m) => m[1]);
  assert.ok(names.length >= minCases, `${file}: suite cases found`);
  for (const kind of ["memory", "indexeddb"]) {
    for (const name of names) {
      test(`${kind}: ${name}`, async () => {
        const error = await page.evaluate(
          async ([file, kind, name]) => {
            try {
              const suite = await import(`/tests/js/${file}`);
              await suite.run(kind, name);
              return null;
            } catch (e) {
              return `${e.name}: ${e.message}`;
            }
          },
          [file, kind, name],
        );
        assert.equal(error, null);
      });
    }
  }
  test("no uncaught errors in the page", () => assert.deepEqual(env.errors, []));
}
