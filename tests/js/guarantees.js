// SPEC 9's guarantees, checked in the browser page against the built package: call order without
// awaits, the input contract, nesting limits, re-entrant hooks and worst-case inputs. Each case
// runs once per storage kind with a fresh, randomly named database (see guarantees.test.mjs).
import * as ms from "micro-sync";
import { z } from "zod";

export function eq(actual, expected, what = "value") {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
export async function rejects(promise, name, pattern) {
  try {
    await promise;
  } catch (e) {
    if (e?.name !== name) throw new Error(`expected ${name}, got ${e?.name}: ${e?.message}`);
    if (!(e instanceof ms.MicroSyncError)) throw new Error(`${name} is not a MicroSyncError`);
    if (pattern && !pattern.test(e.message)) throw new Error(`${name} message ${JSON.stringify(e.message)} does not match ${pattern}`);
    return e;
  }
  throw new Error(`expected ${name}, but it resolved`);
}
const throws = (f, name, pattern) =>
  rejects(
    (async () => f())(),
    name,
    pattern,
  );

export const storageOf = (kind, name = `g-${crypto.randomUUID()}`) =>
  kind === "memory" ? ms.createMemoryStorage() : ms.createIndexedDbStorage({ name });

/** Never online: writes stay in the outbox, in order, for the test to read. */
const offline = { isOnline: () => false, subscribe: () => () => {} };

function models() {
  // A mutation hook makes every write record an outbox entry; offline, none is pushed.
  const items = ms.defineModel("items", { primaryKey: "id", sync: { mutation: async () => {} } });
  const plain = ms.defineModel("plain", { primaryKey: "id" });
  return { items, plain };
}
const open = (storage) => ms.createSyncOrm({ storage, models: models(), engine: { networkDetector: offline } });

/** Everything a write sequence leaves behind: rows, and the outbox's (action, query) in order. */
async function state(db) {
  const rows = await db.model("items").select({ orderBy: [{ field: "id" }] });
  const outbox = (await db.pending()).map((e) => [e.action, e.query]);
  return { rows, outbox };
}

// A small deterministic generator, so a failing round can be replayed.
function rng(seed) {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
}

function randomOps(r, n) {
  return Array.from({ length: n }, () => {
    const key = `k${Math.floor(r() * 3)}`;
    const v = Math.floor(r() * 100);
    const kind = ["insert", "update", "update", "delete"][Math.floor(r() * 4)];
    return [kind, key, v];
  });
}
function apply(repo, [kind, key, v]) {
  if (kind === "insert") return repo.insert({ values: { id: key, v } });
  if (kind === "update") return repo.update({ where: { id: key }, values: { v } });
  return repo.delete({ where: { id: key } });
}
const outcome = (p) => p.then((rows) => JSON.stringify(rows), (e) => e.name);

export const cases = {
  async "Promise.all of updates to one row leaves the last call's value; the outbox keeps call order"(kind) {
    const storage = storageOf(kind);
    const db = open(storage);
    const items = db.model("items");
    await items.insert({ values: { id: "x", v: 0 } });
    await Promise.all([1, 2, 3, 4, 5].map((v) => items.update({ where: { id: "x" }, values: { v } })));
    eq((await items.get("x")).v, 5, "in memory");
    // insert, delete, insert, update of one key, none awaited
    const seq = [
      items.insert({ values: { id: "y", v: 1 } }),
      items.delete({ where: { id: "y" } }),
      items.insert({ values: { id: "y", v: 2 } }),
      items.update({ where: { id: "y" }, values: { v: 3 } }),
    ];
    eq((await Promise.allSettled(seq)).map((r) => r.status), ["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
    eq((await items.get("y")).v, 3);
    const { outbox } = await state(db);
    eq(
      outbox.map(([a, q]) => `${a}:${q.values?.v ?? q.values?.[0]?.v ?? "-"}`),
      ["insert:0", "update:1", "update:2", "update:3", "update:4", "update:5", "insert:1", "delete:-", "insert:2", "update:3"],
      "outbox in call order",
    );
    await db.close();
    const again = open(storage);
    eq((await again.model("items").get("x")).v, 5, "in storage");
    eq((await state(again)).outbox.length, 10);
    await again.close();
  },

  async "random un-awaited write sequences end exactly as the same writes awaited one by one"(kind) {
    for (let round = 0; round < 25; round++) {
      const ops = randomOps(rng(round + 1), 10);
      // Both databases open, loaded and holding one row before the sequence starts.
      const start = async () => {
        const db = open(storageOf(kind));
        await db.model("items").insert({ values: { id: "k0", v: -1 } });
        return db;
      };
      const serial = await start();
      const expected = [];
      for (const op of ops) expected.push(await outcome(apply(serial.model("items"), op)));
      const db = await start();
      const got = await Promise.all(ops.map((op) => outcome(apply(db.model("items"), op))));
      eq(got, expected, `round ${round} results of ${JSON.stringify(ops)}`);
      eq(await state(db), await state(serial), `round ${round} rows and outbox`);
      await Promise.all([db.close(), serial.close()]);
    }
  },

  async "writes made before the database finished opening run after it, in call order"(kind) {
    const storage = storageOf(kind);
    const db = open(storage);
    const items = db.model("items");
    // No await anywhere: the engine may not even be loaded yet.
    const results = await Promise.all([
      items.insert({ values: { id: "a", v: 1 } }),
      items.update({ where: { id: "a" }, values: { v: 2 } }),
      items.select({ where: { id: "a" } }),
    ]);
    eq(results[1][0].v, 2);
    eq((await items.get("a")).v, 2);
    await db.close();
  },

  async "a where operand that is not JSON is a QueryError and changes nothing"(kind) {
    const db = open(storageOf(kind));
    const items = db.model("items");
    await items.insert({ values: [{ id: "a", v: 1 }, { id: "b", v: 2 }] });
    class Point {
      constructor() {
        this.x = 1;
      }
    }
    const bad = [() => "a", Symbol("a"), new Map([["a", 1]]), new Set(["a"]), new Point(), NaN, Infinity, 10n];
    for (const operand of bad) {
      const where = { id: operand };
      for (const w of [where, { and: [where] }, { or: [{ id: "zzz" }, where] }, { not: where }, { id: { eq: operand } }, { id: { in: ["a", operand] } }]) {
        await rejects(items.delete({ where: w }), "QueryError");
        await rejects(items.update({ where: w, values: { v: 9 } }), "QueryError");
        await rejects(items.select({ where: w }), "QueryError");
        await rejects(items.count({ where: w }), "QueryError");
      }
    }
    await rejects(items.delete({ where: { id: () => "a" } }), "QueryError", /delete\.where\.id is a function/);
    for (const w of [{ id: {} }, { and: [{ id: {} }] }, { or: [{ id: "zzz" }, { id: {} }] }, { not: { id: {} } }]) {
      await rejects(items.delete({ where: w }), "QueryError", /empty operator object/);
      await rejects(items.update({ where: w, values: { v: 9 } }), "QueryError", /empty operator object/);
    }
    eq(await items.count(), 2, "nothing deleted");
    eq((await items.select({ orderBy: [{ field: "id" }] })).map((r) => r.v), [1, 2], "nothing updated");
    // A Date operand is compared as its ISO string, as rows store it.
    await items.insert({ values: { id: "d", at: new Date("2024-01-02T00:00:00.000Z") } });
    eq((await items.select({ where: { at: { gte: new Date("2024-01-01T00:00:00Z") } } })).map((r) => r.id), ["d"]);
    await db.close();
  },

  async "rows must be JSON: what JSON would change is a ValidationError naming its path"(kind) {
    const db = open(storageOf(kind));
    const items = db.model("items");
    const cyclic = { id: "c" };
    cyclic.self = cyclic;
    const cases = [
      [{ id: "m", tags: new Map() }, "tags"],
      [{ id: "s", tags: new Set([1]) }, "tags"],
      [{ id: "f", fn: () => 1 }, "fn"],
      [{ id: "b", big: 10n }, "big"],
      [{ id: "n", v: NaN }, "v"],
      [{ id: "i", nested: { deep: [1, Infinity] } }, "nested.deep.1"],
      [cyclic, "self"],
      [{ id: NaN }, "id"],
      [{ id: Infinity }, "id"],
      [{ id: "u", list: [1, undefined] }, "list.1"],
    ];
    for (const [row, path] of cases) {
      const e = await rejects(items.insert({ values: row }), "ValidationError");
      eq(e.issues[0].path.join("."), path, `path for ${path}`);
      const multi = await rejects(items.insert({ values: [{ id: "ok" }, row] }), "ValidationError");
      eq(multi.issues[0].path.join("."), `1.${path}`, "multi-row paths start with the row index");
    }
    await rejects(items.update({ where: {}, values: { v: new Set() } }), "ValidationError", /v is a Set/);
    eq(await items.count(), 0, "nothing written");
    // Dates become ISO strings; undefined fields are absent, as in JSON.
    const [row] = await items.insert({ values: { id: "d", at: new Date(0), gone: undefined } });
    eq(row, { id: "d", at: "1970-01-01T00:00:00.000Z" });
    await db.close();
  },

  async "a row nested deeper than the limit is refused; one within it reads back after reopening"(kind) {
    const storage = storageOf(kind);
    const db = open(storage);
    const nest = (levels) => {
      let v = 1;
      for (let i = 0; i < levels; i++) v = { a: v };
      return v;
    };
    const e = await rejects(db.model("plain").insert({ values: { id: "deep", x: nest(124) } }), "ValidationError", /nested deeper than 64 levels/);
    eq(e.issues[0].path.length, 64, "the path to where the limit is crossed");
    await rejects(db.model("plain").select({ where: { x: { eq: nest(100) } } }), "QueryError", /nested deeper than 64/);
    // The deepest row allowed (the row itself is level 1).
    await db.model("plain").insert({ values: { id: "ok", x: nest(62) } });
    await db.close();
    const again = open(storage);
    eq(JSON.stringify((await again.model("plain").get("ok")).x), JSON.stringify(nest(62)), "reads back");
    eq(await again.pending(), [], "the rest of the database works");
    await again.model("items").insert({ values: { id: "z" } });
    await again.close();
  },

  async "arguments are checked with named errors instead of TypeError, traps or coercion"(kind) {
    await throws(() => ms.createIndexedDbStorage({ name: 42 }), "QueryError", /name must be a non-empty string/);
    await throws(() => ms.createIndexedDbStorage({ name: "" }), "QueryError");
    await throws(() => ms.createSyncOrm(null), "QueryError", /options object/);
    await throws(() => ms.createSyncOrm({ storage: { kind: "disk" }, models: models() }), "QueryError", /storage must come from/);
    await throws(() => ms.createSyncOrm({ storage: storageOf(kind), models: models(), engine: { intervalMs: 1e12 } }), "QueryError", /intervalMs/);
    await throws(() => ms.createSyncOrm({ storage: storageOf(kind), models: models(), engine: { intervalMs: 0 } }), "QueryError", /intervalMs/);
    await throws(() => ms.defineModel("x", null), "QueryError");
    const db = open(storageOf(kind));
    const items = db.model("items");
    await rejects(items.insert(null), "QueryError", /options object/);
    await rejects(items.insert(), "QueryError", /options object|needs values/);
    await rejects(items.update(null), "QueryError", /options object/);
    await rejects(items.delete(null), "QueryError", /options object/);
    await rejects(items.select(null), "QueryError", /options object/);
    await rejects(items.select({ limit: NaN }), "QueryError", /select\.limit is NaN/);
    await rejects(items.select({ limit: -1 }), "QueryError", /limit/);
    await rejects(items.get(NaN), "QueryError", /finite number/);
    await rejects(items.insert({ values: { id: NaN } }), "ValidationError", /id is NaN/);
    let deep = { id: "x" };
    for (let i = 0; i < 10_000; i++) deep = { and: [deep] };
    await rejects(items.select({ where: deep }), "QueryError", /nested deeper than 64 levels/);
    eq(await items.count(), 0);
    await db.close();
  },

  async "long patterns, long lists and big or's are answered or refused, never run away"(kind) {
    const db = open(storageOf(kind));
    const plain = db.model("plain");
    const long = "ab".repeat(50_000); // 100,000 characters
    await plain.insert({ values: [{ id: 1, s: long }, { id: 2, s: `${long}c` }] });
    const seg = "ab".repeat(2_500); // a 5,000-character segment
    eq((await plain.select({ where: { s: { like: `%${seg}c` } } })).map((r) => r.id), [2]);
    const half = "ab".repeat(2_400);
    eq((await plain.select({ where: { s: { like: `%${half}%${half}%` } } })).map((r) => r.id), [1, 2]);
    eq((await plain.select({ where: { s: { like: `%${"a".repeat(5_000)}%` } } })).map((r) => r.id), []);
    // Anchored at the end: only the value ending in "…ab" + one more character fits.
    eq((await plain.select({ where: { s: { ilike: `%${"AB".repeat(4_999)}_` } } })).map((r) => r.id), [2]);
    await rejects(plain.select({ where: { s: { like: "a".repeat(10_001) } } }), "QueryError", /longer than 10000 characters/);
    const or = Array.from({ length: 100_000 }, (_, i) => ({ id: i }));
    await rejects(plain.select({ where: { or } }), "QueryError", /more than 1000 conditions/);
    const ids = Array.from({ length: 100_000 }, (_, i) => i);
    eq((await plain.select({ where: { id: { in: ids } }, fields: ["id"] })).length, 2, "a 100,000-value in-list is hashed");
    await rejects(plain.select({ where: { id: { in: [...ids, 0] } } }), "QueryError", /at most 100000/);
    await db.close();
  },

  async "a big pull is merged in chunks: writes made meanwhile do not wait for all of it"(kind) {
    const N = 50_000;
    const remote = Array.from({ length: N }, (_, i) => ({ id: `r${i}`, v: i }));
    remote[10] = { v: "no key" }; // a keyless row is skipped, not fatal
    remote[20] = { id: "bad", v: new Map() }; // not JSON: skipped too
    let write = null;
    const big = ms.defineModel("big", {
      primaryKey: "id",
      sync: {
        query: async () => {
          // Once the rows are back, the app writes elsewhere.
          setTimeout(() => (write = db.model("plain").insert({ values: { id: "during" } }).then(() => db.model("big").count())), 0);
          return remote;
        },
      },
    });
    const plain = ms.defineModel("plain", { primaryKey: "id" });
    const db = ms.createSyncOrm({ storage: storageOf(kind), models: { big, plain } });
    const rows = await db.model("big").sync({ fields: ["id"] });
    eq(rows.length, N - 2, "every keyed JSON row merged");
    const merged = await write;
    if (!(merged < N - 2)) throw new Error(`the write waited for the whole pull (${merged} rows were merged by then)`);
    const status = db.model("big").getSyncStatus();
    if (!/skipped invalid rows from the backend \(2 issues; first: 10\.id/.test(status.lastError)) throw new Error(`lastError: ${status.lastError}`);
    await db.close();
  },

  async "hooks may call the API: retryPendingSync and writes inside a push, discard of an in-flight push"(kind) {
    let db;
    let release;
    const calls = [];
    const notes = ms.defineModel("notes", {
      primaryKey: "id",
      sync: {
        timeoutMs: 20_000,
        mutation: async (m) => {
          calls.push(m.mutationId);
          if (m.query.values?.[0]?.id === "n1") {
            // Re-entrant calls from inside the hook resolve instead of waiting for this push.
            await db.retryPendingSync();
            await db.model("notes").insert({ values: { id: "from-hook" } });
            await db.pending();
          }
          if (m.query.values?.[0]?.id === "slow") await new Promise((r) => (release = r));
        },
      },
    });
    const online = { isOnline: () => true, subscribe: () => () => {} };
    db = ms.createSyncOrm({ storage: storageOf(kind), models: { notes }, engine: { intervalMs: 60_000, networkDetector: online } });
    db.stopEngine();
    await db.model("notes").insert({ values: { id: "n1" } });
    const started = Date.now();
    while ((await db.pending()).length && Date.now() - started < 5_000) await new Promise((r) => setTimeout(r, 10));
    eq(await db.pending(), [], "no deadlock: both writes pushed long before the hook's 20 s timeout");
    eq(calls.length, 2);

    await db.model("notes").insert({ values: { id: "slow" } });
    while (!release) await new Promise((r) => setTimeout(r, 5));
    const [entry] = await db.pending();
    await rejects(db.discardPending(entry.mutationId), "SyncError", /being pushed right now/);
    eq((await db.model("notes").get("slow"))?.id, "slow", "not rolled back while the backend may apply it");
    release();
    while ((await db.pending()).length) await new Promise((r) => setTimeout(r, 5));
    eq((await db.model("notes").get("slow"))?.id, "slow", "kept: the backend applied it");
    await rejects(db.discardPending(entry.mutationId), "SyncError", /no pending mutation/);
    await db.close();
  },
};

export async function run(kind, name) {
  await cases[name](kind);
}
