// micro-sync: the public JavaScript API. The engine (queries, relations, write planning, storage)
// is Rust compiled to WebAssembly; this file defines models, validates rows with the app's
// schema, and turns engine errors into named Error classes.
import initWasm, { initSync, Engine, MemoryStore } from "./micro_sync.js";

// ---------------------------------------------------------------- WebAssembly start-up
// Initialized on first use, so importing never blocks and needs no init() from the app.
let wasmReady;
const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

function ensureWasm() {
  if (!wasmReady) {
    const url = new URL("./micro_sync_bg.wasm", import.meta.url);
    wasmReady = isNode
      ? (async () => {
          // Kept out of bundlers' sight: browsers never take this path.
          const fsName = "node:fs/promises";
          const fs = await import(/* @vite-ignore */ /* webpackIgnore: true */ fsName);
          initSync({ module: await fs.readFile(url) });
        })()
      : initWasm({ module_or_path: url }).then(() => undefined);
  }
  return wasmReady;
}

// ---------------------------------------------------------------- errors
/** Base class of every error micro-sync throws; `name` is stable and safe to branch on. */
export class MicroSyncError extends Error {
  constructor(message, props) {
    super(message);
    Object.assign(this, props);
  }
}
function errorClass(name) {
  const C = class extends MicroSyncError {};
  Object.defineProperty(C, "name", { value: name });
  Object.defineProperty(C.prototype, "name", { value: name, writable: true, configurable: true });
  return C;
}
export const ValidationError = errorClass("ValidationError");
export const QueryError = errorClass("QueryError");
export const UnknownModelError = errorClass("UnknownModelError");
export const ConstraintError = errorClass("ConstraintError");
export const StorageError = errorClass("StorageError");
export const QuotaExceededError = errorClass("QuotaExceededError");
export const DatabaseClosedError = errorClass("DatabaseClosedError");
const ERRORS = { ValidationError, QueryError, UnknownModelError, ConstraintError, StorageError, QuotaExceededError, DatabaseClosedError };

/** Re-raises an engine error as an instance of its named class (keeps name, message, details). */
function rethrow(e) {
  const C = e && ERRORS[e.name];
  if (!C || e instanceof MicroSyncError) throw e;
  const { issues, model, domName } = e;
  const props = {};
  if (issues !== undefined) props.issues = issues;
  if (model !== undefined) props.model = model;
  if (domName !== undefined) props.domName = domName;
  throw new C(e.message, props);
}

// ---------------------------------------------------------------- models
/** Defines a model. `relations` may also be assigned later: `users.relations = { ... }`. */
export function defineModel(name, options = {}) {
  if (typeof name !== "string" || name === "") throw new QueryError("defineModel needs a model name");
  const { primaryKey, schema, indexes = [], sync, relations = {} } = options;
  if (typeof primaryKey !== "string" || primaryKey === "") {
    throw new QueryError(`defineModel("${name}") needs a primaryKey field name`);
  }
  if (!Array.isArray(indexes) || indexes.some((i) => typeof i !== "string")) {
    throw new QueryError(`defineModel("${name}"): indexes must be an array of field names`);
  }
  if (schema != null && !isSchema(schema)) {
    throw new QueryError(`defineModel("${name}"): schema must be a Standard Schema or have safeParse/parse`);
  }
  return { name, primaryKey, schema, indexes, sync, relations };
}

function relation(kind) {
  return (model, localKey, foreignKey) => {
    if (!model || typeof model.name !== "string") throw new QueryError(`${kind}() needs a model from defineModel`);
    if (typeof localKey !== "string" || typeof foreignKey !== "string") {
      throw new QueryError(`${kind}(${model.name}, localKey, foreignKey) needs two field names`);
    }
    return { kind, model, localKey, foreignKey };
  };
}
export const hasMany = relation("hasMany");
export const hasOne = relation("hasOne");
export const belongsTo = relation("belongsTo");

function isSchema(s) {
  return typeof s === "object" || typeof s === "function"
    ? typeof s["~standard"]?.validate === "function" || typeof s.safeParse === "function" || typeof s.parse === "function"
    : false;
}

/** Field names the schema reveals (Zod and Valibot objects), so queries can reject typos. */
function schemaFields(schema) {
  if (!schema) return null;
  const shape = schema.shape ?? schema._zod?.def?.shape ?? schema.entries;
  return shape && typeof shape === "object" ? Object.keys(shape) : null;
}

