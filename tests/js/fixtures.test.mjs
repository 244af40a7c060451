// Apps as users write them, built from the packed npm tarball and loaded in headless Chromium: a
// Vite + Vue 3 + TypeScript app (type-checked with vue-tsc, through the dev server and as a
// production build), Nuxt 3 and Nuxt 4 apps using `micro-sync/nuxt` (production builds, and the
// Nuxt 4 dev server), and a webpack 5 app (development and production mode). Their source is the README's Vue and Nuxt sections, taken verbatim. Each
// shows a live list that must update when another tab writes. The fixtures' npm packages are
// pinned in tests/fixtures/*/package-lock.json and installed by `make tools`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { launch } from "./harness.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const fixtures = join(root, "tests", "fixtures");
const readme = readFileSync(join(root, "README.md"), "utf8");

/** The code blocks of a README section whose first line names a file: `// path` or `<!-- path -->`. */
function readmeFiles(section) {
  const from = readme.indexOf(`\n## ${section}\n`);
  assert.ok(from >= 0, `README has a "${section}" section`);
  const body = readme.slice(from + 1, readme.indexOf("\n## ", from + 4));
  return [...body.matchAll(/```(?:ts|vue)\n([\s\S]*?)```/g)]
    .map(([, code]) => ({ path: code.match(/^(?:\/\/|<!--) ([\w./-]+\.(?:ts|vue))/)?.[1], code }))
    .filter((f) => f.path);
}

function write(dir, files, rename = (p) => p) {
  for (const { path, code } of files) {
    const target = join(dir, rename(path));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, code);
  }
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** Runs a command of a fixture to completion; throws with its output when it fails. */
function run(fixture, command, args, env = {}) {
  try {
    return execFileSync(join(fixtures, fixture, "node_modules", ".bin", command), args, {
      cwd: join(fixtures, fixture),
      encoding: "utf8",
      stdio: "pipe",
      env: { ...process.env, NUXT_TELEMETRY_DISABLED: "1", CI: "1", ...env },
    });
  } catch (e) {
    throw new Error(`${fixture}: ${command} ${args.join(" ")} failed:\n${e.stdout}\n${e.stderr}`);
  }
}

