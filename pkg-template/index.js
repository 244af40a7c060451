// micro-sync: the public JavaScript API. The engine (queries, relations, write planning, storage)
// is Rust compiled to WebAssembly; this file defines models, validates rows with the app's
// schema, and turns engine errors into named Error classes.
import initWasm, { initSync, Engine, MemoryStore } from "./micro_sync.js";

// ---------------------------------------------------------------- WebAssembly start-up
// Initialized on first use, so importing never blocks and needs no init() from the app.
let wasmReady;
let wasmExports;
/** A write touching more rows than this makes other tabs re-read the model whole. */
const MAX_ANNOUNCED_KEYS = 500;
/** Changes are announced to other tabs at most this often (ms); the first one goes out at once. */
const ANNOUNCE_MS = 8;
/** How long a tab keeps the outbox lock after its last drain (see SyncOrm#holdLease). */
const LEASE_IDLE_MS = 25;
const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

function ensureWasm() {
  if (!wasmReady) {
    const url = new URL("./micro_sync_bg.wasm", import.meta.url);
    wasmReady = isNode
      ? (async () => {
          // Kept out of bundlers' sight: browsers never take this path.
          const fsName = "node:fs/promises";
          const fs = await import(/* @vite-ignore */ /* webpackIgnore: true */ fsName);
          wasmExports = initSync({ module: await fs.readFile(url) });
        })()
      : initWasm({ module_or_path: url }).then((exports) => {
          wasmExports = exports;
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
export const SyncError = errorClass("SyncError");
const ERRORS = { ValidationError, QueryError, UnknownModelError, ConstraintError, StorageError, QuotaExceededError, DatabaseClosedError, SyncError };

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

/** How long a sync hook call may stay pending before it counts as failed (`sync.timeoutMs`). */
const HOOK_TIMEOUT_MS = 30_000;
/** setTimeout treats longer delays as 0. */
const MAX_TIMER_MS = 2 ** 31 - 1;

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
 * The outbox lock while a tab holds it: `release` lets it go, `timer` ends it when idle, `changed`
 * records that something was pushed or rejected under it, `rolledBack` that a rejection rolled
 * rows back.
 */
const newLease = (release) => ({ release, timer: null, changed: false, rolledBack: false });

/** An error thrown by a mutation hook is a rejection when it says it will never succeed. */
const isPermanent = (e) => e != null && (e.retryable === false || e.permanent === true);
const messageOf = (e) => (e instanceof Error ? e.message || e.name : typeof e === "string" ? e : JSON.stringify(e) ?? String(e));

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
    const engine = await this.#orm._engine();
    try {
      return await engine[method](this.name, ...args);
    } catch (e) {
      rethrow(e);
    }
  }

  #write(kind, ...args) {
    return this.#call(kind, ...args).then((text) => {
      const rows = JSON.parse(text);
      if (rows.length) {
        // Other tabs re-read just these rows, when the returned rows carry their keys.
        const pk = this.model.primaryKey;
        const keys = rows.length <= MAX_ANNOUNCED_KEYS && rows.every((r) => r[pk] != null) ? rows.map((r) => r[pk]) : null;
        this.#orm._changed(this.name, true, keys);
        // Optimistic write committed: try to push it now (a no-op offline or when nothing syncs).
        if (typeof this.model.sync?.mutation === "function") this.#orm._drain(false).catch(() => {});
      }
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

  /**
   * Pulls `model.sync.query(query)` and merges it into local storage: remote rows win unless the
   * row has pending local writes, which stay applied on top. For an unpaginated query, local rows
   * it matches that the backend no longer returns (and that have no pending writes) are deleted.
   * Resolves with the local rows for `query` afterwards.
   */
  async sync(query = {}) {
    assertDefined(query, "sync");
    if (typeof this.model.sync?.query !== "function") {
      throw new QueryError(`model "${this.name}" has no sync.query hook to pull with`);
    }
    const rows = JSON.parse(await this.#call("pull", json(query)));
    this.#orm._changed(this.name, true);
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
  #engine;
  #ready;
  #models = new Map();
  #relationsSent = new Map();
  #repos = new Map();
  #listeners = new Set();
  #closed = false;
  #storageName = null;
  #detector;
  #loop = null;
  #statusCache = new Map(); // model -> { json, snapshot }
  #subscribers = new Map(); // model -> Set(listener)
  #statusQueued = false;
  #channel = null;
  #outgoing = null; // announcement being gathered: { models: Map(model -> Set of keys | null) }
  #outgoingTimer = null;
  #lastAnnounced = -Infinity;
  #draining = null;
  #drainAgain = false;
  #lease = null; // see #newLease: set while this tab holds the outbox lock
  #leaseEnding = null;
  #closing = new AbortController();
  #id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

  constructor({ storage, models, engine }) {
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
    this.#detector = checkDetector(engine?.networkDetector ?? createNetworkDetector());
    if (engine !== undefined) {
      const intervalMs = engine.intervalMs ?? 30_000;
      if (!(Number.isFinite(intervalMs) && intervalMs > 0)) throw new QueryError("engine.intervalMs must be a positive number of milliseconds");
      this.#loop = new SyncEngine(this, { intervalMs, networkDetector: this.#detector });
    }
    if (storage.kind === "indexeddb") this.#storageName = storage.name;
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
    const hooks = {
      validate: makeValidator(this.#models),
      push: (model, entryJson) => this.#push(model, entryJson),
      pull: (model, queryJson) => this.#pull(model, queryJson),
      changed: () => this.#queueStatus(),
    };
    try {
      this.#engine =
        storage.kind === "memory" ? Engine.withMemory(descs, storage.store, hooks) : Engine.withIndexedDb(descs, storage.name, hooks);
      await this.#engine.open();
      this.#engine.setOnline(this.#detector.isOnline());
    } catch (e) {
      rethrow(e);
    }
    for (const m of list) this.#relationsSent.set(m.name, m.relations);
    if (this.#storageName && typeof BroadcastChannel === "function") {
      this.#channel = new BroadcastChannel(`micro-sync:${this.#storageName}`);
      this.#channel.onmessage = (e) => this.#onRemoteChange(e.data);
    }
    this.#loop?.start();
  }

  // Runs a model's mutation hook for one outbox entry; never throws into the engine.
  async #push(modelName, entryJson) {
    const model = this.#models.get(modelName);
    const e = JSON.parse(entryJson);
    try {
      await callHook(model, "mutation", { action: e.action, query: e.query, mutationId: e.mutationId, model: modelName });
      return '{"done":true}';
    } catch (err) {
      return JSON.stringify(isPermanent(err) ? { reject: messageOf(err) } : { retry: messageOf(err) });
    }
  }

  async #pull(modelName, queryJson) {
    const rows = await callHook(this.#models.get(modelName), "query", queryJson ? JSON.parse(queryJson) : {});
    if (!Array.isArray(rows)) throw new TypeError(`sync.query of "${modelName}" must resolve to an array of rows`);
    return JSON.stringify(rows);
  }

  // ------------------------------------------------------------ outbox draining
  /**
   * Drains the outbox if online. Only one tab drains at a time (Web Locks); within a tab, a drain
   * requested while one runs makes the running one go round once more instead of starting another.
   */
  async _drain(force = false) {
    await this.#ready;
    if (this.#draining) {
      if (!force) {
        this.#drainAgain = true;
        return this.#draining;
      }
      await this.#draining.catch(() => {});
    }
    this.#draining = (async () => {
      let report;
      do {
        this.#drainAgain = false;
        report = await this.#drainOnce(force);
      } while (this.#drainAgain && !this.#closed);
      return report;
    })();
    try {
      return await this.#draining;
    } finally {
      this.#draining = null;
    }
  }

  #lastDrainerWasOther() {
    if (!this.#storageName) return true;
    const key = `micro-sync:${this.#storageName}:last-drainer`;
    try {
      const other = localStorage.getItem(key) !== this.#id;
      if (other) localStorage.setItem(key, this.#id);
      return other;
    } catch {
      return true; // no localStorage (a worker, privacy mode): always re-read
    }
  }

  async #drainOnce(force) {
    if (this.#closed || !this.#detector.isOnline()) return null;
    let report;
    try {
      const lease = await this.#holdLease();
      if (!lease) return null; // closed while waiting
      // If another tab (or ORM) drained last, it may have pushed entries this one still holds in
      // memory: re-read the outbox first. Read and written inside the lock, so it is exact.
      if (lease === "taken" && this.#lastDrainerWasOther()) await this.#engine.reload('{"models":[]}');
      const text = await this.#engine.drain(force);
      report = text ? JSON.parse(text) : null;
    } catch (e) {
      rethrow(e);
    } finally {
      this.#renewLease();
    }
    if (report && report.pushed + report.rejected > 0 && this.#lease) this.#lease.changed = true;
    if (report?.rejected && this.#lease) this.#lease.rolledBack = true;
    if (report?.rejected) for (const m of this.#syncedModels()) this._changed(m, false);
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
   * A drain in another tab waits for the lock (its own later drain requests fold into it), then
   * re-reads the outbox. Resolves with "taken" (the lock was just taken), "held" (this tab held
   * it already), or null (closed while waiting).
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
          if (this.#closed) return granted(null);
          return new Promise((release) => {
            this.#lease = newLease(release);
            granted("taken");
          });
        })
        .catch((e) => (this.#closed ? granted(null) : failed(e)));
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
      let flushed = false;
      try {
        flushed = !this.#closed && (await this.#engine.flush());
      } catch {
        // Storage failed: the acknowledged entries stay in it and are only pushed again.
      }
      this.#lease = null;
      lease.release();
      // Other tabs re-read the outbox now that it is exact in storage.
      if (flushed || lease.changed) this.#announceDrained(lease);
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
    this.#ready.then(() => !this.#closed && this.#engine.setRunning(running)).catch(() => {});
  }

  _setOnline(online) {
    this.#ready.then(() => !this.#closed && this.#engine.setOnline(online)).catch(() => {});
  }

  /** Pending outbox entries, oldest first: `{ mutationId, model, action, key, attempts, lastError, ... }`. */
  async pending() {
    await this.#ready;
    return JSON.parse(this.#engine.pending()).map((e) => {
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

  /** Drops a pending write and rolls its local change back. */
  async discardPending(mutationId) {
    const engine = await this._engine();
    const model = JSON.parse(engine.pending()).find((e) => e.mutationId === mutationId)?.model;
    try {
      await engine.discardPending(String(mutationId));
    } catch (e) {
      rethrow(e);
    }
    if (model) {
      this._changed(model, true);
    }
  }

  /** Clears a pending write's backoff and pushes now. */
  async retryPending(mutationId) {
    const engine = await this._engine();
    try {
      await engine.retryPending(String(mutationId));
    } catch (e) {
      rethrow(e);
    }
    await this._drain(false);
  }

  // ------------------------------------------------------------ status snapshots
  _status(model) {
    this.model(model);
    let cached = this.#statusCache.get(model);
    if (!cached && this.#engine && !this.#closed) {
      try {
        const text = this.#engine.status(model);
        cached = { json: text, snapshot: Object.freeze(JSON.parse(text)) };
        this.#statusCache.set(model, cached);
      } catch {
        // Not open yet: the default snapshot below.
      }
    }
    return (
      cached?.snapshot ??
      Object.freeze({ online: this.#detector.isOnline(), engineRunning: false, syncing: false, pendingCount: 0, lastError: null, lastSyncedAt: null })
    );
  }

  _subscribe(model, listener) {
    this.model(model);
    let set = this.#subscribers.get(model);
    if (!set) this.#subscribers.set(model, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  // Coalesces the engine's change signals; snapshots are rebuilt after the change completed.
  #queueStatus() {
    if (this.#statusQueued) return;
    this.#statusQueued = true;
    queueMicrotask(() => {
      this.#statusQueued = false;
      if (!this.#engine || this.#closed) return;
      for (const name of this.#models.keys()) {
        let text;
        try {
          text = this.#engine.status(name);
        } catch {
          return;
        }
        const cached = this.#statusCache.get(name);
        if (cached?.json === text) continue;
        const snapshot = Object.freeze(JSON.parse(text));
        this.#statusCache.set(name, { json: text, snapshot });
        for (const fn of [...(this.#subscribers.get(name) ?? [])]) {
          try {
            fn(snapshot);
          } catch (e) {
            queueMicrotask(() => {
              throw e;
            });
          }
        }
      }
    });
  }

  // ------------------------------------------------------------ other tabs
  // Announcements: `{ models, keys? }`. Receivers re-read the outbox, re-read the rows in
  // `keys[model]`, and forget any listed model without keys (read again when next needed).
  // Changes are gathered and sent at most once per ANNOUNCE_MS, so a burst of writes costs other
  // tabs (and this one) one message, not one per write.
  #broadcast(models, keys = null) {
    if (!this.#channel) return;
    const out = (this.#outgoing ??= { models: new Map() });
    for (const m of models) {
      const have = out.models.get(m);
      const add = keys?.[m];
      if (have === null || !add || (have && have.size + add.length > MAX_ANNOUNCED_KEYS)) {
        out.models.set(m, null); // re-read the model whole
      } else {
        const set = have ?? new Set();
        for (const k of add) set.add(k);
        out.models.set(m, set);
      }
    }
    if (this.#outgoingTimer === null) {
      const wait = Math.max(0, this.#lastAnnounced + ANNOUNCE_MS - performance.now());
      this.#outgoingTimer = setTimeout(() => this.#sendAnnouncement(), wait);
    }
  }

  #sendAnnouncement() {
    clearTimeout(this.#outgoingTimer);
    this.#outgoingTimer = null;
    const out = this.#outgoing;
    this.#outgoing = null;
    if (!out) return;
    this.#lastAnnounced = performance.now();
    const models = [...out.models.keys()];
    const keyed = [...out.models].filter(([, set]) => set);
    const message = keyed.length ? { models, keys: Object.fromEntries(keyed.map(([m, set]) => [m, [...set]])) } : { models };
    try {
      this.#channel?.postMessage(message);
    } catch {
      // A closed channel: nothing to tell.
    }
  }

  // After a drain: the outbox changed; rows changed only if a rejection rolled some back.
  #announceDrained(lease) {
    this.#broadcast(lease.rolledBack ? this.#syncedModels() : []);
  }

  async #onRemoteChange(data) {
    const models = (data?.models ?? []).filter((m) => this.#models.has(m));
    const keys = data?.keys && typeof data.keys === "object" ? data.keys : undefined;
    if (this.#closed || !this.#engine) return;
    try {
      await this.#engine.reload(JSON.stringify({ models, keys }));
    } catch {
      return;
    }
    for (const m of models) this._changed(m, false);
    // Another tab wrote or drained: if this tab runs the loop, look at the queue now.
    if (this.#loop?.running) this._drain(false).catch(() => {});
  }

  /** Resolves once storage is open (every method waits for it anyway). */
  get ready() {
    return this.#ready;
  }

  async _engine() {
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

  /**
   * After local data of `model` changed; `announce` tells other tabs too, with the primary keys
   * of the changed rows when known (`keys`), so they re-read only those.
   */
  _changed(model, announce = true, keys = null) {
    if (announce) this.#broadcast([model], keys && { [model]: keys });
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

  /**
   * Closes the database. Further calls reject with DatabaseClosedError; the returned promise
   * resolves once storage is released (acknowledged pushes committed, outbox lock let go).
   */
  async close() {
    if (this.#closed) return;
    this.#loop?.stop();
    this.#closed = true;
    this.#closing.abort();
    this.#listeners.clear();
    this.#subscribers.clear();
    const lease = this.#lease;
    clearTimeout(lease?.timer);
    try {
      await this.#engine?.close();
    } catch {
      // Closing never fails the caller: the storage connection goes either way.
    }
    if (lease) {
      this.#lease = null;
      lease.release();
      if (lease.changed) this.#announceDrained(lease);
    }
    this.#sendAnnouncement();
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
export function createSyncEngine({ db, intervalMs = 30_000, networkDetector } = {}) {
  if (!(db instanceof SyncOrm)) throw new QueryError("createSyncEngine needs { db } from createSyncOrm()");
  const loop = new SyncEngine(db, { intervalMs, networkDetector: checkDetector(networkDetector ?? createNetworkDetector()) });
  return { start: () => loop.start(), stop: () => loop.stop(), get running() { return loop.running; } };
}

/** Creates the ORM. Storage opens in the background; every method waits for it. */
export function createSyncOrm(options = {}) {
  return new SyncOrm(options);
}
