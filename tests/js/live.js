// Live queries, in the browser page against the built package; every case runs once per storage
// kind with a fresh, randomly named database.
import * as ms from "micro-sync";

function eq(actual, expected, what = "value") {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

const settle = () => new Promise((r) => setTimeout(r, 30));

function open(kind, extra = {}) {
  const lists = ms.defineSyncModel("lists", { primaryKey: "id", indexes: ["owner"] });
  const todos = ms.defineSyncModel("todos", { primaryKey: "id", indexes: ["listId"], ...extra.todos });
  const tags = ms.defineSyncModel("tags", { primaryKey: "id" });
  ms.defineRelations(lists, { todos: ms.hasMany(todos, "id", "listId") });
  ms.defineRelations(todos, { tags: ms.hasMany(tags, "id", "todoId"), list: ms.belongsTo(lists, "listId", "id") });
  const storage = kind === "memory" ? ms.createMemoryStorage() : ms.createIndexedDbStorage({ name: `live-${Math.random().toString(36).slice(2)}` });
  return ms.createSyncOrm({ storage, models: { lists, todos, tags } });
}

/** Opens `query` live on `repo`; `answers` collects every callback. */
function watch(repo, query) {
  const answers = [];
  const errors = [];
  const stop = repo.live(query, (rows) => answers.push(rows), (e) => errors.push(e));
  return { answers, errors, stop, last: () => answers[answers.length - 1] };
}

export const cases = {
  async "a live query answers at once, then only when its answer changed"(kind) {
    const db = open(kind);
    const todos = db.model("todos");
    await todos.insert({ values: [{ id: 1, listId: "a", n: 3 }, { id: 2, listId: "b", n: 1 }] });
    const w = watch(todos, { where: { listId: "a" }, orderBy: [{ field: "n", direction: "asc" }], limit: 2 });
    await settle();
    eq(w.answers, [[{ id: 1, listId: "a", n: 3 }]], "first answer");
    await todos.insert({ values: { id: 3, listId: "b", n: 0 } }); // not matched
    await todos.update({ where: { id: 1 }, values: { n: 3 } }); // the same value
    await settle();
    eq(w.answers.length, 1, "no call back for changes outside the answer");
    await todos.insert({ values: { id: 4, listId: "a", n: 1 } });
    await settle();
    eq(w.last(), [{ id: 4, listId: "a", n: 1 }, { id: 1, listId: "a", n: 3 }], "a new row sorts in");
    await todos.insert({ values: { id: 5, listId: "a", n: 9 } }); // beyond the limit
    await settle();
    eq(w.answers.length, 2, "a row beyond the limit changes nothing");
    await todos.delete({ where: { id: 4 } });
    await settle();
    eq(w.last(), [{ id: 1, listId: "a", n: 3 }, { id: 5, listId: "a", n: 9 }], "a row beyond the window moves in");
    w.stop();
    await todos.delete({ where: { id: 1 } });
    await settle();
    eq(w.answers.length, 3, "nothing after unsubscribing");
    eq(w.errors, [], "errors");
    await db.close();
  },

  async "un-awaited writes: the last answer is the last call's"(kind) {
    const db = open(kind);
    const todos = db.model("todos");
    await todos.insert({ values: { id: "x", listId: "a", v: 0 } });
    const w = watch(todos, { where: { id: "x" } });
    await Promise.all([1, 2, 3, 4, 5].map((v) => todos.update({ where: { id: "x" }, values: { v } })));
    await settle();
    eq(w.last(), [{ id: "x", listId: "a", v: 5 }], "last answer");
    eq(w.last(), await todos.select({ where: { id: "x" } }), "as select");
    w.stop();
    await db.close();
  },

  async "relations two levels down refresh the answer"(kind) {
    const db = open(kind);
    await db.model("lists").insert({ values: { id: "a", owner: "ada" } });
    await db.model("todos").insert({ values: { id: 1, listId: "a" } });
    const w = watch(db.model("lists"), { relations: { todos: { fields: ["id"], relations: { tags: { fields: ["name"] } } } } });
    await settle();
    eq(w.last(), [{ id: "a", owner: "ada", todos: [{ id: 1, tags: [] }] }], "first answer");
    await db.model("tags").insert({ values: { id: "t1", todoId: 1, name: "urgent" } });
    await settle();
    eq(w.last(), [{ id: "a", owner: "ada", todos: [{ id: 1, tags: [{ name: "urgent" }] }] }], "a tag two levels down");
    await db.model("tags").insert({ values: { id: "t2", todoId: 99, name: "elsewhere" } });
    await settle();
    eq(w.answers.length, 2, "a tag of another todo changes nothing");
    w.stop();
    await db.close();
  },

  async "a pull refreshes a live query"(kind) {
    let remote = [{ id: 1, listId: "a" }];
    const db = open(kind, { todos: { sync: { query: async () => remote } } });
    const w = watch(db.model("todos"), {});
    await settle();
    eq(w.last(), [], "empty at first");
    await db.model("todos").sync();
    await settle();
    eq(w.last(), [{ id: 1, listId: "a" }], "after the pull");
    remote = [];
    await db.model("todos").sync();
    await settle();
    eq(w.last(), [], "after a pull that removed it");
    w.stop();
    await db.close();
  },

  async "an invalid query reaches onError and never onRows"(kind) {
    const db = open(kind);
    const todos = db.model("todos");
    const unknownRelation = watch(todos, { relations: { nope: true } });
    const notJson = watch(todos, { where: { id: () => 1 } });
    await settle();
    for (const [w, pattern] of [[unknownRelation, /unknown relation "nope"/], [notJson, /function/]]) {
      eq(w.answers, [], "answers");
      eq(w.errors.length, 1, "one error");
      if (w.errors[0].name !== "QueryError" || !pattern.test(w.errors[0].message)) throw new Error(`unexpected ${w.errors[0]}`);
    }
    let threw = null;
    try {
      todos.live({}, "not a function");
    } catch (e) {
      threw = e.name;
    }
    eq(threw, "QueryError", "a missing callback");
    await db.close();
  },
};

export async function run(kind, name) {
  await cases[name](kind);
}
