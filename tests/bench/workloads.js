// Benchmark workloads, run in the page. Every library gets the same generated data (fixed seed)
// and the same operations; W3 and W7 answers are checked against a plain-JS reference.

export const STATUSES = ["active", "idle", "banned", "new", "gone", "vip", "trial", "paid", "free", "test"];

function rng(seed) {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
}

export function makeUsers(n, seed = 7) {
  const r = rng(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: `u${String(i).padStart(6, "0")}`,
    name: `${["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Margaret"][Math.floor(r() * 8)]} ${Math.floor(r() * 1e6)}`,
    email: `user${i}@example.com`,
    age: Math.floor(r() * 80),
    status: STATUSES[Math.floor(r() * 10)],
  }));
}

export function makePosts(users, perUser, seed = 11) {
  const r = rng(seed);
  const out = [];
  for (const u of users) {
    for (let k = 0; k < perUser; k++) {
      out.push({ id: `${u.id}-p${k}`, userId: u.id, title: `post ${Math.floor(r() * 1e6)}`, createdAt: 1_700_000_000_000 + Math.floor(r() * 1e9) });
    }
  }
  return out;
}

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
export const W3 = { status: "vip", minAge: 20, maxAge: 40, limit: 50 };
export function w3Reference(users) {
  return users.filter((u) => u.status === W3.status && u.age >= W3.minAge && u.age < W3.maxAge).sort(byName).slice(0, W3.limit).map((u) => u.id);
}
export function w7Reference(users, posts) {
  const first = [...users].sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, 100);
  return first.map((u) => `${u.id}:${posts.filter((p) => p.userId === u.id).map((p) => p.id).sort().join(",")}`);
}
export const w7Shape = (rows) => rows.map((u) => `${u.id}:${u.posts.map((p) => p.id).sort().join(",")}`);

// ------------------------------------------------------------------ raw IndexedDB
const req = (r) => new Promise((ok, ko) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => ko(r.error))));
const done = (tx) => new Promise((ok, ko) => ((tx.oncomplete = ok), (tx.onerror = tx.onabort = () => ko(tx.error))));

const raw = {
  async open(name) {
    const r = indexedDB.open(name, 1);
    r.onupgradeneeded = () => {
      // The same indexes as Dexie's and micro-sync's stores below: every library pays for the same
      // index upkeep on writes (W3 itself uses only `status`).
      const u = r.result.createObjectStore("users", { keyPath: "id" });
      u.createIndex("status", "status");
      u.createIndex("name", "name");
      r.result.createObjectStore("posts", { keyPath: "id" }).createIndex("userId", "userId");
    };
    const db = await req(r);
    return {
      async insertOne(row) {
        const tx = db.transaction("users", "readwrite");
        tx.objectStore("users").add(row);
        await done(tx);
      },
      async insertMany(store, rows) {
        const tx = db.transaction(store, "readwrite");
        const s = tx.objectStore(store);
        for (const row of rows) s.add(row);
        await done(tx);
      },
      async w3() {
        const tx = db.transaction("users");
        const rows = await req(tx.objectStore("users").index("status").getAll(W3.status));
        return rows.filter((u) => u.age >= W3.minAge && u.age < W3.maxAge).sort(byName).slice(0, W3.limit).map((u) => u.id);
      },
      async all() {
        return req(db.transaction("users").objectStore("users").getAll());
      },
      async update(id, patch) {
        const tx = db.transaction("users", "readwrite");
        const s = tx.objectStore("users");
        const row = await req(s.get(id));
        s.put({ ...row, ...patch });
        await done(tx);
      },
      async remove(id) {
        const tx = db.transaction("users", "readwrite");
        tx.objectStore("users").delete(id);
        await done(tx);
      },
      async w7() {
        const tx = db.transaction(["users", "posts"]);
        const users = await req(tx.objectStore("users").getAll(null, 100));
        const ix = tx.objectStore("posts").index("userId");
        const posts = await Promise.all(users.map((u) => req(ix.getAll(u.id))));
        return users.map((u, i) => ({ ...u, posts: posts[i] }));
      },
      close: () => db.close(),
    };
  },
};

