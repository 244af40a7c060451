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
