// micro-sync: the public JavaScript API, a facade. Everything that runs by itself is Rust compiled
// to WebAssembly: queries, relations, write planning and the write queue, storage, and the sync
// runtime (the outbox loop and its timers, online/offline events, the lock between tabs, the
// channel to them, hook calls with their time limits, status snapshots and their subscribers).
// This file defines models, validates rows with the app's schema, checks input before it crosses
// into WebAssembly, and turns engine errors into named Error classes.
import initWasm, { initSync, Database, MemoryStore, setFatalHandler, kick, resetIndexedDbQueue, watchNetwork } from "./micro_sync.js";

// ---------------------------------------------------------------- limits (see README "Limits")
/** Nesting of arrays and objects in a row or a `where` (the engine enforces the same number). */
const MAX_DEPTH = 64;
/** Characters of JSON one call may send into the engine (32 MiB of text). */
const MAX_PAYLOAD_CHARS = 32 * 1024 * 1024;
/** Browser timers treat longer delays as 0. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const isNode = typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";

// ---------------------------------------------------------------- WebAssembly start-up
// Initialized on first use, so importing never blocks and needs no init() from the app.
let wasmReady;
let wasmExports;

/**
 * What the browser instantiates: the .wasm file beside this module, which bundlers (Vite, webpack,
 * Rollup) emit as an asset from this `new URL(..., import.meta.url)`. A dev server's copy of this
 * module would not find it there (Vite pre-bundles dependencies into another folder), so the
 * package's entry under the bundlers' "development" condition, index.dev.js, is this file with
 * the next line replaced by one that takes the bytes from a module holding them (see `make build`).
 */
const browserWasm = () => new URL("./micro_sync_bg.wasm", import.meta.url); // @wasm-source

