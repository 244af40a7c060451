// micro-sync: the public JavaScript API. The engine (queries, relations, write planning, the
// write queue, storage) is Rust compiled to WebAssembly; this file defines models, validates rows
// with the app's schema, checks input before it crosses into WebAssembly, and turns engine errors
// into named Error classes.
import initWasm, { initSync, Engine, MemoryStore, setFatalHandler, kick, resetIndexedDbQueue } from "./micro_sync.js";

// ---------------------------------------------------------------- limits (see README "Limits")
/** Nesting of arrays and objects in a row or a `where` (the engine enforces the same number). */
const MAX_DEPTH = 64;
/** Characters of JSON one call may send into the engine (32 MiB of text). */
const MAX_PAYLOAD_CHARS = 32 * 1024 * 1024;
/** Changes are announced to other tabs at most this often (ms); the first one goes out at once. */
const ANNOUNCE_MS = 8;
/** How long a tab keeps the outbox lock after its last drain (see SyncOrm#holdLease). */
const LEASE_IDLE_MS = 25;
/** setTimeout / setInterval treat longer delays as 0. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

// ---------------------------------------------------------------- WebAssembly start-up
// Initialized on first use, so importing never blocks and needs no init() from the app.
let wasmReady;
let wasmExports;

function ensureWasm() {
  if (!wasmReady) {
    const url = new URL("./micro_sync_bg.wasm", import.meta.url);
    wasmReady = (
      isNode
        ? (async () => {
            // Kept out of bundlers' sight: browsers never take this path.
            const fsName = "node:fs/promises";
            const fs = await import(/* @vite-ignore */ /* webpackIgnore: true */ fsName);
            return initSync({ module: await fs.readFile(url) });
          })()
        : initWasm({ module_or_path: url })
    ).then((exports) => {
      wasmExports = exports;
      setFatalHandler(onFatal);
    });
  }
  return wasmReady;
}

/** Bytes of WebAssembly memory in use by the engine (0 before first use). For diagnostics. */
export function memoryUsage() {
  return { wasmBytes: wasmExports?.memory?.buffer?.byteLength ?? 0 };
}

// ---------------------------------------------------------------- errors
/** Base class of every error micro-sync throws; `name` is stable and safe to branch on. */
export class MicroSyncError extends Error {
  constructor(message, props) {
    super(message, props?.cause === undefined ? undefined : { cause: props.cause });
    if (props) for (const [k, v] of Object.entries(props)) if (k !== "cause") this[k] = v;
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
export const SyncError = errorClass("SyncError");
export const EngineFailedError = errorClass("EngineFailedError");
export const UnreadableDataError = errorClass("UnreadableDataError");
const ERRORS = { ValidationError, QueryError, UnknownModelError, ConstraintError, StorageError, QuotaExceededError, DatabaseClosedError, SyncError, EngineFailedError };

/** An engine error as an instance of its named class (keeps name, message, details). */
function named(e) {
  const C = e && ERRORS[e.name];
  if (!C || e instanceof MicroSyncError) return e;
  const { issues, model, domName } = e;
  const props = {};
  if (issues !== undefined) props.issues = issues;
  if (model !== undefined) props.model = model;
  if (domName !== undefined) props.domName = domName;
  return new C(e.message, props);
}

// ---------------------------------------------------------------- traps
// A trap (a panic, running out of memory) leaves the module's work for one engine unfinished. The
// module reports it just before (see src/bindings/fatal.rs); the engine's ORM then rejects every
// pending and later call with EngineFailedError and lets go of its locks. So do the other ORMs of
// this tab on the same storage, whose writes would wait forever behind the interrupted one; ORMs
// on other storages keep working, and new ORMs get a fresh write queue.
const liveOrms = new Set();
let lastFatal = null;

function onFatal(message, engineId) {
  // Runs inside WebAssembly just before it traps: only record, and act once it has unwound.
  lastFatal = message;
  queueMicrotask(() => {
    for (const orm of liveOrms) if (orm._engineId === engineId) orm._fail(new Error(message));
    // A trap inside the executor may leave other engines' futures queued: run them.
    try {
      kick();
    } catch {
      // Nothing to run.
    }
  });
}

const isTrap = (e) => typeof WebAssembly !== "undefined" && e instanceof WebAssembly.RuntimeError;

// ---------------------------------------------------------------- the input contract
// Rows and query operands must be JSON values: what JSON.stringify would silently change or drop
// (a function, Symbol, Map, Set, class instance, BigInt, NaN, a cycle) is refused with its path,
// instead of being stored or matched as something else. Dates are written as their ISO string.

const describe = (v) => (v === null ? "null" : typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v);

/**
 * Checks `value` against the contract; `fail(path, message)` throws. `path` is the caller's
 * prefix; the walk keeps one path and one ancestor stack, so checking costs no allocation per
 * value. An object property holding `undefined` is an absent field in a row (`skipUndefined`);
 * in a query it is refused, since `{ id: undefined }` would silently mean "every row".
 */
function checkJson(value, path, fail, skipUndefined = true) {
  const ancestors = [];
  const walk = (v) => {
    switch (typeof v) {
      case "string":
      case "boolean":
        return;
      case "number":
        if (!Number.isFinite(v)) fail(path, `is ${v}, which JSON cannot hold (only finite numbers)`);
        return;
      case "undefined":
        return fail(path, "is undefined (JSON would drop it or turn it into null)");
      case "bigint":
        return fail(path, "is a BigInt, which JSON cannot hold (store it as a string or number)");
      case "symbol":
        return fail(path, "is a Symbol, which JSON cannot hold");
      case "function":
        return fail(path, "is a function, which JSON cannot hold");
    }
    if (v === null) return;
    if (v instanceof Date) {
      if (Number.isNaN(v.getTime())) fail(path, "is an invalid Date");
      return;
    }
    if (ancestors.includes(v)) return fail(path, "refers back to an object that contains it (a cycle)");
    if (ancestors.length >= MAX_DEPTH) return fail(path, `is nested deeper than ${MAX_DEPTH} levels`);
    ancestors.push(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(String(i));
        walk(v[i]);
        path.pop();
      }
    } else {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        fail(path, `is a ${describe(v)}; only plain objects, arrays, strings, finite numbers, booleans, null and Dates can be stored`);
      }
      for (const k of Object.keys(v)) {
        if (v[k] === undefined && skipUndefined) continue; // an absent field, as JSON writes it
        path.push(k);
        walk(v[k]);
        path.pop();
      }
    }
    ancestors.pop();
  };
  walk(value);
}

