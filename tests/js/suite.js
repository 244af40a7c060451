// The repository behaviour suite. Runs in the browser page against the built package; every case
// runs once per storage kind with a fresh, randomly named database.
import * as ms from "micro-sync";
import { z } from "zod";
import * as v from "valibot";

function eq(actual, expected, what = "value") {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
async function rejects(promise, name, pattern) {
  try {
    await promise;
  } catch (e) {
    if (e.name !== name) throw new Error(`expected ${name}, got ${e.name}: ${e.message}`);
    if (!(e instanceof ms.MicroSyncError)) throw new Error(`${name} is not a MicroSyncError`);
    if (pattern && !pattern.test(e.message)) throw new Error(`${name} message ${JSON.stringify(e.message)} does not match ${pattern}`);
    return e;
  }
  throw new Error(`expected ${name}, but it resolved`);
}

function models() {
  const users = ms.defineModel("users", {
    primaryKey: "id",
    indexes: ["name"],
    schema: z.object({
      id: z.string(),
      name: z.string().min(1),
      email: z.string().email().optional(),
      age: z.number().int().optional(),
      role: z.enum(["admin", "member"]).default("member"),
    }),
  });
  const posts = ms.defineModel("posts", {
    primaryKey: "id",
    schema: v.object({
      id: v.number(),
      userId: v.string(),
      title: v.pipe(v.string(), v.minLength(1)),
      createdAt: v.optional(v.string()),
    }),
  });
  const profiles = ms.defineModel("profiles", { primaryKey: "userId" });
  // Relations assigned after definition, as the spec allows.
  users.relations = { posts: ms.hasMany(posts, "id", "userId"), profile: ms.hasOne(profiles, "id", "userId") };
  posts.relations = { author: ms.belongsTo(users, "userId", "id") };
  return { users, posts, profiles };
}

function storageOf(kind) {
  return kind === "memory" ? ms.createMemoryStorage() : ms.createIndexedDbStorage({ name: `suite-${crypto.randomUUID()}` });
}

async function seeded(kind) {
  const storage = storageOf(kind);
  const db = ms.createSyncOrm({ storage, models: models() });
  await db.model("users").insert({
    values: [
      { id: "u1", name: "Ada Lovelace", age: 36, role: "admin" },
      { id: "u2", name: "Alan Turing", age: 41 },
      { id: "u3", name: "Grace Hopper", age: 85, email: "grace@navy.mil" },
    ],
  });
  await db.model("posts").insert({
    values: [
      { id: 1, userId: "u1", title: "Notes on the Engine", createdAt: "1843-09-01T00:00:00.000Z" },
      { id: 2, userId: "u1", title: "Bernoulli numbers", createdAt: "1843-10-01T00:00:00.000Z" },
      { id: 3, userId: "u2", title: "Computable numbers", createdAt: "1936-11-12T00:00:00.000Z" },
    ],
  });
  await db.model("profiles").insert({ values: { userId: "u3", bio: "COBOL" } });
  return { db, storage };
}

export const cases = {
  async "insert applies schema defaults and select filters, sorts and pages"(kind) {
    const { db } = await seeded(kind);
    const users = db.model("users");
    eq((await users.get("u2")).role, "member", "default from the zod schema");
    const rows = await users.select({ where: { age: { gte: 36, lt: 90 } }, orderBy: [{ field: "age", direction: "desc" }], limit: 2, offset: 1, fields: ["id", "age"] });
    eq(rows, [{ id: "u2", age: 41 }, { id: "u1", age: 36 }]);
    eq(await users.count({ where: { or: [{ name: { ilike: "%TURING" } }, { email: { ne: null } }] } }), 2, "count");
    eq((await users.select({ where: { name: { fzlike: "grc hpr" } } })).map((r) => r.id), ["u3"], "fzlike");
    eq((await users.select({ where: { email: null }, orderBy: [{ field: "name" }] })).map((r) => r.id), ["u1", "u2"], "IS NULL");
    eq((await users.select({ where: { not: { id: { in: ["u1", "u2"] } } } })).map((r) => r.id), ["u3"], "not/in");
  },

  async "a single insert without a key gets a UUIDv7"(kind) {
    const { db } = await seeded(kind);
    const [row] = await db.model("users").insert({ values: { name: "Margaret" } });
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(row.id)) throw new Error(`not a UUIDv7: ${row.id}`);
    eq(await db.model("users").get(row.id), row, "stored row");
  },

  async "update merges and delete removes, both returning the affected rows"(kind) {
    const { db } = await seeded(kind);
    const users = db.model("users");
    const updated = await users.update({ where: { role: "member" }, values: { age: 50 }, returning: { fields: ["id", "age"] } });
    eq(updated, [{ id: "u2", age: 50 }, { id: "u3", age: 50 }]);
    eq((await users.get("u3")).email, "grace@navy.mil", "other fields kept");
    const deleted = await users.delete({ where: { id: "u2" }, returning: { relations: { posts: { fields: ["id"] } } } });
    eq(deleted.map((r) => [r.id, r.posts]), [["u2", [{ id: 3 }]]]);
    eq(await users.count(), 2);
    eq(await users.update({ where: { id: "nobody" }, values: { age: 1 } }), [], "no match, no change");
  },

  async "relations: hasMany, hasOne, belongsTo with nested options"(kind) {
    const { db } = await seeded(kind);
    const rows = await db.model("users").select({
      orderBy: [{ field: "id" }],
      fields: ["id"],
      relations: {
        posts: { orderBy: [{ field: "createdAt", direction: "desc" }], limit: 1, fields: ["title"], relations: { author: { fields: ["name"] } } },
        profile: true,
      },
    });
    eq(rows, [
      { id: "u1", posts: [{ title: "Bernoulli numbers", author: { name: "Ada Lovelace" } }], profile: null },
      { id: "u2", posts: [{ title: "Computable numbers", author: { name: "Alan Turing" } }], profile: null },
      { id: "u3", posts: [], profile: { userId: "u3", bio: "COBOL" } },
    ]);
    const [post] = await db.model("posts").insert({ values: { id: 9, userId: "u3", title: "Compilers" }, returning: { relations: { author: { fields: ["name"] } } } });
    eq(post.author, { name: "Grace Hopper" }, "returning.relations");
  },

  async "validation errors list every issue and change nothing"(kind) {
    const { db } = await seeded(kind);
    const users = db.model("users");
    const e = await rejects(users.insert({ values: [{ id: "x1", name: "" }, { id: "x2", name: "ok", age: 1.5, email: "nope" }] }), "ValidationError");
    eq(e.issues.map((i) => i.path.join(".")).sort(), ["0.name", "1.age", "1.email"], "issue paths");
    if (!e.issues.every((i) => typeof i.message === "string" && i.message.length)) throw new Error("issues need messages");
    eq(await users.count(), 3, "nothing inserted");
    await rejects(users.update({ where: {}, values: { age: "old" } }), "ValidationError", /age/);
    eq((await users.get("u1")).age, 36, "nothing updated");
    const pe = await rejects(db.model("posts").insert({ values: { id: "not a number", userId: "u1", title: "" } }), "ValidationError");
    eq(pe.issues.map((i) => i.path.join(".")).sort(), ["id", "title"], "valibot issue paths");
  },

  async "bad queries are refused with named errors"(kind) {
    const { db } = await seeded(kind);
    const users = db.model("users");
    await rejects(users.select({ where: { nmae: "Ada" } }), "QueryError", /unknown field "nmae"/);
    await rejects(users.select({ where: { age: { between: [1, 2] } } }), "QueryError", /unknown operator "between"/);
    await rejects(users.select({ where: { age: { in: 3 } } }), "QueryError", /needs an array/);
    await rejects(users.select({ relations: { comments: true } }), "QueryError", /unknown relation "comments"/);
    await rejects(users.select({ orderBy: [{ field: "age", direction: "up" }] }), "QueryError");
    await rejects(users.delete({ where: { id: undefined } }), "QueryError", /undefined/);
    await rejects(users.delete({}), "QueryError", /needs a where/);
    await rejects(users.update({ where: { id: "u1" }, values: { id: "u9" } }), "QueryError", /primary key/);
    await rejects(users.insert({ values: { id: "u1", name: "dup" } }), "ConstraintError", /already exists/);
    if (!(() => { try { db.model("nobody"); } catch (e) { return e.name === "UnknownModelError"; } })()) throw new Error("UnknownModelError expected");
    eq(await users.count(), 3, "nothing changed");
  },

  async "two ORMs on one storage see the same committed data"(kind) {
    const { db, storage } = await seeded(kind);
    db.close();
    await rejects(db.model("users").select(), "DatabaseClosedError");
    const again = ms.createSyncOrm({ storage, models: models() });
    eq(await again.model("users").count(), 3);
    eq((await again.model("posts").select({ where: { title: { like: "%numbers" } } })).length, 2);
  },

  async "reads naming keys or indexed values are answered before the model loads, then from memory"(kind) {
    const storage = storageOf(kind);
    const first = ms.createSyncOrm({ storage, models: models() });
    const names = ["Ada", "Alan", "Grace", "Ken"];
    const rows = Array.from({ length: 40 }, (_, i) => ({ id: `u${String(i).padStart(2, "0")}`, name: names[i % 4], age: i }));
    await first.model("users").insert({ values: rows });
    await first.close();
    // Watch what this page asks IndexedDB for the users store.
    const calls = [];
    const restore = [
      [IDBObjectStore.prototype, "store"],
      [IDBIndex.prototype, "index"],
    ].map(([proto, what]) => {
      const original = proto.getAll;
      proto.getAll = function (...args) {
        const store = what === "store" ? this.name : this.objectStore.name;
        // A load reads the store in chunks from the start (no key or range first); reads of
        // named rows pass their key.
        if (store === "users") calls.push(`${what}:${args[0] === undefined ? "all" : "key"}`);
        return original.apply(this, args);
      };
      return () => (proto.getAll = original);
    });
    try {
      const db = ms.createSyncOrm({ storage, models: models() });
      const users = db.model("users");
      const q = { where: { name: { in: ["Ada", "Ken"] }, age: { gte: 10 } }, orderBy: [{ field: "age", direction: "desc" }], limit: 4 };
      const cold = await users.select(q);
      eq(cold.map((r) => r.id), ["u39", "u36", "u35", "u32"], "page read before loading");
      eq((await users.get("u05"))?.name, "Alan", "get before loading");
      eq(await users.count({ where: { name: "Alan" } }), 10, "count");
      if (kind === "indexeddb") eq(calls.slice(0, 2), ["index:key", "index:key"], "the first read asks the name index for Ada and Ken");
      // A filter with nothing to look up waits for the model to load (once), then runs in memory.
      eq((await users.select({ where: { age: { gte: 38 } } })).map((r) => r.id), ["u38", "u39"]);
      eq(await users.select(q), cold, "same page from memory");
      if (kind === "indexeddb") eq(calls.filter((c) => c === "store:all").length, 1, "the model is loaded once");
      await db.close();
    } finally {
      restore.forEach((f) => f());
    }
  },

  async "a sync hook that never settles times out: its signal aborts, the push is retried, a pull fails"(kind) {
    const calls = [];
    const notes = ms.defineModel("notes", {
      primaryKey: "id",
      sync: {
        timeoutMs: 50,
        // The first push and every pull hang; later pushes succeed.
        mutation: (m, { signal }) => {
          calls.push({ id: m.mutationId, signal });
          return calls.length === 1 ? new Promise(() => {}) : Promise.resolve();
        },
        query: () => new Promise(() => {}),
      },
    });
    const online = { isOnline: () => true, subscribe: () => () => {} };
    const db = ms.createSyncOrm({ storage: storageOf(kind), models: { notes }, engine: { intervalMs: 60_000, networkDetector: online } });
    db.stopEngine();
    await db.model("notes").insert({ values: { id: "n1", text: "hello" } }); // pushed at once, hangs
    const started = performance.now();
    let pending;
    while (!(pending = await db.pending())[0]?.attempts && performance.now() - started < 5000) await new Promise((r) => setTimeout(r, 10));
    eq(pending.length, 1, "still queued");
    eq(pending[0].attempts, 1, "the timed-out push counts as an attempt");
    if (!/sync\.mutation of "notes" did not settle within 50 ms/.test(pending[0].lastError)) throw new Error(`lastError: ${pending[0].lastError}`);
    eq(calls[0].signal.aborted, true, "the hung call's signal is aborted");
    await db.retryPendingSync();
    eq(await db.pending(), [], "delivered on retry");
    eq(calls.map((c) => c.id), [calls[0].id, calls[0].id], "same mutationId both times");
    await rejects(db.model("notes").sync(), "SyncError", /sync\.query of "notes" did not settle within 50 ms/);
    if (!(() => { try { ms.defineModel("x", { primaryKey: "id", sync: { timeoutMs: 0 } }); } catch (e) { return e.name === "QueryError"; } })()) {
      throw new Error("timeoutMs 0 must be refused");
    }
    await db.close();
  },
};

export async function run(kind, name) {
  await cases[name](kind);
}