function describeRelations(model) {
  const out = {};
  for (const [name, r] of Object.entries(model.relations ?? {})) {
    out[name] = { kind: r.kind, model: r.model.name, localKey: r.localKey, foreignKey: r.foreignKey };
  }
  return out;
}

function describe(model) {
  return {
    name: model.name,
    primaryKey: model.primaryKey,
    indexes: model.indexes,
    fields: schemaFields(model.schema),
    relations: describeRelations(model),
    hasSchema: !!model.schema,
    hasMutation: typeof model.sync?.mutation === "function",
  };
}

// ---------------------------------------------------------------- validation
function issuePath(path) {
  return (path ?? []).map((p) => String(typeof p === "object" && p !== null ? p.key : p));
}

/** Validates one row: `{ value }` or `{ issues }`, possibly as a promise. */
function validateOne(schema, row) {
  const std = schema["~standard"];
  if (std && typeof std.validate === "function") {
    const r = std.validate(row);
    const norm = (r) => (r.issues ? { issues: r.issues } : { value: r.value });
    return r && typeof r.then === "function" ? r.then(norm) : norm(r);
  }
  if (typeof schema.safeParse === "function") {
    const r = schema.safeParse(row);
    return r.success ? { value: r.data } : { issues: r.error?.issues ?? [{ message: String(r.error) }] };
  }
  try {
    return { value: schema.parse(row) };
  } catch (e) {
    return { issues: e?.issues ?? [{ message: e?.message ?? String(e) }] };
  }
}

function makeValidator(models) {
  return async (modelName, rowsJson) => {
    const schema = models.get(modelName)?.schema;
    const rows = JSON.parse(rowsJson);
    if (!schema) return JSON.stringify({ ok: rows });
    const results = await Promise.all(rows.map((r) => validateOne(schema, r)));
    const issues = [];
    results.forEach((r, i) => {
      for (const issue of r.issues ?? []) {
        const path = issuePath(issue.path);
        issues.push({ path: rows.length > 1 ? [String(i), ...path] : path, message: String(issue.message) });
      }
    });
    if (issues.length) return JSON.stringify({ issues });
    return JSON.stringify({ ok: results.map((r) => r.value) });
  };
}

// ---------------------------------------------------------------- storage
/** IndexedDB storage (browsers). `name` defaults to "micro-sync". */
export function createIndexedDbStorage(options = {}) {
  return { kind: "indexeddb", name: options.name ?? "micro-sync" };
}

/** In-memory storage: same behaviour, nothing persisted. Works in Node (SSR, tests). */
export function createMemoryStorage() {
  let store;
  return { kind: "memory", get store() { return (store ??= new MemoryStore()); } };
}

// ---------------------------------------------------------------- input checks
/** JSON drops `undefined`, so `{ id: undefined }` would silently become "every row". Refuse it. */
function assertDefined(value, path) {
  if (value === undefined) throw new QueryError(`${path} is undefined; pass null to match a missing value`);
  if (value && typeof value === "object" && !(value instanceof Date)) {
    for (const [k, v] of Object.entries(value)) assertDefined(v, `${path}${Array.isArray(value) ? `[${k}]` : `.${k}`}`);
  }
}

const json = (v) => (v === undefined ? "" : JSON.stringify(v));

/** An optional `where`: absent is "" (the engine decides whether that is allowed). */
function whereArg(where, path) {
  if (where === undefined) return "";
  assertDefined(where, path);
  return JSON.stringify(where);
}

// ---------------------------------------------------------------- repositories and the ORM
class Repository {
  #orm;
  constructor(orm, model) {
    this.#orm = orm;
    this.name = model.name;
    this.model = model;
  }

