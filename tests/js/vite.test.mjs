// The packed npm tarball in a Vite production build (no wasm plugin), run in Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";
import { launch } from "./harness.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const app = join(root, "tests", "vite-app");

let env;
before(async () => (env = await launch()));
after(async () => env?.close());

test("npm pack → install into a Vite app → production build → runs in Chromium", async () => {
  const packDir = mkdtempSync(join(tmpdir(), "micro-sync-pack-"));
  execFileSync("npm", ["pack", join(root, "pkg"), "--pack-destination", packDir, "--loglevel=error"], { stdio: "pipe" });
  const tarball = readdirSync(packDir).find((f) => f.endsWith(".tgz"));
  assert.ok(tarball, "npm pack produced a tarball");
  const listed = execFileSync("tar", ["-tzf", join(packDir, tarball)], { encoding: "utf8" }).split("\n");
  for (const f of ["package/README.md", "package/LICENSE", "package/micro_sync_bg.wasm", "package/index.d.ts"]) {
    assert.ok(listed.includes(f), `the tarball holds ${f}: ${listed.join(", ")}`);
  }
  const target = join(app, "node_modules", "micro-sync");
  rmSync(target, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  execFileSync("tar", ["-xzf", join(packDir, tarball), "--strip-components=1", "-C", target]);
  rmSync(packDir, { recursive: true, force: true });

  await build({ root: app, configFile: join(app, "vite.config.mjs") });
  const assets = readdirSync(join(app, "dist", "assets"));
  assert.ok(assets.some((f) => f.endsWith(".wasm")), `the .wasm was emitted as an asset: ${assets}`);

  const page = await env.page("/tests/vite-app/dist/index.html");
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 15000 });
  const result = await page.evaluate(() => window.result);
  assert.deepEqual(result, { rows: [{ id: 1, text: "built with vite" }] });
  await page.context().close();
});