// ------------------------------------------------------------------ Dexie
const dexie = {
  async open(name) {
    const { default: Dexie, liveQuery } = await import("dexie");
    const db = new Dexie(name);
    db.version(1).stores({ users: "id, status, name", posts: "id, userId" });
    await db.open();
    return {
      insertOne: (row) => db.users.add(row),
      insertMany: (store, rows) => db[store].bulkAdd(rows),
      async w3() {
        const rows = await db.users.where("status").equals(W3.status).and((u) => u.age >= W3.minAge && u.age < W3.maxAge).sortBy("name");
        return rows.sort(byName).slice(0, W3.limit).map((u) => u.id);
      },
      all: () => db.users.toArray(),
      update: (id, patch) => db.users.update(id, patch),
      remove: (id) => db.users.delete(id),
      async w7() {
        const users = await db.users.orderBy("id").limit(100).toArray();
        const posts = await db.posts.where("userId").anyOf(users.map((u) => u.id)).toArray();
        const by = new Map(users.map((u) => [u.id, []]));
        for (const p of posts) by.get(p.userId).push(p);
        return users.map((u) => ({ ...u, posts: by.get(u.id) }));
      },
      // Latency from a write to a live query's subscriber seeing it.
      async live(id) {
        let resolve;
        let first = true;
        const sub = liveQuery(() => db.users.get(id)).subscribe((row) => {
          if (first) return void (first = false);
          resolve?.(row);
        });
        await new Promise((ok) => setTimeout(ok, 20));
        const times = [];
        for (let i = 0; i < 20; i++) {
          const seen = new Promise((ok) => (resolve = ok));
          const t = performance.now();
          await db.users.update(id, { age: 100 + i });
          await seen;
          times.push(performance.now() - t);
        }
        sub.unsubscribe();
        return times;
      },
      close: () => db.close(),
    };
  },
};

// ------------------------------------------------------------------ micro-sync
function microSync(withSync) {
  return {
    async open(name) {
      const ms = await import("micro-sync");
      const sync = withSync ? { mutation: async () => {} } : undefined;
      const users = ms.defineModel("users", { primaryKey: "id", indexes: ["status", "name"], sync });
      const posts = ms.defineModel("posts", { primaryKey: "id", indexes: ["userId"], sync });
      users.relations = { posts: ms.hasMany(posts, "id", "userId") };
      const db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name }), models: { users, posts } });
      const u = db.model("users");
      return {
        insertOne: (row) => u.insert({ values: row }),
        insertMany: (store, rows) => db.model(store).insert({ values: rows }),
        async w3() {
          const rows = await u.select({
            where: { status: W3.status, age: { gte: W3.minAge, lt: W3.maxAge } },
            orderBy: [{ field: "name" }],
            limit: W3.limit,
            fields: ["id"],
          });
          return rows.map((r) => r.id);
        },
        all: () => u.select(),
        // A count without `where` loads the whole model into memory (the scale section's cold load).
        count: () => u.count(),
        update: (id, patch) => u.update({ where: { id }, values: patch }),
        remove: (id) => u.delete({ where: { id } }),
        w7: () => u.select({ orderBy: [{ field: "id" }], limit: 100, relations: { posts: true } }),
        async live(id) {
          const { effectScope, watch } = await import("vue");
          const { useRepo } = await import("micro-sync/adapters/vue");
          const scope = effectScope();
          let resolve;
          const repo = scope.run(() => {
            const r = useRepo({ db }, "users");
            watch(r.rows, (rows) => resolve?.(rows), { flush: "sync" });
            return r;
          });
          await repo.select({ where: { id } });
          const times = [];
          for (let i = 0; i < 20; i++) {
            const seen = new Promise((ok) => (resolve = ok));
            const t = performance.now();
            await u.update({ where: { id }, values: { age: 100 + i } });
            await seen;
            times.push(performance.now() - t);
          }
          scope.stop();
          return times;
        },
        memory: () => ms.memoryUsage().wasmBytes,
        // Lets the immediate push of the last write finish, so the next page opens an empty outbox.
        settle: () => (withSync ? db.retryPendingSync() : undefined),
        close: () => db.close(),
      };
    },
  };
}

