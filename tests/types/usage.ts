// Type tests: every line here must compile, and each `@ts-expect-error` must be an error.
// Checked by `tsc -p tests/types` in `make test`.
import { z } from "zod";
import * as v from "valibot";
import {
  belongsTo, createIndexedDbStorage, createMemoryStorage, createSyncOrm, defineModel, hasMany, hasOne,
  EngineFailedError, MigrationError, RejectedWriteError, type SyncStatus, UnreadableDataError, ValidationError, type Written,
} from "micro-sync";
import { useSyncOrm } from "micro-sync/adapters/vue";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const expectType = <T>(_: T) => {};
const assertEqual = <A, B>(_: Equal<A, B>) => {};

const posts = defineModel("posts", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), userId: z.string(), title: z.string(), views: z.number() }),
});
const profiles = defineModel("profiles", {
  primaryKey: "userId",
  schema: v.object({ userId: v.string(), bio: v.string() }),
});
const users = defineModel("users", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), name: z.string(), age: z.number().optional(), active: z.boolean() }),
  indexes: ["name"],
  relations: { posts: hasMany(posts, "id", "userId"), profile: hasOne(profiles, "id", "userId") },
});
const comments = defineModel("comments", { primaryKey: "id" });
const postsWithAuthor = defineModel("posts2", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), userId: z.string() }),
  relations: { author: belongsTo(users, "userId", "id") },
});

const db = createSyncOrm({ storage: createIndexedDbStorage({ name: "t" }), models: { users, posts, profiles, comments, postsWithAuthor } });
createSyncOrm({ storage: createMemoryStorage(), models: [users, posts] });

async function usage() {
  const u = db.model("users");
  const rows = await u.select({ where: { name: { ilike: "a%" }, age: { gte: 18 }, or: [{ active: true }, { age: null }] } });
  assertEqual<typeof rows, { id: string; name: string; age?: number | undefined; active: boolean }[]>(true);

  const picked = await u.select({ fields: ["id", "name"], orderBy: [{ field: "age", direction: "desc" }], limit: 10 });
  assertEqual<typeof picked, { id: string; name: string }[]>(true);

  const withRels = await u.select({ relations: { posts: { fields: ["title"] }, profile: true } });
  expectType<{ title: string }[]>(withRels[0].posts);
  expectType<{ userId: string; bio: string } | null>(withRels[0].profile);

  const authored = await db.model("posts2").select({ relations: { author: { fields: ["name"] } } });
  expectType<{ name: string } | null>(authored[0].author);

  const inserted = await u.insert({ values: { name: "Ada", active: true }, returning: { fields: ["id"] } });
  assertEqual<typeof inserted, Written<{ id: string }>>(true);
  const plain: { id: string }[] = inserted;
  expectType<readonly string[]>(inserted.mutationIds);
  await db.whenSynced(inserted);
  await db.whenSynced(inserted.mutationIds);
  await db.whenSynced();
  // @ts-expect-error whenSynced takes ids, not numbers
  await db.whenSynced([1]);
  const rejected = await db.rejected();
  expectType<string>(rejected[0].error);
  expectType<boolean>(await db.acknowledgeRejected(rejected[0].mutationId));
  await u.update({ where: { id: "1" }, values: { age: 37 } });
  await u.delete({ where: { id: { in: ["1", "2"] } } });
  const one = await u.get("1");
  expectType<{ name: string } | null>(one);
  const n: number = await u.count({ where: { active: false } });
  const free = await db.model("comments").select({ where: { anything: 1 } });
  expectType<Record<string, any>[]>(free);
  expectType<PropertyKey>(free[0].id);

  const status: SyncStatus = u.getSyncStatus();
  expectType<boolean>(status.needsAuth);
  db.resumeSync();
  const off: () => void = u.subscribeSyncStatus((s) => expectType<number>(s.pendingCount));
  await db.retryPendingSync();
  const pending = await db.pending();
  expectType<string>(pending[0].mutationId);

  const unreadable: UnreadableDataError[] = await db.unreadable();
  expectType<string>(unreadable[0].store);
  expectType<"UnreadableDataError">(unreadable[0].name);

  try {
    await u.insert({ values: { name: "x", active: true } });
  } catch (e) {
    if (e instanceof ValidationError) expectType<string[]>(e.issues[0].path);
    if (e instanceof EngineFailedError) expectType<"EngineFailedError">(e.name);
  }

  // @ts-expect-error unknown model
  db.model("nobody");
  // @ts-expect-error unknown field in where
  await u.select({ where: { nmae: "Ada" } });
  // @ts-expect-error wrong operand type
  await u.select({ where: { age: { gt: true } } });
  // @ts-expect-error like on a number field
  await u.select({ where: { age: { like: "1%" } } });
  // @ts-expect-error unknown relation
  await u.select({ relations: { comments: true } });
  // @ts-expect-error unknown orderBy field
  await u.select({ orderBy: [{ field: "nope" }] });
  // @ts-expect-error fields must exist
  await u.select({ fields: ["nope"] });
  // @ts-expect-error values must match the row type
  await u.update({ where: { id: "1" }, values: { age: "old" } });
  void [n, status, off];
}

function vueUsage() {
  const sync = useSyncOrm({ storage: createMemoryStorage(), models: { users, posts } });
  const repo = sync.useRepo("users");
  expectType<string>(repo.rows.value[0].name);
  expectType<boolean>(repo.status.value.online);
  // @ts-expect-error unknown model
  sync.useRepo("nobody");
}

void usage;
void vueUsage;

// Sync hooks receive a context with an AbortSignal; timeoutMs is a number.
defineModel("synced", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), text: z.string() }),
  sync: {
    timeoutMs: 5_000,
    mutation: async (m, { signal }) => {
      expectType<string>(m.mutationId);
      expectType<AbortSignal>(signal);
    },
    query: async (q, ctx) => {
      expectType<AbortSignal>(ctx.signal);
      return [{ id: "a", text: "b" }];
    },
  },
});
// @ts-expect-error timeoutMs is a number of milliseconds
defineModel("badTimeout", { primaryKey: "id", sync: { timeoutMs: "5s" } });

// Conflict strategies and the ORM-wide batch hook.
const stamped = defineModel("stamped", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), title: z.string(), updatedAt: z.number() }),
  conflict: { lww: "updatedAt" },
});
defineModel("merged", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), tags: z.array(z.string()) }),
  conflict: (local, remote, base) => ({ ...remote, tags: [...(local?.tags ?? []), ...remote.tags, ...(base?.tags ?? [])] }),
});
defineModel("versioned", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), name: z.string() }),
  version: 2,
  migrate: (row, from) => ({ id: row.id, name: from === 1 ? row.title : row.name }),
});
// @ts-expect-error migrate returns a row of the model
defineModel("badMigrate", { primaryKey: "id", schema: z.object({ id: z.string() }), version: 2, migrate: () => 1 });
// @ts-expect-error lww names a field of the row
defineModel("badLww", { primaryKey: "id", schema: z.object({ id: z.string() }), conflict: { lww: "missing" } });
// @ts-expect-error not a strategy
defineModel("badConflict", { primaryKey: "id", conflict: "server" });
createSyncOrm({
  models: { stamped },
  sync: { batchSize: 50, mutations: async (entries) => entries.map((e) => (e.model === "stamped" ? "done" : "retry")) },
});
function onRejected(e: unknown) {
  if (e instanceof RejectedWriteError) expectType<string>(e.mutationId);
  if (e instanceof MigrationError) expectType<"MigrationError">(e.name);
}