const pathText = (path) => path.join(".");

/** JSON text of a query part (`where`, options), or a QueryError naming what is not JSON. */
function queryJson(value, what) {
  if (value === undefined) return "";
  checkJson(
    value,
    [what],
    (path, message) => {
      throw new QueryError(`${pathText(path)} ${message}; query operands must be JSON values (a Date is compared as its ISO string, pass null to match a missing value)`);
    },
    false,
  );
  return sized(JSON.stringify(value), what, QueryError);
}

/** JSON text of rows (or update values) of `model`, or a ValidationError listing the path. */
function rowsJson(value, model, prefix = []) {
  checkJson(value, [...prefix], (path, message) => {
    throw new ValidationError(`invalid ${model} row: ${pathText(path) || "(row)"} ${message}`, { model, issues: [{ path: [...path], message }] });
  });
  return sized(JSON.stringify(value), `${model} values`, ValidationError);
}

function sized(text, what, E) {
  if (text.length > MAX_PAYLOAD_CHARS) {
    throw new E(`${what} is ${text.length} characters of JSON; one call may send at most ${MAX_PAYLOAD_CHARS} (split it into several writes)`);
  }
  return text;
}

const options = (v, what) => {
  if (v === undefined) return {};
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new QueryError(`${what} needs an options object, got ${describe(v)}`);
  return v;
};