export const LIBRARIES = { "raw IndexedDB": raw, "Dexie 4": dexie, "micro-sync": microSync(false), "micro-sync + outbox": microSync(true) };

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Runs W1–W7 and W9 for one library in this page; W8 is measured by `coldStart` on a reload. */
export async function runAll(libName, tag) {
  const lib = LIBRARIES[libName];
  const out = {};
  const users = makeUsers(10_000);

  // W1: 2,000 awaited single-row inserts.
  let db = await lib.open(`w1-${tag}`);
  let t = performance.now();
  for (const row of users.slice(0, 2000)) await db.insertOne(row);
  out.W1 = 2000 / ((performance.now() - t) / 1000);
  db.close();

  // W2: 10,000 rows in one call; later workloads reuse this database.
  db = await lib.open(`w2-${tag}`);
  t = performance.now();
  await db.insertMany("users", users);
  out.W2 = performance.now() - t;

  // W3: the filtered, sorted page, 50 times.
  const expected = JSON.stringify(w3Reference(users));
  const got = JSON.stringify(await db.w3());
  if (got !== expected) throw new Error(`${libName} W3 answer is wrong`);
  t = performance.now();
  for (let i = 0; i < 50; i++) await db.w3();
  out.W3 = (performance.now() - t) / 50;

  // W4: every row.
  t = performance.now();
  const all = await db.all();
  out.W4 = performance.now() - t;
  if (all.length !== 10_000) throw new Error(`${libName} W4 returned ${all.length} rows`);
  out.heapMB = performance.memory ? performance.memory.usedJSHeapSize / 2 ** 20 : null;
  out.wasmMB = db.memory ? db.memory() / 2 ** 20 : null;

  // W5, W6: 1,000 single-row updates, then deletes.
  t = performance.now();
  for (let i = 0; i < 1000; i++) await db.update(users[i].id, { age: i % 80 });
  out.W5 = 1000 / ((performance.now() - t) / 1000);
  t = performance.now();
  for (let i = 0; i < 1000; i++) await db.remove(users[i].id);
  out.W6 = 1000 / ((performance.now() - t) / 1000);

  // W9: write → live view updated (Vue `rows` for micro-sync, liveQuery for Dexie).
  if (db.live) out.W9 = median(await db.live(users[5000].id));
  db.close();

  // W7: 100 users with their posts, from 1,000 users × 10 posts.
  db = await lib.open(`w7-${tag}`);
  const u7 = users.slice(0, 1000);
  const p7 = makePosts(u7, 10);
  await db.insertMany("users", u7);
  await db.insertMany("posts", p7);
  const ref7 = JSON.stringify(w7Reference(u7, p7));
  if (JSON.stringify(w7Shape(await db.w7())) !== ref7) throw new Error(`${libName} W7 answer is wrong`);
  const w7 = [];
  for (let i = 0; i < 10; i++) {
    t = performance.now();
    await db.w7();
    w7.push(performance.now() - t);
  }
  out.W7 = median(w7);
  db.close();

  // W8 set-up: a persisted 10,000-row database for the cold start.
  db = await lib.open(`w8-${tag}`);
  await db.insertMany("users", users);
  await db.settle?.();
  await db.close();
  return out;
}

/** W8: a fresh page opens the persisted database and answers W3. */
export async function coldStart(libName, tag, t0) {
  const db = await LIBRARIES[libName].open(`w8-${tag}`);
  const ids = await db.w3();
  const ms = performance.now() - t0;
  if (JSON.stringify(ids) !== JSON.stringify(w3Reference(makeUsers(10_000)))) throw new Error(`${libName} W8 answer is wrong`);
  db.close();
  return ms;
}