  async #call(method, ...args) {
    const engine = await this.#orm._engine(this.model);
    try {
      return await engine[method](this.name, ...args);
    } catch (e) {
      rethrow(e);
    }
  }

  #write(kind, ...args) {
    return this.#call(kind, ...args).then((text) => {
      const rows = JSON.parse(text);
      if (rows.length) this.#orm._changed(this.name);
      return rows;
    });
  }

  /** Local read: `{ where, orderBy, limit, offset, fields, relations }`. */
  async select(query = {}) {
    assertDefined(query, "select");
    return JSON.parse(await this.#call("select", json(query)));
  }

  async count(query = {}) {
    return this.#call("count", whereArg(query.where, "count.where"));
  }

  /** The row with this primary key, or `null`. */
  async get(key) {
    if (typeof key !== "string" && typeof key !== "number") {
      throw new QueryError(`get() on "${this.name}" needs a string or number key, got ${key === null ? "null" : typeof key}`);
    }
    return JSON.parse(await this.#call("get", JSON.stringify(key)));
  }

  /** Inserts one row or an array of rows; resolves with the inserted rows. */
  async insert({ values, returning } = {}) {
    if (values === undefined || values === null) throw new QueryError(`insert on "${this.name}" needs values`);
    return this.#write("insert", JSON.stringify(values), json(returning));
  }

  /** Merges `values` into every row matching `where`; resolves with the updated rows. */
  async update({ where, values, returning } = {}) {
    const w = whereArg(where, "update.where");
    if (values === null || typeof values !== "object" || Array.isArray(values)) {
      throw new QueryError(`update on "${this.name}" needs values: an object of fields to change`);
    }
    return this.#write("update", w, JSON.stringify(values), json(returning));
  }

  /** Deletes every row matching `where`; resolves with the deleted rows. */
  async delete({ where, returning } = {}) {
    return this.#write("delete", whereArg(where, "delete.where"), json(returning));
  }
}

class SyncOrm {
  #engine;
  #ready;
  #models = new Map();
  #relationsSent = new Map();
  #repos = new Map();
  #listeners = new Set();
  #closed = false;

  constructor({ storage, models }) {
    const list = Array.isArray(models) ? models : Object.values(models ?? {});
    if (!list.length) throw new QueryError("createSyncOrm needs models: { name: defineModel(...) }");
    for (const m of list) {
      if (!m || typeof m.name !== "string" || typeof m.primaryKey !== "string") {
        throw new QueryError("createSyncOrm: every entry of models must come from defineModel()");
      }
      if (this.#models.has(m.name)) throw new QueryError(`model "${m.name}" is defined twice`);
      this.#models.set(m.name, m);
    }
    storage ??= createMemoryStorage();
    if (storage.kind === "indexeddb" && typeof indexedDB === "undefined") {
      this.#ready = Promise.reject(
        new StorageError("IndexedDB is not available here (server-side rendering or Node); use createMemoryStorage()"),
      );
      this.#ready.catch(() => {});
    } else {
      this.#ready = this.#open(storage, list);
      this.#ready.catch(() => {});
    }
  }

  async #open(storage, list) {
    await ensureWasm();
    const descs = JSON.stringify(list.map(describe));
    const validate = makeValidator(this.#models);
    try {
      this.#engine =
        storage.kind === "memory" ? Engine.withMemory(descs, storage.store, validate) : Engine.withIndexedDb(descs, storage.name, validate);
      await this.#engine.open();
    } catch (e) {
      rethrow(e);
    }
    for (const m of list) this.#relationsSent.set(m.name, m.relations);
  }

  /** Resolves once storage is open (every method waits for it anyway). */
  get ready() {
    return this.#ready;
  }

  async _engine(model) {
    await this.#ready;
    if (this.#closed) throw new DatabaseClosedError("the database is closed; create a new one with createSyncOrm()");
    // Relations may be assigned after createSyncOrm: resend any model whose object changed.
    for (const m of this.#models.values()) {
      if (this.#relationsSent.get(m.name) !== m.relations) {
        try {
          this.#engine.setRelations(m.name, JSON.stringify(describeRelations(m)));
        } catch (e) {
          rethrow(e);
        }
        this.#relationsSent.set(m.name, m.relations);
      }
    }
    return this.#engine;
  }

  /** The repository of a model. */
  model(name) {
    let repo = this.#repos.get(name);
    if (!repo) {
      const model = this.#models.get(name);
      if (!model) {
        throw new UnknownModelError(`unknown model "${name}": pass it in createSyncOrm({ models }) before using it`);
      }
      repo = new Repository(this, model);
      this.#repos.set(name, repo);
    }
    return repo;
  }

  /** Calls `fn(modelName)` after every committed local write. Returns an unsubscribe function. */
  onChange(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  _changed(model) {
    for (const fn of [...this.#listeners]) {
      try {
        fn(model);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /** Closes the database. Further calls reject with DatabaseClosedError. */
  close() {
    this.#closed = true;
    this.#engine?.close();
    this.#listeners.clear();
  }
}

/** Creates the ORM. Storage opens in the background; every method waits for it. */
export function createSyncOrm(options = {}) {
  return new SyncOrm(options);
}