function ensureWasm() {
  if (!wasmReady) {
    wasmReady = (
      isNode
        ? (async () => {
            // Kept out of bundlers' sight: browsers never take this path.
            const fsName = "node:fs/promises";
            const fs = await import(/* @vite-ignore */ /* webpackIgnore: true */ fsName);
            return initSync({ module: await fs.readFile(new URL("./micro_sync_bg.wasm", import.meta.url)) });
          })()
        : (async () => initWasm({ module_or_path: await browserWasm() }))()
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
export const RejectedWriteError = errorClass("RejectedWriteError");
export const MigrationError = errorClass("MigrationError");
const ERRORS = { ValidationError, QueryError, UnknownModelError, ConstraintError, StorageError, QuotaExceededError, DatabaseClosedError, SyncError, EngineFailedError, RejectedWriteError, MigrationError };

/** An engine error as an instance of its named class (keeps name, message, details). */
function named(e) {
  const C = e && ERRORS[e.name];
  if (!C || e instanceof MicroSyncError) return e;
  const { issues, model, domName, mutationId } = e;
  const props = {};
  if (mutationId !== undefined) props.mutationId = mutationId;
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
/** Checks `sync` hooks and their settings (a model's, or the ORM's batch hook). */
function checkSync(sync, what, hooks) {
  if (sync === undefined) return;
  options(sync, `${what}: sync`);
  const timeoutMs = sync.timeoutMs;
  if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs > 0)) {
    throw new QueryError(`${what}: sync.timeoutMs must be a positive number of milliseconds (Infinity for no limit)`);
  }
  if (sync.mutation !== undefined && sync.mutations !== undefined) {
    throw new QueryError(`${what}: give sync.mutation (one write per call) or sync.mutations (batches), not both`);
  }
  for (const hook of ["mutation", "mutations", "query"]) {
    if (sync[hook] === undefined) continue;
    if (!hooks.includes(hook)) throw new QueryError(`${what}: sync.${hook} is not supported here (${hooks.map((h) => `sync.${h}`).join(", ")})`);
    if (typeof sync[hook] !== "function") throw new QueryError(`${what}: sync.${hook} must be a function`);
  }
  const batchSize = sync.batchSize;
  if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new QueryError(`${what}: sync.batchSize must be a whole number ≥ 1 (entries per sync.mutations call)`);
  }
}

/** `conflict`: "remote", "local", { lww: field } or (local, remote, base) => row. */
function checkConflict(conflict, what) {
  if (conflict === "remote" || conflict === "local" || typeof conflict === "function") return;
  const lww = conflict !== null && typeof conflict === "object" && Object.keys(conflict).length === 1 ? conflict.lww : undefined;
  if (typeof lww === "string" && lww !== "") return;
  throw new QueryError(`${what}: conflict must be "remote", "local", { lww: "<field>" } or a function (local, remote, base) => row, got ${describe(conflict)}`);
}

/** The hooks the engine calls for `model`: its own, or (when it pushes nothing itself) the ORM's
 * batch hook, marked `ormWide` so entries of every such model share batches. */
function effectiveSync(model, ormSync) {
  const own = typeof model.conflict === "function" ? { ...model.sync, conflict: model.conflict } : model.sync;
  if (!ormSync || typeof own?.mutation === "function" || typeof own?.mutations === "function") return own;
  return {
    ...own,
    mutations: (entries, ctx) => ormSync.mutations(entries, ctx),
    batchSize: ormSync.batchSize,
    timeoutMs: ormSync.timeoutMs ?? own?.timeoutMs,
    ormWide: true,
  };
}
/** Defines a model. `relations` may also be assigned later: `users.relations = { ... }`. */
export function defineModel(name, opts) {
  if (typeof name !== "string" || name === "") throw new QueryError("defineModel needs a model name");
  const { primaryKey, schema, indexes = [], sync, relations = {}, coalesce = true, conflict = "remote", version = 1, migrate } = options(opts, `defineModel("${name}")`);
  if (typeof primaryKey !== "string" || primaryKey === "") {
    throw new QueryError(`defineModel("${name}") needs a primaryKey field name`);
  }
  if (!Array.isArray(indexes) || indexes.some((i) => typeof i !== "string")) {
    throw new QueryError(`defineModel("${name}"): indexes must be an array of field names`);
  }
  if (schema != null && !isSchema(schema)) {
    throw new QueryError(`defineModel("${name}"): schema must be a Standard Schema or have safeParse/parse`);
  }
  if (typeof coalesce !== "boolean") throw new QueryError(`defineModel("${name}"): coalesce must be true or false`);
  checkSync(sync, `defineModel("${name}")`, ["mutation", "mutations", "query"]);
  checkConflict(conflict, `defineModel("${name}")`);
  if (!(Number.isInteger(version) && version >= 1 && version <= 0xffffffff)) throw new QueryError(`defineModel("${name}"): version must be a whole number ≥ 1, got ${describe(version)}`);
  if (migrate !== undefined && typeof migrate !== "function") throw new QueryError(`defineModel("${name}"): migrate must be a function (row, fromVersion) => row`);
  return { name, primaryKey, schema, indexes, sync, relations, coalesce, conflict, version, migrate };
}

/** `defineModel` under a name that does not collide with Vue's `<script setup>` macro. */
export const defineSyncModel = defineModel;

/** Adds relations to a model (typed, unlike assigning `model.relations`) and returns the model. */
export function defineRelations(model, relations) {
  if (!model || typeof model.name !== "string" || typeof model.primaryKey !== "string") throw new QueryError("defineRelations needs a model from defineModel");
  for (const [name, r] of Object.entries(options(relations, `defineRelations(${model.name})`))) {
    if (!r || !["hasMany", "hasOne", "belongsTo"].includes(r.kind)) throw new QueryError(`defineRelations(${model.name}): relation "${name}" must come from hasMany, hasOne or belongsTo`);
  }
  model.relations = { ...model.relations, ...relations };
  return model;
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

function describeModel(model, sync = model.sync) {
  return {
    name: model.name,
    primaryKey: model.primaryKey,
    indexes: model.indexes,
    fields: schemaFields(model.schema),
    relations: describeRelations(model),
    hasSchema: !!model.schema,
    hasMutation: typeof sync?.mutation === "function" || typeof sync?.mutations === "function",
    coalesce: model.coalesce !== false,
    conflict: typeof model.conflict === "function" ? "custom" : (model.conflict ?? "remote"),
    version: model.version ?? 1,
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
/** Marks the detector createNetworkDetector returns: the engine then listens to the window itself. */
const BROWSER_NETWORK = Symbol("micro-sync: the browser's network");

/**
 * The browser's connectivity: `navigator.onLine` plus window `online`/`offline` events. A custom
 * detector is any `{ isOnline(): boolean, subscribe(listener): unsubscribe }`.
 */
export function createNetworkDetector() {
  return {
    [BROWSER_NETWORK]: true,
    isOnline: () => (typeof navigator !== "undefined" && typeof navigator.onLine === "boolean" ? navigator.onLine : true),
    subscribe(listener) {
      if (typeof window === "undefined") return () => {};
      let watch = null;
      let stopped = false;
      ensureWasm().then(() => {
        if (!stopped) watch = watchNetwork((online) => listener(online));
      });
      return () => {
        stopped = true;
        watch?.free();
        watch = null;
      };
    },
  };
}

/** The detector as the engine takes it: `undefined` for the browser's own events. */
function checkDetector(d) {
  if (d === undefined || d?.[BROWSER_NETWORK]) return undefined;
  if (!d || typeof d.isOnline !== "function" || typeof d.subscribe !== "function") {
    throw new QueryError("networkDetector must be { isOnline(): boolean, subscribe(listener): unsubscribe }");
  }
  return d;
}

function checkInterval(ms, what) {
  if (!(typeof ms === "number" && ms >= 1 && ms <= MAX_TIMER_MS)) {
    throw new QueryError(`${what} must be a number of milliseconds between 1 and ${MAX_TIMER_MS} (about 24.8 days), got ${String(ms)}`);
  }
  return Math.round(ms);
}

/** Pulled rows as JSON text `{ rows, issues }`: a row JSON cannot carry faithfully becomes `null`. */
function checkPulled(rows) {
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

/**
 * The engine's `migrate(model, rows, fromVersion)` while it upgrades stored data: each row through
 * the model's `migrate` (rows stay as they are without one). A throw aborts the whole upgrade.
 */
function makeMigrator(models) {
  return (modelName, rows, fromVersion) => {
    const model = models.get(modelName);
    if (!model?.migrate) return rows;
    return rows.map((row) => {
      const out = model.migrate(row, fromVersion);
      if (out === null || typeof out !== "object" || Array.isArray(out)) {
        throw new Error(`migrate returned ${describe(out)} for the row ${JSON.stringify(row[model.primaryKey])}, not a row object`);
      }
      checkJson(out, [], (path, message) => {
        throw new Error(`the migrated row ${JSON.stringify(row[model.primaryKey])}: ${path.length ? path.join(".") : "(row)"} ${message}`);
      });
      // Stored as every write stores rows: as JSON (a Date becomes its ISO string).
      return JSON.parse(JSON.stringify(out));
    });
  };
}

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
    return this.#orm._invoke((db) => db[method](this.name, ...args));
  }

  /** Resolves with the rows, carrying the write's outbox ids as a non-enumerable `mutationIds`. */
  async #write(kind, ...args) {
    const { rows, mutationIds } = JSON.parse(await this.#call(kind, ...args));
    return Object.defineProperty(rows, "mutationIds", { value: Object.freeze(mutationIds) });
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
    return JSON.parse(await this.#call("pull", q));
  }

  /**
   * A live query: calls `onRows(rows)` with the rows `select(query)` gives, at once and then each
   * time the answer changes (writes in this tab or another, pulls, rollbacks; relations at any
   * depth included), and `onError(error)` when it cannot be answered (an invalid query; without
   * `onError` the error is reported like an uncaught one). Returns the function that closes it.
   */
  live(query, onRows, onError) {
    if (typeof onRows !== "function") throw new QueryError(`live on "${this.name}" needs a function to call with the rows`);
    if (onError !== undefined && typeof onError !== "function") throw new QueryError(`live on "${this.name}": onError must be a function`);
    const fail = (e) => (onError ? onError(e) : globalThis.reportError?.(e));
    let q;
    try {
      q = queryJson(options(query, `live on "${this.name}"`), "live");
    } catch (e) {
      // One way for every error to arrive: asynchronously, through onError.
      let open = true;
      queueMicrotask(() => open && fail(e));
      return () => (open = false);
    }
    return this.#orm._live(this.name, q, (json) => onRows(JSON.parse(json)), (e) => fail(named(e)));
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

const offlineDefault = () => (typeof navigator !== "undefined" && typeof navigator.onLine === "boolean" ? navigator.onLine : true);
const statusOf = (online, lastError = null) => Object.freeze({ online, engineRunning: false, syncing: false, pendingCount: 0, lastError, lastSyncedAt: null, needsAuth: false });

/** The fields an outbox entry shows to apps (pending or rejected). */
function entryView(e) {
  const keys = e.before.map((b) => b.key);
  return { mutationId: e.mutationId, model: e.model, action: e.action, key: keys.length === 1 ? keys[0] : keys, query: e.query, createdAt: e.createdAt };
}

class SyncOrm {
  #db = null; // the engine's Database, once WebAssembly is loaded
  #startError = null; // why the engine could not be created
  #fatal = null; // the EngineFailedError once the engine trapped
  #startup = []; // calls made before the engine existed: [call, resolve, reject]
  #inflight = new Set(); // reject functions of calls in progress
  #ready;
  #models = new Map();
  #relationsSent = new Map();
  #repos = new Map();
  #subs = new Set(); // status subscriptions ({ model }) and change listeners ({ model: null })
  #closed = false;
  #storage;
  #storageName = null;
  #ormSync = null; // createSyncOrm's sync.mutations, for models without a push hook of their own

  constructor(opts) {
    const { storage = createMemoryStorage(), models, engine, sync } = options(opts, "createSyncOrm");
    checkSync(sync, "createSyncOrm", ["mutations"]);
    if (sync !== undefined && typeof sync.mutations !== "function") throw new QueryError("createSyncOrm: sync needs a mutations(entries, ctx) function");
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
    const detector = checkDetector(engine?.networkDetector);
    const intervalMs = engine === undefined ? undefined : checkInterval(engine.intervalMs ?? 30_000, "engine.intervalMs");
    this.#storage = storage;
    if (storage.kind === "indexeddb") this.#storageName = storage.name;
    this.#ormSync = sync ?? null;
    this.#ready =
      storage.kind === "indexeddb" && typeof indexedDB === "undefined"
        ? this.#startFailed(new StorageError("IndexedDB is not available here (server-side rendering or Node); use createMemoryStorage()"))
        : this.#start(storage, list, intervalMs, detector);
    this.#ready.catch(() => {});
  }

  async #startFailed(e) {
    this.#startError = e;
    for (const [, , reject] of this.#startup.splice(0)) reject(e);
    for (const sub of this.#subs) if (sub.live) sub.live.onError(e);
    throw e;
  }

  async #start(storage, list, intervalMs, detector) {
    try {
      await ensureWasm();
      const effective = new Map(list.map((m) => [m.name, effectiveSync(m, this.#ormSync)]));
      const descs = JSON.stringify(list.map((m) => describeModel(m, effective.get(m.name))));
      const syncs = Object.fromEntries(list.filter((m) => effective.get(m.name)).map((m) => [m.name, effective.get(m.name)]));
      const hooks = { validate: makeValidator(this.#models), checkPulled, syncs, migrate: makeMigrator(this.#models) };
      this.#db =
        storage.kind === "memory"
          ? Database.withMemory(descs, storage.store, hooks, intervalMs, detector)
          : Database.withIndexedDb(descs, storage.name, hooks, intervalMs, detector);
    } catch (e) {
      return this.#startFailed(named(e));
    }
    liveOrms.add(this);
    for (const m of list) this.#relationsSent.set(m.name, m.relations);
    for (const sub of this.#subs) this.#attach(sub);
    // Open first, then every call made meanwhile, in the order they were made.
    const opened = this._invoke((db) => db.open());
    for (const [call, resolve, reject] of this.#startup.splice(0)) this._invoke(call).then(resolve, reject);
    await opened;
  }

  get _engineId() {
    return this.#db?.id ?? 0;
  }

  /** ORMs with the same key share a write queue (one IndexedDB database, or one memory store). */
  get _storageKey() {
    return this.#storageName !== null ? `idb:${this.#storageName}` : this.#storage;
  }

  /**
   * Runs `call(db)` now (before the engine exists: as soon as it does, in call order) and
   * settles with its result; rejects with the named error it failed with, or with
   * EngineFailedError if the engine trapped meanwhile.
   */
  _invoke(call) {
    if (this.#fatal) return Promise.reject(this.#fatal);
    if (!this.#db) {
      if (this.#startError) return Promise.reject(this.#startError);
      return new Promise((resolve, reject) => this.#startup.push([call, resolve, reject]));
    }
    let promise;
    try {
      this.#sendRelations();
      promise = Promise.resolve(call(this.#db));
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
      return call(this.#db);
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
   * The engine trapped: reject every call in progress and from now on, and let the engine drop
   * its listeners, timers, lock and channel and release storage. A new createSyncOrm works.
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
    try {
      this.#db?.abandon();
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
    // Status subscribers hear of the failure once; the engine can no longer tell them.
    const subs = [...this.#subs].filter((s) => s.model !== null && !s.live);
    const lives = [...this.#subs].filter((s) => s.live).map((s) => s.live);
    this.#subs.clear();
    for (const live of lives) {
      try {
        live.onError(this.#fatal);
      } catch (e) {
        globalThis.reportError?.(e);
      }
    }
    for (const { model, listener } of subs) {
      try {
        listener(this._status(model));
      } catch (e) {
        globalThis.reportError?.(e);
      }
    }
  }

  /** Pushes every pending write now (ignoring backoff); resolves when each has been tried. */
  async retryPendingSync() {
    await this.#ready;
    await this._invoke((db) => db.retryPendingSync());
  }

  /** Starts the background loop (see `createSyncOrm({ engine })`). */
  startEngine() {
    this._startLoop(undefined, undefined);
  }

  /**
   * Pushes paused because a hook said the backend needs credentials (an error with
   * `needsAuth: true`; the status shows `needsAuth`) go on: call it once the user signed in.
   */
  resumeSync() {
    this._invoke((db) => db.resumeSync()).catch(() => {});
  }

  /** Stops the background loop; writes stay queued until it starts again. */
  stopEngine() {
    this._invoke((db) => db.stopEngine()).catch(() => {});
  }

  _startLoop(intervalMs, detector) {
    this._invoke((db) => db.startEngine(intervalMs, detector)).catch(() => {});
  }

  get _running() {
    return !this.#fatal && !this.#closed && !!this.#db?.engineRunning;
  }

  /** Pending outbox entries, oldest first: `{ mutationId, model, action, key, attempts, lastError, ... }`. */
  async pending() {
    await this.#ready;
    return JSON.parse(this.#sync((db) => db.pending())).map((e) => ({
      ...entryView(e),
      attempts: e.attempts,
      lastError: e.lastError,
      nextAttemptAt: e.nextAttemptAt,
    }));
  }

  /**
   * Resolves when the backend acknowledged the writes `ids` (mutation ids, or a write's result,
   * which carries them as `mutationIds`), or every write pending now when called without them;
   * rejects with a RejectedWriteError when the backend rejected one of them.
   */
  async whenSynced(ids) {
    let list = null;
    if (typeof ids === "string") list = [ids];
    else if (Array.isArray(ids?.mutationIds)) list = ids.mutationIds;
    else if (ids !== undefined) list = ids;
    if (ids !== undefined && !(Array.isArray(list) && list.every((id) => typeof id === "string"))) {
      throw new QueryError(`whenSynced needs mutation ids (strings), a write's result or nothing, got ${describe(ids)}`);
    }
    return this._invoke((db) => db.whenSynced(JSON.stringify(list)));
  }

  /**
   * Writes the backend rejected (their change was rolled back), oldest first, until
   * `acknowledgeRejected(mutationId)`: the entry, the error, and `rows` as they were just before
   * the rollback (what the write had made of them).
   */
  async rejected() {
    await this.#ready;
    return JSON.parse(this.#sync((db) => db.rejected())).map((e) => ({
      ...entryView(e),
      error: e.rejected.error,
      rejectedAt: e.rejected.rejectedAt,
      rows: e.rejected.rows,
    }));
  }

  /** Forgets a rejected write (in every tab); resolves with whether there was one. */
  async acknowledgeRejected(mutationId) {
    if (typeof mutationId !== "string") throw new QueryError(`acknowledgeRejected needs a mutation id (string), got ${describe(mutationId)}`);
    return this._invoke((db) => db.acknowledgeRejected(mutationId));
  }

  /**
   * Stored records that could not be decoded (written by another version, or corrupted): they are
   * left in storage, skipped, and listed here as UnreadableDataError objects with `store` and `key`.
   */
  async unreadable() {
    await this.#ready;
    return JSON.parse(this.#sync((db) => db.unreadable())).map(
      ({ store, key, message }) => new UnreadableDataError(`a stored "${store}" record (key ${JSON.stringify(key)}) cannot be read and was set aside: ${message}`, { store, key }),
    );
  }

  /** Drops a pending write and rolls its local change back (refused while it is being pushed). */
  async discardPending(mutationId) {
    await this._invoke((db) => db.discardPending(String(mutationId)));
  }

  /** Clears a pending write's backoff and pushes now. */
  async retryPending(mutationId) {
    await this._invoke((db) => db.retryPending(String(mutationId)));
  }

  // ------------------------------------------------------------ status and change listeners
  _status(model) {
    this.model(model);
    if (this.#fatal) return statusOf(offlineDefault(), this.#fatal.message);
    if (this.#db && !this.#closed) {
      try {
        return this.#db.status(model);
      } catch (e) {
        this.#failure(e); // a trap fails the ORM: the snapshot below says so
        if (this.#fatal) return statusOf(offlineDefault(), this.#fatal.message);
      }
    }
    return statusOf(offlineDefault());
  }

  _subscribe(model, listener, live = null) {
    if (model !== null) this.model(model);
    const sub = { model, listener, live, id: null };
    if (this.#closed || this.#fatal) return () => {};
    this.#subs.add(sub);
    this.#attach(sub);
    return () => {
      this.#subs.delete(sub);
      if (sub.id !== null && !this.#fatal) this.#db.unsubscribe(sub.id);
      sub.id = null;
    };
  }

  /** Opens a live query (see Repository#live); it opens in the engine once that exists. */
  _live(model, query, onRows, onError) {
    return this._subscribe(model, null, { query, onRows, onError });
  }

  #attach(sub) {
    if (!this.#db || this.#fatal || sub.id !== null) return;
    if (sub.live) {
      const { query, onRows, onError } = sub.live;
      sub.id = this.#sync((db) => db.live(sub.model, query, onRows, onError));
      return;
    }
    sub.id = this.#sync((db) => (sub.model === null ? db.onChange(sub.listener) : db.subscribe(sub.model, sub.listener)));
  }

  /** How many status, change and live subscriptions are open (diagnostics, leak tests). */
  get _subscriptions() {
    return this.#subs.size;
  }

  /** Resolves once storage is open (every method waits for it anyway). */
  get ready() {
    return this.#ready;
  }

  // Relations may be assigned after createSyncOrm: resend any model whose object changed.
  #sendRelations() {
    for (const m of this.#models.values()) {
      if (this.#relationsSent.get(m.name) !== m.relations) {
        this.#db.setRelations(m.name, JSON.stringify(describeRelations(m)));
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
    if (typeof fn !== "function") throw new QueryError("onChange needs a function");
    return this._subscribe(null, fn);
  }

  /**
   * Closes the database. Calls made from now on reject with DatabaseClosedError; calls made
   * before still complete. The returned promise resolves once storage is released (acknowledged
   * pushes committed, outbox lock let go, other tabs told).
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#subs.clear();
    try {
      await this._invoke((db) => db.close());
    } catch {
      // Closing never fails the caller: the storage connection goes either way.
    }
    liveOrms.delete(this);
  }
}

/**
 * A handle on `db`'s background loop, with its own interval and network detector: `{ start, stop,
 * running }`. `db.startEngine()` / `db.stopEngine()` cover the common case.
 */
export function createSyncEngine(opts) {
  const { db, intervalMs = 30_000, networkDetector } = options(opts, "createSyncEngine");
  if (!(db instanceof SyncOrm)) throw new QueryError("createSyncEngine needs { db } from createSyncOrm()");
  const ms = checkInterval(intervalMs, "intervalMs");
  const detector = checkDetector(networkDetector);
  return {
    start: () => db._startLoop(ms, detector),
    stop: () => db.stopEngine(),
    get running() {
      return db._running;
    },
  };
}

/** Creates the ORM. Storage opens in the background; every method waits for it. */
export function createSyncOrm(opts) {
  return new SyncOrm(opts);
}
