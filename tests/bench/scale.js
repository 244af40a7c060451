// Scale section of `make bench`, run in the page: a persisted database of N users, then cold pages
// (same browser context) that open it. Each step is its own export because each runs in its own
// page; the libraries are imported inside `open`, so a cold step's `t0` comes before the import.
import { LIBRARIES, makeUsers, W3, w3Reference } from "./workloads.js";

const CHUNK = 10_000; // rows per micro-sync `insert` call

// micro-sync: the library of workloads.js (same models and W3), inserting CHUNK rows per call.
const microSync = {
  async open(name) {
    const db = await LIBRARIES["micro-sync"].open(name);
    return {
      async insertMany(rows) {
        for (let i = 0; i < rows.length; i += CHUNK) await db.insertMany("users", rows.slice(i, i + CHUNK));
      },
      w3: db.w3,
      whole: db.count,
      memory: db.memory,
      close: db.close,
    };
  },
};

// Dexie: the library of workloads.js (same schema, bulkAdd, same W3); the whole model is toArray.
const dexie = {
  async open(name) {
    const db = await LIBRARIES["Dexie 4"].open(name);
    return { insertMany: (rows) => db.insertMany("users", rows), w3: db.w3, whole: async () => (await db.all()).length, close: db.close };
  },
};

const LIBS = { "Dexie 4": dexie, "micro-sync": microSync };
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** Writes a fresh database of `n` users and closes it; returns the time it took (ms). */
export async function populate(libName, n, name) {
  const users = makeUsers(n);
  const t = performance.now();
  const db = await LIBS[libName].open(name);
  await db.insertMany(users);
  await db.close();
  return performance.now() - t;
}

/** Cold page: from `t0` (before this module and the library were imported) to the first W3 answer. */
export async function coldFirstW3(libName, n, name, t0) {
  const db = await LIBS[libName].open(name);
  const ids = await db.w3();
  const ms = performance.now() - t0;
  await db.close();
  if (!same(ids, w3Reference(makeUsers(n)))) throw new Error(`${libName} first W3 at ${n} rows is wrong`);
  return ms;
}

/** Cold page: from `t0` to every row in memory; then W3 warm (ms/query) and WebAssembly memory. */
export async function coldWhole(libName, n, name, t0) {
  const db = await LIBS[libName].open(name);
  const count = await db.whole();
  const whole = performance.now() - t0;
  if (count !== n) throw new Error(`${libName} whole model at ${n} rows: ${count} rows`);
  const first = await db.w3();
  for (let i = 0; i < 4; i++) await db.w3();
  const t = performance.now();
  for (let i = 0; i < 50; i++) await db.w3();
  const w3Warm = (performance.now() - t) / 50;
  const wasmBytes = db.memory ? db.memory() : null;
  await db.close();
  // The reference data is built only now, so its garbage does not land in the timed runs.
  const users = makeUsers(n);
  if (!same(first, w3Reference(users))) throw new Error(`${libName} warm W3 at ${n} rows is wrong`);
  return { whole, w3Warm, wasmBytes, jsonBytes: JSON.stringify(users).length };
}

/**
 * W10 and W11 (micro-sync): live queries open over the persisted users. W10: one live query
 * (status = X, orderBy name, limit 50); each round updates the email of a row in its answer and times
 * the call to the write's resolution (its commit) and to the callback with the new answer. W11: the
 * same with 100 different live queries open (10 statuses × 10 age ranges), timing the call to the
 * last callback. Medians of the rounds, in ms.
 */
export async function liveQueries(libName, n, name) {
  const ms = await import("micro-sync");
  const users = ms.defineModel("users", { primaryKey: "id", indexes: ["status", "name"] });
  const posts = ms.defineModel("posts", { primaryKey: "id", indexes: ["userId"] });
  const db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { users, posts } });
  const u = db.model("users");
  await u.count();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const ROUNDS = 30;

  // Opens `queries` live; resolves once each answered. `seen(i)` resolves at query i's next answer.
  async function open(queries) {
    const waiting = queries.map(() => null);
    const last = queries.map(() => null);
    let ready = 0;
    let allReady;
    const opened = new Promise((ok) => (allReady = ok));
    const stops = queries.map((q, i) =>
      u.live(q, (rows) => {
        if (last[i] === null && ++ready === queries.length) allReady();
        last[i] = rows;
        waiting[i]?.(performance.now());
        waiting[i] = null;
      }, (e) => { throw e; }),
    );
    await opened;
    return { last, seen: (i) => new Promise((ok) => (waiting[i] = ok)), stop: () => stops.forEach((s) => s()) };
  }

  async function rounds(live, target) {
    const commit = [];
    const callback = [];
    for (let r = 0; r < ROUNDS; r++) {
      const row = live.last[target][10 + (r % 20)];
      const seen = live.seen(target);
      const t = performance.now();
      await u.update({ where: { id: row.id }, values: { email: `round${r}@example.org` } });
      commit.push(performance.now() - t);
      callback.push((await seen) - t);
    }
    return { commit: median(commit), callback: median(callback), beyond: median(callback.map((c, i) => c - commit[i])) };
  }

  const one = await open([{ where: { status: "vip" }, orderBy: [{ field: "name" }], limit: 50 }]);
  const W10 = await rounds(one, 0);
  one.stop();
  const { STATUSES } = await import("./workloads.js");
  const many = [];
  for (const status of STATUSES) for (let a = 0; a < 10; a++) many.push({ where: { status, age: { gte: a * 8, lt: a * 8 + 30 } }, orderBy: [{ field: "name" }], limit: 50 });
  const hundred = await open(many);
  const target = STATUSES.indexOf("vip") * 10 + 2;
  const W11 = await rounds(hundred, target);
  hundred.stop();
  await db.close();
  return { W10commit: W10.commit, W10: W10.callback, W10beyond: W10.beyond, W11commit: W11.commit, W11: W11.callback, W11beyond: W11.beyond };
}