// ---------------------------------------------------------------- models
/** Defines a model. `relations` may also be assigned later: `users.relations = { ... }`. */
export function defineModel(name, opts) {
  if (typeof name !== "string" || name === "") throw new QueryError("defineModel needs a model name");
  const { primaryKey, schema, indexes = [], sync, relations = {} } = options(opts, `defineModel("${name}")`);
  if (typeof primaryKey !== "string" || primaryKey === "") {
    throw new QueryError(`defineModel("${name}") needs a primaryKey field name`);
  }
  if (!Array.isArray(indexes) || indexes.some((i) => typeof i !== "string")) {
    throw new QueryError(`defineModel("${name}"): indexes must be an array of field names`);
  }
  if (schema != null && !isSchema(schema)) {
    throw new QueryError(`defineModel("${name}"): schema must be a Standard Schema or have safeParse/parse`);
  }
  const timeoutMs = sync?.timeoutMs;
  if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs > 0)) {
    throw new QueryError(`defineModel("${name}"): sync.timeoutMs must be a positive number of milliseconds (Infinity for no limit)`);
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

function describeModel(model) {
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

/** The issues of one result (schema issues, or the output not being JSON), paths prefixed. */
function resultIssues(r, prefix) {
  if (r.issues) return r.issues.map((issue) => ({ path: [...prefix, ...issuePath(issue.path)], message: String(issue.message) }));
  const out = [];
  try {
    checkJson(r.value, [...prefix], (path, message) => {
      throw { path: [...path], message: `the schema's output ${message}` };
    });
  } catch (issue) {
    out.push(issue);
  }
  return out;
}

/**
 * The engine's `validate(model, rowsJson, each)`: for a write (`each` false) `{ ok: rows }` or
 * `{ issues }` for all rows at once; for a pull (`each` true) one such outcome per row.
 */
function makeValidator(models) {
  return async (modelName, rowsJson, each) => {
    const schema = models.get(modelName)?.schema;
    const rows = JSON.parse(rowsJson);
    if (!schema) return JSON.stringify(each ? rows.map((ok) => ({ ok })) : { ok: rows });
    const results = await Promise.all(rows.map((r) => validateOne(schema, r)));
    if (each) {
      return JSON.stringify(
        results.map((r) => {
          const issues = resultIssues(r, []);
          return issues.length ? { issues } : { ok: r.value };
        }),
      );
    }
    const issues = results.flatMap((r, i) => resultIssues(r, rows.length > 1 ? [String(i)] : []));
    if (issues.length) return JSON.stringify({ issues });
    return JSON.stringify({ ok: results.map((r) => r.value) });
  };
}

// ---------------------------------------------------------------- storage
/** IndexedDB storage (browsers). `name` defaults to "micro-sync". */
export function createIndexedDbStorage(opts) {
  const { name = "micro-sync" } = options(opts, "createIndexedDbStorage");
  if (typeof name !== "string" || name === "") {
    throw new QueryError(`createIndexedDbStorage: name must be a non-empty string, got ${describe(name)}`);
  }
  return { kind: "indexeddb", name };
}

/** In-memory storage: same behaviour, nothing persisted. Works in Node (SSR, tests). */
export function createMemoryStorage() {
  let store;
  return { kind: "memory", get store() { return (store ??= new MemoryStore()); } };
}

// ---------------------------------------------------------------- network
/**
 * The browser's connectivity: `navigator.onLine` plus window `online`/`offline` events. A custom
 * detector is any `{ isOnline(): boolean, subscribe(listener): unsubscribe }`.
 */
export function createNetworkDetector() {
  const hasWindow = typeof window !== "undefined" && typeof window.addEventListener === "function";
  return {
    isOnline: () => (typeof navigator !== "undefined" && typeof navigator.onLine === "boolean" ? navigator.onLine : true),
    subscribe(listener) {
      if (!hasWindow) return () => {};
      const on = () => listener(true);
      const off = () => listener(false);
      window.addEventListener("online", on);
      window.addEventListener("offline", off);
      return () => {
        window.removeEventListener("online", on);
        window.removeEventListener("offline", off);
      };
    },
  };
}

function checkDetector(d) {
  if (!d || typeof d.isOnline !== "function" || typeof d.subscribe !== "function") {
    throw new QueryError("networkDetector must be { isOnline(): boolean, subscribe(listener): unsubscribe }");
  }
  return d;
}

function checkInterval(ms, what) {
  if (!(typeof ms === "number" && ms > 0 && ms <= MAX_TIMER_MS)) {
    throw new QueryError(`${what} must be a number of milliseconds between 1 and ${MAX_TIMER_MS} (about 24.8 days), got ${String(ms)}`);
  }
  return ms;
}

/** How long a sync hook call may stay pending before it counts as failed (`sync.timeoutMs`). */
const HOOK_TIMEOUT_MS = 30_000;

/**
 * Calls `model.sync[hook](arg, { signal })`. A call still pending after `sync.timeoutMs` fails
 * (a transient failure for a push, a SyncError for a pull) and its signal is aborted, so a request
 * that never answers cannot hold the outbox queue.
 */
function callHook(model, hook, arg) {
  const ms = model.sync.timeoutMs ?? HOOK_TIMEOUT_MS;
  const controller = new AbortController();
  const call = (async () => model.sync[hook](arg, { signal: controller.signal }))();
  if (!(ms <= MAX_TIMER_MS)) return call;
  let timer;
  const timedOut = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const e = new Error(`sync.${hook} of "${model.name}" did not settle within ${ms} ms`);
      e.name = "TimeoutError";
      controller.abort(e);
      reject(e);
    }, ms);
  });
  return Promise.race([call, timedOut]).finally(() => clearTimeout(timer));
}

/**
 * The outbox lock while a tab holds it: `release` lets it go, `timer` ends it when idle.
 */
const newLease = (release) => ({ release, timer: null });

/** An error thrown by a mutation hook is a rejection when it says it will never succeed. */
const isPermanent = (e) => e != null && (e.retryable === false || e.permanent === true);
const messageOf = (e) => (e instanceof Error ? e.message || e.name : typeof e === "string" ? e : JSON.stringify(e) ?? String(e));

// ---------------------------------------------------------------- repositories and the ORM
class Repository {
  #orm;
  constructor(orm, model) {
    this.#orm = orm;
    this.name = model.name;
    this.model = model;
  }