/** Starts a long-running server of a fixture and resolves its URL once it answers HTTP. */
async function serve(fixture, command, args, port, env = {}) {
  const child = spawn(command, args, {
    cwd: join(fixtures, fixture),
    env: { ...process.env, NUXT_TELEMETRY_DISABLED: "1", CI: "1", PORT: String(port), NITRO_PORT: String(port), HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 240; i++) {
    if (child.exitCode !== null) throw new Error(`${fixture}: ${command} ${args.join(" ")} exited:\n${output}`);
    try {
      const res = await fetch(url);
      if (res.ok) return { url, stop: () => process.kill(-child.pid, "SIGTERM"), output: () => output };
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  process.kill(-child.pid, "SIGTERM");
  throw new Error(`${fixture}: ${url} did not answer in 2 minutes:\n${output}`);
}

let env;
before(async () => {
  env = await launch();
  // The package as users get it: npm pack, then the tarball's files as node_modules/micro-sync.
  const packDir = mkdtempSync(join(tmpdir(), "micro-sync-pack-"));
  execFileSync("npm", ["pack", join(root, "pkg"), "--pack-destination", packDir, "--loglevel=error"], { stdio: "pipe" });
  const tarball = join(packDir, readdirSync(packDir).find((f) => f.endsWith(".tgz")));
  for (const fixture of ["vite-vue", "nuxt3", "nuxt4", "webpack"]) {
    const target = join(fixtures, fixture, "node_modules", "micro-sync");
    rmSync(target, { recursive: true, force: true });
    mkdirSync(target, { recursive: true });
    execFileSync("tar", ["-xzf", tarball, "--strip-components=1", "-C", target]);
  }
  rmSync(packDir, { recursive: true, force: true });
});
after(async () => env?.close());

/**
 * Opens `url` in two tabs of one profile; once tab A shows its list, tab B clicks "add", and tab
 * A's list must grow by one without a reload. Asserts neither page logged an error.
 */
async function liveAcrossTabs(url) {
  const context = await env.browser.newContext();
  const errors = [];
  const open = async () => {
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(`${e.name}: ${e.message}`));
    page.on("console", (m) => m.type() === "error" && !/favicon/.test(m.location()?.url ?? "") && errors.push(m.text()));
    await page.goto(url);
    await page.waitForSelector("ul", { state: "attached", timeout: 60_000 });
    return page;
  };
  const a = await open();
  const b = await open();
  const count = (page) => page.locator("li").count();
  const start = await count(a);
  for (let i = 1; i <= 3; i++) {
    await b.getByRole("button", { name: "add" }).click();
    await a.waitForFunction((n) => document.querySelectorAll("li").length === n, start + i, { timeout: 15_000 });
  }
  assert.equal(await count(b), start + 3, "the writing tab shows its rows too");
  await context.close();
  assert.deepEqual(errors, [], "no errors in the pages");
}

test("Vite + Vue (README's Vue section): vue-tsc, dev server and production build, live across tabs", { timeout: 600_000 }, async () => {
  const app = join(fixtures, "vite-vue");
  rmSync(join(app, "src"), { recursive: true, force: true });
  const files = readmeFiles("Vue");
  assert.deepEqual(files.map((f) => f.path).sort(), ["src/App.vue", "src/main.ts", "src/models.ts"]);
  write(app, files);
  run("vite-vue", "vue-tsc", ["--noEmit", "-p", "."]);

  const devPort = await freePort();
  const dev = await serve("vite-vue", join(app, "node_modules", ".bin", "vite"), ["--port", String(devPort), "--strictPort", "--host", "127.0.0.1"], devPort);
  try {
    await liveAcrossTabs(dev.url);
  } finally {
    dev.stop();
  }

  run("vite-vue", "vite", ["build"]);
  const assets = readdirSync(join(app, "dist", "assets"));
  assert.ok(assets.some((f) => f.endsWith(".wasm")), `the .wasm is an asset of the build: ${assets}`);
  assert.ok(!assets.some((f) => /micro_sync_wasm/.test(f)), "the development-only inlined module is not in the production build");
  const port = await freePort();
  const preview = await serve("vite-vue", join(app, "node_modules", ".bin", "vite"), ["preview", "--port", String(port), "--strictPort", "--host", "127.0.0.1"], port);
  try {
    await liveAcrossTabs(preview.url);
  } finally {
    preview.stop();
  }
});

for (const [fixture, layout] of [["nuxt3", "root"], ["nuxt4", "app"]]) {
  test(`${fixture === "nuxt3" ? "Nuxt 3" : "Nuxt 4"} (README's Nuxt section, ${layout === "app" ? "app/ directory, nuxi typecheck" : "files at the root"}): nuxi build, server-side rendering, live across tabs`, { timeout: 600_000 }, async () => {
    const dir = join(fixtures, fixture);
    const files = readmeFiles("Nuxt");
    assert.deepEqual(files.map((f) => f.path).sort(), ["app/app.vue", "app/models.ts", "nuxt.config.ts"]);
    rmSync(join(dir, "app"), { recursive: true, force: true });
    write(dir, files, (p) => (layout === "root" ? p.replace(/^app\//, "") : p));
    // Type-checks the README's files with the types the module generates ($sync, useQuery by name).
    if (layout === "app") run(fixture, "nuxi", ["typecheck"]);
    run(fixture, "nuxi", ["build"]);
    const port = await freePort();
    const server = await serve(fixture, "node", [".output/server/index.mjs"], port);
    try {
      const html = await (await fetch(server.url)).text();
      assert.match(html, /loading/, "the server renders the loading state (no IndexedDB there)");
      await liveAcrossTabs(server.url);
    } finally {
      server.stop();
    }
  });
}

// The dev servers, on the files the build tests above wrote.
for (const fixture of ["nuxt3", "nuxt4"]) {
  test(`${fixture === "nuxt3" ? "Nuxt 3" : "Nuxt 4"} dev server (nuxi dev): live across tabs`, { timeout: 600_000 }, async () => {
    const port = await freePort();
    const dev = await serve(fixture, join(fixtures, fixture, "node_modules", ".bin", "nuxi"), ["dev", "--port", String(port), "--host", "127.0.0.1", "--no-fork"], port);
    try {
      await liveAcrossTabs(dev.url);
    } finally {
      dev.stop();
    }
  });
}

test("webpack 5 without configuration for the package, development and production mode: live across tabs", { timeout: 300_000 }, async () => {
  const dir = join(fixtures, "webpack");
  const { default: webpack } = await import(join(dir, "node_modules", "webpack", "lib", "index.js"));
  for (const mode of ["development", "production"]) {
    const out = join(dir, "dist", mode);
    rmSync(out, { recursive: true, force: true });
    await new Promise((resolve, reject) =>
      webpack({ mode, context: dir, entry: "./src/index.js", output: { path: out, publicPath: "auto" }, devtool: false }, (err, stats) =>
        err || stats.hasErrors() ? reject(err ?? new Error(stats.toString("errors-only"))) : resolve(),
      ),
    );
    writeFileSync(join(out, "index.html"), readFileSync(join(dir, "index.html")));
    const emitted = readdirSync(out);
    if (mode === "production") assert.ok(emitted.some((f) => f.endsWith(".wasm")), `the .wasm is an asset of the production build: ${emitted}`);

    const context = await env.browser.newContext();
    const url = `/tests/fixtures/webpack/dist/${mode}/index.html`;
    const [a, b] = [await env.page(url, context), await env.page(url, context)];
    await a.waitForFunction(() => Array.isArray(window.rows) || window.failure, null, { timeout: 30_000 });
    for (let n = 1; n <= 3; n++) {
      await b.evaluate((n) => window.addNote(n), n);
      await a.waitForFunction((n) => window.rows?.length === n || window.failure, n, { timeout: 15_000 });
    }
    assert.deepEqual(await a.evaluate(() => [window.failure ?? null, window.rows.map((r) => r.n)]), [null, [1, 2, 3]], mode);
    await context.close();
  }
});
