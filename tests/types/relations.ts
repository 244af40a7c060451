// Type tests of relations both ways and at depth (defineRelations), dates as stored, live queries
// and the Vue composables. Every line must compile and each `@ts-expect-error` must be an error.
import { z } from "zod";
import { createMemoryStorage, createSyncOrm, defineRelations, defineSyncModel, belongsTo, hasMany, hasOne, type Stored } from "micro-sync";
import { provideSyncOrm, syncOrmPlugin, useQuery, useRepo, useSyncOrm } from "micro-sync/adapters/vue";
import { createApp, type Ref, type ShallowRef } from "vue";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const assertEqual = <A, B>(_: Equal<A, B>) => {};
const expectType = <T>(_: T) => {};

const users = defineSyncModel("users", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), name: z.string(), born: z.date().optional() }),
});
const todos = defineSyncModel("todos", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), userId: z.string(), title: z.string(), due: z.date(), tags: z.array(z.object({ at: z.date() })) }),
});
const comments = defineSyncModel("comments", { primaryKey: "id", schema: z.object({ id: z.string(), todoId: z.string(), text: z.string() }) });

// Models that refer to each other: defined first, related after.
const usersR = defineRelations(users, { todos: hasMany(todos, "id", "userId") });
const todosR = defineRelations(todos, { owner: belongsTo(users, "userId", "id"), comments: hasMany(comments, "id", "todoId") });
const commentsR = defineRelations(comments, { todo: belongsTo(todos, "todoId", "id"), first: hasOne(todos, "todoId", "id") });
export const models = { users: usersR, todos: todosR, comments: commentsR };

// @ts-expect-error the foreign key is not a field of todos
hasMany(todos, "id", "userid");
// @ts-expect-error the local key is not a field of users
defineRelations(users, { todos: hasMany(todos, "uid", "userId") });

type User = { id: string; name: string; born?: string | undefined };
type Todo = { id: string; userId: string; title: string; due: string; tags: { at: string }[] };

async function core() {
  const db = createSyncOrm({ storage: createMemoryStorage(), models });

  // Both directions, two levels deep.
  const withTodos = await db.model("users").select({ relations: { todos: { fields: ["title"], relations: { owner: { fields: ["name"] } } } } });
  assertEqual<(typeof withTodos)[number]["todos"], ({ title: string } & { owner: { name: string } | null })[]>(true);
  const withOwner = await db.model("todos").select({ relations: { owner: { relations: { todos: { fields: ["id"] } } } } });
  expectType<string>(withOwner[0].owner!.todos[0].id);
  expectType<string | undefined>(withOwner[0].owner!.born);
  const deep = await db.model("comments").select({ relations: { todo: { relations: { owner: true, comments: { fields: ["text"] } } } } });
  expectType<string>(deep[0].todo!.owner!.name);
  expectType<string>(deep[0].todo!.comments[0].text);

  // Dates come back as ISO strings, at any depth.
  const [t] = await db.model("todos").select();
  assertEqual<Stored<Date>, string>(true);
  expectType<Todo>(t);
  expectType<string>(t.due);
  expectType<string>(t.tags[0].at);
  // @ts-expect-error a stored date is a string, not a Date
  t.due.getTime();
  const u = await db.model("users").get("1");
  expectType<User | null>(u);
  // A Date is still accepted where rows go in and in queries.
  await db.model("todos").insert({ values: { id: "1", userId: "u", title: "t", due: new Date(), tags: [] } });
  await db.model("todos").select({ where: { due: { gte: new Date() } } });

  // Live queries are typed like select.
  const stop = db.model("todos").live({ fields: ["title"], relations: { owner: true } }, (rows) => {
    assertEqual<typeof rows, ({ title: string } & { owner: User | null })[]>(true);
  }, (e) => expectType<Error>(e));
  expectType<() => void>(stop);

  // @ts-expect-error unknown relation
  await db.model("users").select({ relations: { todoz: true } });
  // @ts-expect-error unknown relation next to a known one
  await db.model("users").select({ relations: { todos: true, todoz: true } });
  // @ts-expect-error unknown relation one level down
  await db.model("users").select({ relations: { todos: { relations: { ownr: true } } } });
  // @ts-expect-error unknown field next to a known one
  await db.model("users").select({ where: { name: "Ada", nmae: "x" } });
  // @ts-expect-error unknown field in a related query
  await db.model("users").select({ relations: { todos: { fields: ["titel"] } } });
  // @ts-expect-error unknown relation in a live query
  db.model("todos").live({ relations: { ownr: true } }, () => {});
  // @ts-expect-error unknown relation in returning
  await db.model("todos").insert({ values: { title: "x" }, returning: { relations: { ownr: true } } });
}

declare module "micro-sync/adapters/vue" {
  interface Register {
    models: typeof models;
  }
}

function vue() {
  // By name, typed through Register.
  const q = useQuery("todos", () => ({ where: { title: { like: "a%" } }, fields: ["id", "due"], relations: { owner: { fields: ["name"] } } }));
  assertEqual<typeof q.data, ShallowRef<({ id: string; due: string } & { owner: { name: string } | null })[]>>(true);
  expectType<ShallowRef<Error | null>>(q.error);
  expectType<Ref<boolean>>(q.isLoading);
  const all = useQuery("users");
  expectType<User[]>(all.data.value);
  // @ts-expect-error unknown model name
  useQuery("nobody", () => ({}));
  // @ts-expect-error unknown relation
  useQuery("users", () => ({ relations: { todoz: true } }));
  // @ts-expect-error unknown field
  useQuery("users", () => ({ fields: ["nope"] }));

  // By repository.
  const sync = useSyncOrm();
  const byRepo = useQuery(sync.db.model("users"), () => ({ relations: { todos: { fields: ["title"] } } }));
  expectType<{ title: string }[]>(byRepo.data.value[0].todos);
  const repo = useRepo("todos");
  expectType<string>(repo.rows.value[0].due);
  expectType<number>(repo.status.value.pendingCount);
  const fromRepo = useQuery(repo, () => ({ fields: ["title"] }));
  expectType<{ title: string }[]>(fromRepo.data.value);
  // @ts-expect-error unknown model name
  useRepo("nobody");

  // The app-wide instance.
  const db = createSyncOrm({ storage: createMemoryStorage(), models });
  createApp({}).use(syncOrmPlugin, db);
  createApp({}).use(syncOrmPlugin, { models, storage: createMemoryStorage(), engine: false });
  const provided = provideSyncOrm({ models, storage: createMemoryStorage() });
  expectType<string>((await0(provided.db.model("users").select()))[0].name);
}
declare function await0<T>(p: Promise<T>): T;

void core;
void vue;