  // Every method calls the engine before its first await, so the engine sees calls in the order
  // they were made (writes take effect in that order, awaited or not).
  #call(method, ...args) {
    return this.#orm._invoke((engine) => engine[method](this.name, ...args));
  }

  async #write(kind, ...args) {
    const rows = JSON.parse(await this.#call(kind, ...args));
    if (rows.length) {
      this.#orm._changed(this.name);
      // Optimistic write committed: try to push it now (a no-op offline or when nothing syncs).
      if (typeof this.model.sync?.mutation === "function") this.#orm._drain(false).catch(() => {});
    }
    return rows;
  }

  /** Local read: `{ where, orderBy, limit, offset, fields, relations }`. */
  async select(query) {
    return JSON.parse(await this.#call("select", queryJson(options(query, `select on "${this.name}"`), "select")));
  }

  async count(query) {
    const { where } = options(query, `count on "${this.name}"`);
    return this.#call("count", queryJson(where, "count.where"));
  }

  /** The row with this primary key, or `null`. */
  async get(key) {
    if (typeof key !== "string" && !(typeof key === "number" && Number.isFinite(key))) {
      throw new QueryError(`get() on "${this.name}" needs a string or finite number key, got ${describe(key)}`);
    }
    return JSON.parse(await this.#call("get", JSON.stringify(key)));
  }

  /** Inserts one row or an array of rows; resolves with the inserted rows. */
  async insert(args) {
    const { values, returning } = options(args, `insert on "${this.name}"`);
    if (values === undefined || values === null) throw new QueryError(`insert on "${this.name}" needs values: a row or an array of rows`);
    return this.#write("insert", rowsJson(values, this.name), queryJson(returning, "returning"));
  }

  /** Merges `values` into every row matching `where`; resolves with the updated rows. */
  async update(args) {
    const { where, values, returning } = options(args, `update on "${this.name}"`);
    const w = queryJson(where, "update.where");
    if (values === null || typeof values !== "object" || Array.isArray(values)) {
      throw new QueryError(`update on "${this.name}" needs values: an object of fields to change`);
    }
    return this.#write("update", w, rowsJson(values, this.name), queryJson(returning, "returning"));
  }

  /** Deletes every row matching `where`; resolves with the deleted rows. */
  async delete(args) {
    const { where, returning } = options(args, `delete on "${this.name}"`);
    return this.#write("delete", queryJson(where, "delete.where"), queryJson(returning, "returning"));
  }

  /**
   * Pulls `model.sync.query(query)` and merges it into local storage: remote rows win unless the
   * row has pending local writes, which stay applied on top. For an unpaginated query, local rows
   * it matches that the backend no longer returns (and that have no pending writes) are deleted.
   * Resolves with the local rows for `query` afterwards.
   */
  async sync(query) {
    const q = queryJson(options(query, `sync on "${this.name}"`), "sync");
    if (typeof this.model.sync?.query !== "function") {
      throw new QueryError(`model "${this.name}" has no sync.query hook to pull with`);
    }
    const rows = JSON.parse(await this.#call("pull", q));
    this.#orm._changed(this.name);
    return rows;
  }

  /** The current sync status: a frozen object, replaced (never mutated) on every change. */
  getSyncStatus() {
    return this.#orm._status(this.name);
  }

  /** Calls `listener(status)` on every status change. Returns the unsubscribe function. */
  subscribeSyncStatus(listener) {
    if (typeof listener !== "function") throw new QueryError("subscribeSyncStatus needs a function");
    return this.#orm._subscribe(this.name, listener);
  }
}

class SyncOrm {
  #engine = null;
  #startError = null; // why the engine could not be created
  #fatal = null; // the EngineFailedError once the engine trapped
  #startup = []; // calls made before the engine existed: [call, resolve, reject]
  #inflight = new Set(); // reject functions of calls in progress
  #ready;
  #models = new Map();
  #relationsSent = new Map();
  #repos = new Map();
  #listeners = new Set();
  #closed = false;
  #storage;
  #storageName = null;
  #detector;
  #loop = null;
  #statusCache = new Map(); // model -> { json, snapshot }
  #subscribers = new Map(); // model -> Set(listener)
  #statusQueued = false;
  #channel = null;
  #announced = 0; // the commit number last announced to other tabs
  #announceTimer = null;
  #lastAnnounce = -Infinity;
  #catchingUp = null;
  #catchUpAgain = false;
  #draining = null;
  #drainAgain = false;
  #forceAgain = false;
  #pushing = 0; // mutation hooks running now
  #lease = null; // see #holdLease: set while this tab holds the outbox lock
  #leaseEnding = null;
  #closing = new AbortController();

  constructor(opts) {
    const { storage = createMemoryStorage(), models, engine } = options(opts, "createSyncOrm");
    const list = Array.isArray(models) ? models : Object.values(models ?? {});
    if (!list.length) throw new QueryError("createSyncOrm needs models: { name: defineModel(...) }");
    for (const m of list) {
      if (!m || typeof m.name !== "string" || typeof m.primaryKey !== "string") {
        throw new QueryError("createSyncOrm: every entry of models must come from defineModel()");
      }
      if (this.#models.has(m.name)) throw new QueryError(`model "${m.name}" is defined twice`);
      this.#models.set(m.name, m);
    }
    if (storage?.kind !== "indexeddb" && storage?.kind !== "memory") {
      throw new QueryError("createSyncOrm: storage must come from createIndexedDbStorage() or createMemoryStorage()");
    }
    if (engine !== undefined) options(engine, "createSyncOrm engine");
    this.#detector = checkDetector(engine?.networkDetector ?? createNetworkDetector());
    if (engine !== undefined) {
      const intervalMs = checkInterval(engine.intervalMs ?? 30_000, "engine.intervalMs");
      this.#loop = new SyncEngine(this, { intervalMs, networkDetector: this.#detector });
    }
    this.#storage = storage;
    if (storage.kind === "indexeddb") this.#storageName = storage.name;
    this.#ready =
      storage.kind === "indexeddb" && typeof indexedDB === "undefined"
        ? this.#startFailed(new StorageError("IndexedDB is not available here (server-side rendering or Node); use createMemoryStorage()"))
        : this.#start(storage, list);
    this.#ready.catch(() => {});
  }

  async #startFailed(e) {
    this.#startError = e;
    for (const [, , reject] of this.#startup.splice(0)) reject(e);
    throw e;
  }

  async #start(storage, list) {
    try {
      await ensureWasm();
      const descs = JSON.stringify(list.map(describeModel));
      const hooks = {
        validate: makeValidator(this.#models),
        push: (model, entryJson) => this.#push(model, entryJson),
        pull: (model, queryJson) => this.#pull(model, queryJson),
        changed: () => this.#queueStatus(),
      };
      this.#engine =
        storage.kind === "memory" ? Engine.withMemory(descs, storage.store, hooks) : Engine.withIndexedDb(descs, storage.name, hooks);
    } catch (e) {
      return this.#startFailed(named(e));
    }
    liveOrms.add(this);
    for (const m of list) this.#relationsSent.set(m.name, m.relations);
    // Open first, then every call made meanwhile, in the order they were made.
    const opened = this._invoke((engine) => engine.open());
    for (const [call, resolve, reject] of this.#startup.splice(0)) this._invoke(call).then(resolve, reject);
    await opened;
    if (this.#closed) return;
    this.#sync(() => this.#engine.setOnline(this.#detector.isOnline()));
    this.#announced = this.#sync(() => this.#engine.seq());
    if (this.#storageName && typeof BroadcastChannel === "function") {
      this.#channel = new BroadcastChannel(`micro-sync:${this.#storageName}`);
      this.#channel.onmessage = (e) => this.#onMessage(e.data);
    }
    this.#loop?.start();
  }

  get _engineId() {
    return this.#engine?.id ?? 0;
  }

  /** ORMs with the same key share a write queue (one IndexedDB database, or one memory store). */
  get _storageKey() {
    return this.#storageName !== null ? `idb:${this.#storageName}` : this.#storage;
  }

  /**
   * Runs `call(engine)` now (before the engine exists: as soon as it does, in call order) and
   * settles with its promise; rejects with the named error it failed with, or with
   * EngineFailedError if the engine trapped meanwhile.
   */
  _invoke(call) {
    if (this.#fatal) return Promise.reject(this.#fatal);
    if (!this.#engine) {
      if (this.#startError) return Promise.reject(this.#startError);
      return new Promise((resolve, reject) => this.#startup.push([call, resolve, reject]));
    }
    let promise;
    try {
      this.#sendRelations();
      promise = call(this.#engine);
    } catch (e) {
      return Promise.reject(this.#failure(e));
    }
    return new Promise((resolve, reject) => {
      this.#inflight.add(reject);
      promise.then(
        (v) => {
          this.#inflight.delete(reject);
          resolve(v);
        },
        (e) => {
          this.#inflight.delete(reject);
          reject(this.#failure(e));
        },
      );
    });
  }

  /** A synchronous engine call (status, pending, ...), with the same error handling. */
  #sync(call) {
    if (this.#fatal) throw this.#fatal;
    try {
      return call();
    } catch (e) {
      throw this.#failure(e);
    }
  }

  /** The error to report for `e`; a trap fails the whole ORM. */
  #failure(e) {
    if (isTrap(e)) {
      this._fail(lastFatal ? new Error(lastFatal, { cause: e }) : e);
      return this.#fatal;
    }
    return named(e);
  }

  /**
   * The engine trapped: reject every call in progress and from now on, stop the loop, let go of
   * the outbox lock and the channel, and release storage. A new createSyncOrm works.
   */
  _fail(cause, sibling = false) {
    if (this.#fatal) return;
    this.#fatal = new EngineFailedError(
      sibling
        ? `another database on the same storage in this tab failed (${messageOf(cause)}), and this one's writes queue behind it: create a new one with createSyncOrm()`
        : `the micro-sync engine failed (${messageOf(cause)}); this database cannot be used any more: create a new one with createSyncOrm()`,
      { cause },
    );
    liveOrms.delete(this);
    if (!sibling) for (const orm of [...liveOrms]) if (orm._storageKey === this._storageKey) orm._fail(cause, true);
    for (const reject of this.#inflight) reject(this.#fatal);
    this.#inflight.clear();
    for (const [, , reject] of this.#startup.splice(0)) reject(this.#fatal);
    this.#loop?.stop();
    this.#closing.abort();
    clearTimeout(this.#lease?.timer);
    this.#lease?.release();
    this.#lease = null;
    clearTimeout(this.#announceTimer);
    this.#channel?.close();
    this.#channel = null;
    try {
      this.#engine?.abandon();
    } catch {
      // The engine object may still be marked in use by the interrupted call: storage is let go
      // when the page ends instead.
    }
    // Later ORMs on this storage must not queue behind the interrupted work.
    try {
      if (this.#storageName) resetIndexedDbQueue(this.#storageName);
      else this.#storage.store.resetQueue();
    } catch {
      // Nothing queued.
    }
    for (const [name, set] of this.#subscribers) {
      const snapshot = this._status(name);
      for (const fn of [...set]) this.#callListener(fn, snapshot);
    }
  }

  // Runs a model's mutation hook for one outbox entry; never throws into the engine.
  async #push(modelName, entryJson) {
    const model = this.#models.get(modelName);
    const e = JSON.parse(entryJson);
    this.#pushing++;
    try {
      await callHook(model, "mutation", { action: e.action, query: e.query, mutationId: e.mutationId, model: modelName });
      return '{"done":true}';
    } catch (err) {
      return JSON.stringify(isPermanent(err) ? { reject: messageOf(err) } : { retry: messageOf(err) });
    } finally {
      this.#pushing--;
    }
  }

  // Runs a model's query hook; rows JSON cannot carry faithfully are skipped with their issues.
  async #pull(modelName, queryJson) {
    const rows = await callHook(this.#models.get(modelName), "query", queryJson ? JSON.parse(queryJson) : {});
    if (!Array.isArray(rows)) throw new TypeError(`sync.query of "${modelName}" must resolve to an array of rows`);
    const issues = [];
    const checked = rows.map((row, i) => {
      try {
        checkJson(row, [String(i)], (path, message) => {
          throw { path: [...path], message };
        });
        return row;
      } catch (issue) {
        issues.push(issue);
        return null;
      }
    });
    return JSON.stringify({ rows: checked, issues });
  }

  // ------------------------------------------------------------ outbox draining
  /**
   * Drains the outbox if online. Only one tab drains at a time (Web Locks); within a tab, a drain
   * requested while one runs makes the running one go round once more instead of starting another.
   * While a push is in flight the caller is not made to wait for it: it may be that push's own hook
   * calling (waiting would deadlock), and the running drain carries on after it anyway.
   */
  async _drain(force = false) {
    await this.#ready;
    if (this.#draining) {
      this.#drainAgain = true;
      this.#forceAgain ||= force;
      return this.#pushing > 0 ? null : this.#draining;
    }
    this.#draining = (async () => {
      let report;
      do {
        const f = force || this.#forceAgain;
        force = false;
        this.#drainAgain = false;
        this.#forceAgain = false;
        report = await this.#drainOnce(f);
      } while (this.#drainAgain && !this.#closed && !this.#fatal);
      return report;
    })();
    try {
      return await this.#draining;
    } finally {
      this.#draining = null;
    }
  }

  async #drainOnce(force) {
    if (this.#closed || this.#fatal || !this.#detector.isOnline()) return null;
    let report;
    try {
      const lease = await this.#holdLease();
      if (!lease) return null; // closed while waiting
      // Another tab (or ORM) may have drained since this one looked: catch up with storage first,
      // so no entry it already pushed is pushed again.
      if (lease === "taken") await this.#catchUpNow();
      const text = await this._invoke((engine) => engine.drain(force));
      report = text ? JSON.parse(text) : null;
    } finally {
      this.#renewLease();
    }
    if (report?.rejected) for (const m of this.#syncedModels()) this._changed(m);
    return report;
  }

  #syncedModels() {
    return [...this.#models.values()].filter((m) => typeof m.sync?.mutation === "function").map((m) => m.name);
  }

  /**
   * The outbox lock (Web Locks, one drainer across tabs) is held as a lease: taken by a drain,
   * kept while drains follow each other, and let go LEASE_IDLE_MS after the last one. Pushes the
   * backend acknowledged are deleted from storage with the next write's transaction while the
   * lease runs, and at the latest when it ends, so a burst of writes costs one transaction each;
   * the lock is released only after that, so no other tab can read an acknowledged entry back.
   * Resolves with "taken" (the lock was just taken), "held" (this tab held it already), or null
   * (closed while waiting).
   */
  async #holdLease() {
    await this.#leaseEnding;
    if (this.#lease) return "held";
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    if (!locks || !this.#storageName) {
      this.#lease = newLease(() => {});
      return "taken";
    }
    return new Promise((granted, failed) => {
      locks
        .request(`micro-sync:${this.#storageName}:outbox`, { signal: this.#closing.signal }, () => {
          if (this.#closed || this.#fatal) return granted(null);
          return new Promise((release) => {
            this.#lease = newLease(release);
            granted("taken");
          });
        })
        .catch((e) => (this.#closed || this.#fatal ? granted(null) : failed(e)));
    });
  }

  #renewLease() {
    const lease = this.#lease;
    if (!lease) return;
    clearTimeout(lease.timer);
    lease.timer = setTimeout(() => this.#endLease(lease), LEASE_IDLE_MS);
  }

  async #endLease(lease) {
    if (this.#lease !== lease) return;
    if (this.#draining) return this.#renewLease(); // the drain renews it when it ends
    this.#leaseEnding = (async () => {
      try {
        if (!this.#closed && !this.#fatal) await this._invoke((engine) => engine.flush());
      } catch {
        // Storage failed: the acknowledged entries stay in it and are only pushed again.
      }
      this.#lease = null;
      lease.release();
    })();
    await this.#leaseEnding;
    this.#leaseEnding = null;
  }

  /** Pushes every pending write now (ignoring backoff); resolves when each has been tried. */
  async retryPendingSync() {
    await this._drain(true);
  }

  /** Starts the background loop (see `createSyncOrm({ engine })`). */
  startEngine() {
    this.#loop ??= new SyncEngine(this, { intervalMs: 30_000, networkDetector: this.#detector });
    this.#loop.start();
  }

  /** Stops the background loop; writes stay queued until it starts again. */
  stopEngine() {
    this.#loop?.stop();
  }

  _setRunning(running) {
    this.#ready.then(() => !this.#closed && !this.#fatal && this.#sync(() => this.#engine.setRunning(running))).catch(() => {});
  }

  _setOnline(online) {
    this.#ready.then(() => !this.#closed && !this.#fatal && this.#sync(() => this.#engine.setOnline(online))).catch(() => {});
  }

  /** Pending outbox entries, oldest first: `{ mutationId, model, action, key, attempts, lastError, ... }`. */
  async pending() {
    await this.#ready;
    return JSON.parse(this.#sync(() => this.#engine.pending())).map((e) => {
      const keys = e.before.map((b) => b.key);
      return {
        mutationId: e.mutationId,
        model: e.model,
        action: e.action,
        key: keys.length === 1 ? keys[0] : keys,
        query: e.query,
        createdAt: e.createdAt,
        attempts: e.attempts,
        lastError: e.lastError,
        nextAttemptAt: e.nextAttemptAt,
      };
    });
  }

  /**
   * Stored records that could not be decoded (written by another version, or corrupted): they are
   * left in storage, skipped, and listed here as UnreadableDataError objects with `store` and `key`.
   */
  async unreadable() {
    await this.#ready;
    return JSON.parse(this.#sync(() => this.#engine.unreadable())).map(
      ({ store, key, message }) => new UnreadableDataError(`a stored "${store}" record (key ${JSON.stringify(key)}) cannot be read and was set aside: ${message}`, { store, key }),
    );
  }

  /** Drops a pending write and rolls its local change back (refused while it is being pushed). */
  async discardPending(mutationId) {
    await this.#ready;
    const model = JSON.parse(this.#sync(() => this.#engine.pending())).find((e) => e.mutationId === mutationId)?.model;
    await this._invoke((engine) => engine.discardPending(String(mutationId)));
    if (model) this._changed(model);
  }

  /** Clears a pending write's backoff and pushes now. */
  async retryPending(mutationId) {
    await this._invoke((engine) => engine.retryPending(String(mutationId)));
    await this._drain(false);
  }

  // ------------------------------------------------------------ status snapshots
  _status(model) {
    this.model(model);
    if (this.#fatal) {
      return Object.freeze({ online: this.#detector.isOnline(), engineRunning: false, syncing: false, pendingCount: 0, lastError: this.#fatal.message, lastSyncedAt: null });
    }
    let cached = this.#statusCache.get(model);
    if ((!cached || cached.dirty) && this.#engine && !this.#closed) {
      try {
        cached = this.#snapshot(model);
      } catch {
        // Not open yet: the default snapshot below.
      }
    }
    return (
      cached?.snapshot ??
      Object.freeze({ online: this.#detector.isOnline(), engineRunning: false, syncing: false, pendingCount: 0, lastError: null, lastSyncedAt: null })
    );
  }

  /** The model's status from the engine; the previous snapshot object while it is unchanged. */
  #snapshot(model) {
    const text = this.#sync(() => this.#engine.status(model));
    const cached = this.#statusCache.get(model);
    if (cached?.json === text) {
      cached.dirty = false;
      return cached;
    }
    const fresh = { json: text, snapshot: Object.freeze(JSON.parse(text)), dirty: false };
    this.#statusCache.set(model, fresh);
    return fresh;
  }

  _subscribe(model, listener) {
    this.model(model);
    let set = this.#subscribers.get(model);
    if (!set) this.#subscribers.set(model, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  #callListener(fn, arg) {
    try {
      fn(arg);
    } catch (e) {
      queueMicrotask(() => {
        throw e;
      });
    }
  }

  // The engine signals every change; snapshots are rebuilt (and other tabs told) once it completed.
  #queueStatus() {
    if (this.#statusQueued) return;
    this.#statusQueued = true;
    queueMicrotask(() => {
      this.#statusQueued = false;
      if (!this.#engine || this.#closed || this.#fatal) return;
      try {
        this.#announce();
        for (const name of this.#models.keys()) {
          const listeners = this.#subscribers.get(name);
          if (!listeners?.size) {
            // Nobody listens: recomputed when next asked for.
            const cached = this.#statusCache.get(name);
            if (cached) cached.dirty = true;
            continue;
          }
          const before = this.#statusCache.get(name)?.snapshot;
          const { snapshot } = this.#snapshot(name);
          if (snapshot !== before) for (const fn of [...listeners]) this.#callListener(fn, snapshot);
        }
      } catch {
        // The engine failed: _fail told the subscribers.
      }
    });
  }

  // ------------------------------------------------------------ other tabs
  // Storage keeps a numbered change log (see src/storage/mod.rs). After this ORM commits, it
  // announces the new number `{ seq }` on a BroadcastChannel (at most every ANNOUNCE_MS); other
  // tabs then read the log since their own number and refresh just the rows that changed. The
  // message is only a hint: what changed is read from storage, so a lost or forged message cannot
  // make a tab skip or invent a change.
  #announce() {
    if (!this.#channel || this.#announceTimer !== null) return;
    if (this.#sync(() => this.#engine.seq()) <= this.#announced) return;
    const wait = Math.max(0, this.#lastAnnounce + ANNOUNCE_MS - performance.now());
    this.#announceTimer = setTimeout(() => {
      this.#announceTimer = null;
      if (!this.#channel || this.#fatal) return;
      this.#lastAnnounce = performance.now();
      this.#announced = this.#engine.seq();
      try {
        this.#channel.postMessage({ seq: this.#announced });
      } catch {
        // A closed channel: nothing to tell.
      }
    }, wait);
  }

  #onMessage(data) {
    // Anything else on the channel (another version, another library, a forged message) is ignored.
    if (data === null || typeof data !== "object" || !Number.isSafeInteger(data.seq) || data.seq < 0) return;
    if (this.#closed || this.#fatal || !this.#engine) return;
    if (data.seq <= this.#sync(() => this.#engine.seq())) return;
    this.#catchUpNow()
      .then(() => {
        // Another tab wrote or drained: if this tab runs the loop, look at the queue now.
        if (this.#loop?.running) this._drain(false).catch(() => {});
      })
      .catch(() => {});
  }

  /** Catches up with storage (one catch-up at a time; a request meanwhile runs one more). */
  #catchUpNow() {
    if (this.#catchingUp) {
      this.#catchUpAgain = true;
      return this.#catchingUp;
    }
    this.#catchingUp = (async () => {
      do {
        this.#catchUpAgain = false;
        const changed = JSON.parse(await this._invoke((engine) => engine.catchUp()));
        for (const m of changed) this._changed(m);
      } while (this.#catchUpAgain && !this.#closed && !this.#fatal);
    })().finally(() => {
      this.#catchingUp = null;
    });
    return this.#catchingUp;
  }

  /** Resolves once storage is open (every method waits for it anyway). */
  get ready() {
    return this.#ready;
  }

  // Relations may be assigned after createSyncOrm: resend any model whose object changed.
  #sendRelations() {
    for (const m of this.#models.values()) {
      if (this.#relationsSent.get(m.name) !== m.relations) {
        this.#engine.setRelations(m.name, JSON.stringify(describeRelations(m)));
        this.#relationsSent.set(m.name, m.relations);
      }
    }
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

  /** Calls `fn(modelName)` after local data changed (writes, pulls, rollbacks, other tabs). */
  onChange(fn) {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Tells this ORM's change listeners that `model`'s data changed. */
  _changed(model) {
    for (const fn of [...this.#listeners]) this.#callListener(fn, model);
  }

  /**
   * Closes the database. Calls made from now on reject with DatabaseClosedError; calls made
   * before still complete. The returned promise resolves once storage is released (acknowledged
   * pushes committed, outbox lock let go).
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#loop?.stop();
    this.#closing.abort();
    this.#listeners.clear();
    this.#subscribers.clear();
    const lease = this.#lease;
    clearTimeout(lease?.timer);
    try {
      await this._invoke((engine) => engine.close());
    } catch {
      // Closing never fails the caller: the storage connection goes either way.
    }
    liveOrms.delete(this);
    if (lease) {
      this.#lease = null;
      lease.release();
    }
    clearTimeout(this.#announceTimer);
    this.#announceTimer = null;
    if (this.#engine && !this.#fatal && this.#channel && this.#engine.seq() > this.#announced) {
      this.#channel.postMessage({ seq: this.#engine.seq() });
    }
    this.#channel?.close();
  }
}

/**
 * The background loop: drains the outbox every `intervalMs` while online and at once when the
 * network comes back. Owned by a SyncOrm; `createSyncEngine` builds one for advanced set-ups.
 */
class SyncEngine {
  #orm;
  #intervalMs;
  #detector;
  #timer = null;
  #unsubscribe = null;

  constructor(orm, { intervalMs, networkDetector }) {
    this.#orm = orm;
    this.#intervalMs = intervalMs;
    this.#detector = networkDetector;
  }

  get running() {
    return this.#timer !== null;
  }

  start() {
    if (this.running) return;
    const tick = () => this.#orm._drain(false).catch(() => {});
    this.#timer = setInterval(tick, this.#intervalMs);
    this.#unsubscribe = this.#detector.subscribe((online) => {
      const now = typeof online === "boolean" ? online : this.#detector.isOnline();
      this.#orm._setOnline(now);
      if (now) tick();
    });
    this.#orm._setRunning(true);
    this.#orm._setOnline(this.#detector.isOnline());
    tick();
  }

  stop() {
    if (!this.running) return;
    clearInterval(this.#timer);
    this.#timer = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    this.#orm._setRunning(false);
  }
}

/**
 * A background sync loop for `db` (one created without `engine`). Returns `{ start, stop,
 * running }`; `db.startEngine()` / `db.stopEngine()` cover the common case.
 */
export function createSyncEngine(opts) {
  const { db, intervalMs = 30_000, networkDetector } = options(opts, "createSyncEngine");
  if (!(db instanceof SyncOrm)) throw new QueryError("createSyncEngine needs { db } from createSyncOrm()");
  const loop = new SyncEngine(db, { intervalMs: checkInterval(intervalMs, "intervalMs"), networkDetector: checkDetector(networkDetector ?? createNetworkDetector()) });
  return { start: () => loop.start(), stop: () => loop.stop(), get running() { return loop.running; } };
}

/** Creates the ORM. Storage opens in the background; every method waits for it. */
export function createSyncOrm(opts) {
  return new SyncOrm(opts);
}
