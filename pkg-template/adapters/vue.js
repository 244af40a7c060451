// Vue adapter: an app-wide ORM (plugin or provide/inject), and composables whose subscriptions end
// with the effect scope that created them (a component's setup, an effectScope()).
import { getCurrentScope, hasInjectionContext, inject, onScopeDispose, provide, ref, shallowRef, unref, watch } from "vue";
// By the package's name, so a bundler picks the same entry for the app and for this adapter.
import { createSyncOrm } from "micro-sync";

/** The injection key; `Symbol.for`, so two copies of this module (a dev server's) still agree. */
const KEY = Symbol.for("micro-sync/vue: the ORM");

const isOrm = (x) => !!x && typeof x.model === "function" && typeof x.close === "function" && typeof x.onChange === "function";
const isRepo = (x) => !!x && typeof x.live === "function" && typeof x.select === "function" && typeof x.name === "string";
const inBrowser = typeof window !== "undefined";

/** A named error, like the core's, for a missing app-wide instance. */
class MissingSyncOrmError extends Error {}
Object.defineProperty(MissingSyncOrmError.prototype, "name", { value: "MissingSyncOrmError" });

function instance(db) {
  const sync = { db, useRepo: (name) => useRepo(sync, name) };
  return sync;
}

function create(options) {
  const { engine, ...rest } = options ?? {};
  return createSyncOrm(engine === false ? rest : { ...rest, engine: engine ?? {} });
}

/** Warns once per composable call made where nothing would ever clean up after it. */
function outsideScope(what, instead) {
  console.warn(
    `[micro-sync] ${what} was called outside an effect scope (after an await in setup, or outside any component), so nothing would end its subscriptions; ${instead}. Call it synchronously in setup(), or inside effectScope().run().`,
  );
}

/**
 * `useSyncOrm(options)` creates the ORM in the current effect scope, starts its sync engine
 * (`engine: false` opts out) and closes it with the scope. `useSyncOrm()` without options returns
 * the app-wide instance installed by `app.use(syncOrmPlugin, ...)` or `provideSyncOrm(...)`.
 * Both return `{ db, useRepo }`.
 */
export function useSyncOrm(options) {
  if (options === undefined) return injected(true);
  const db = create(options);
  if (getCurrentScope()) onScopeDispose(() => db.close());
  else outsideScope("useSyncOrm(options)", "the ORM stays open until you call db.close()");
  return instance(db);
}

/** The common misspelling, kept as an alias. */
export const useSycnOrm = useSyncOrm;

function injected(required) {
  const sync = hasInjectionContext() ? inject(KEY, null) : null;
  if (!sync && required) {
    throw new MissingSyncOrmError(
      "no micro-sync ORM was provided: install one with app.use(syncOrmPlugin, { models, storage }) or provideSyncOrm(...) in a parent component, or pass options to useSyncOrm(options)",
    );
  }
  return sync;
}

/**
 * Provides an ORM to this component's descendants: `options` create one (closed with this
 * component), or pass an ORM from createSyncOrm() (left open). Returns `{ db, useRepo }`.
 */
export function provideSyncOrm(optionsOrDb) {
  const sync = isOrm(optionsOrDb) ? instance(optionsOrDb) : useSyncOrm(optionsOrDb ?? {});
  provide(KEY, sync);
  return sync;
}

/**
 * The app-wide ORM: `app.use(syncOrmPlugin, { models, storage, engine })` creates one (closed when
 * the app unmounts), `app.use(syncOrmPlugin, db)` or `{ db }` installs an existing one. Components
 * get it with `useSyncOrm()`, templates as `$sync`.
 */
export const syncOrmPlugin = {
  install(app, options) {
    const given = isOrm(options) ? options : isOrm(options?.db) ? options.db : null;
    const db = given ?? create(options);
    const sync = instance(db);
    app.provide(KEY, sync);
    app.config.globalProperties.$sync = db;
    if (!given && typeof app.onUnmount === "function") app.onUnmount(() => db.close());
  },
};

/** The ORM `useRepo`/`useQuery` work with: the one given, or the app-wide one. */
function ormOf(given) {
  if (given) return given.db ?? given;
  return injected(true).db;
}

/**
 * A repository's methods plus `status` (a ref of its sync status) and `rows`: the rows of the last
 * `select()` / `sync()` called through it, kept up to date like `useQuery` (for new code, prefer
 * `useQuery`, which also has loading and error states and reactive inputs). `useRepo(name)` uses
 * the app-wide ORM; `useRepo(sync, name)` a given one. Subscriptions end with the effect scope.
 */
export function useRepo(syncOrName, maybeName) {
  const [given, name] = typeof syncOrName === "string" ? [null, syncOrName] : [syncOrName, maybeName];
  if (!given && !inBrowser && !injected(false)) return serverRepo(name);
  const db = ormOf(given);
  const repo = db.model(name);
  const rows = shallowRef([]);
  const status = shallowRef(repo.getSyncStatus());
  const scoped = !!getCurrentScope();
  let stopRows = null;
  let generation = 0;

  // The rows follow the last query shown, through a live query (only inside a scope, which ends it).
  const show = async (load, query) => {
    const mine = ++generation;
    const result = await load(query);
    if (mine !== generation) return result;
    rows.value = result;
    if (scoped) {
      stopRows?.();
      stopRows = repo.live(query, (fresh) => mine === generation && (rows.value = fresh), (e) => globalThis.reportError?.(e));
    }
    return result;
  };

  if (scoped) {
    const stopStatus = repo.subscribeSyncStatus((s) => (status.value = s));
    onScopeDispose(() => {
      stopStatus();
      stopRows?.();
      stopRows = null;
    });
  } else {
    outsideScope(`useRepo("${name}")`, "its rows and status will not follow changes");
  }

  return {
    name,
    model: repo.model,
    rows,
    status,
    select: (query = {}) => show((q) => repo.select(q), query),
    sync: (query = {}) => show((q) => repo.sync(q), query),
    insert: (args) => repo.insert(args),
    update: (args) => repo.update(args),
    delete: (args) => repo.delete(args),
    count: (args) => repo.count(args),
    get: (key) => repo.get(key),
    live: (query, onRows, onError) => repo.live(query, onRows, onError),
    getSyncStatus: () => repo.getSyncStatus(),
    subscribeSyncStatus: (fn) => repo.subscribeSyncStatus(fn),
  };
}

/**
 * `useRepo(name)` during server-side rendering, where no ORM exists (IndexedDB is the browser's):
 * empty rows, and methods that say why they cannot run there.
 */
function serverRepo(name) {
  const unavailable = () => Promise.reject(new MissingSyncOrmError(`"${name}" cannot be read or written during server-side rendering: micro-sync runs in the browser (call it from onMounted or an event handler)`));
  const status = Object.freeze({ online: false, engineRunning: false, syncing: false, pendingCount: 0, lastError: null, lastSyncedAt: null });
  return {
    name,
    rows: shallowRef([]),
    status: shallowRef(status),
    select: unavailable,
    sync: unavailable,
    insert: unavailable,
    update: unavailable,
    delete: unavailable,
    count: unavailable,
    get: unavailable,
    live: () => () => {},
    getSyncStatus: () => status,
    subscribeSyncStatus: () => () => {},
  };
}

/**
 * A live query: `{ data, error, isLoading }`. `query` is a function (or ref) of the query; it is
 * watched, so refs it reads make it run again. `data` follows every change of the rows it reads
 * (relations at any depth included), in this tab, another tab or through a pull; `error` holds
 * why the query could not be answered. `target` is a model name (of the app-wide ORM, or of
 * `options.db`) or a repository. Ends with the effect scope.
 */
export function useQuery(target, query, options = {}) {
  const data = shallowRef([]);
  const error = shallowRef(null);
  const isLoading = ref(true);
  const result = { data, error, isLoading };
  // Server-side rendering: no ORM there (the Nuxt plugin is client-only); the client fills it in.
  if (!inBrowser && !isRepo(target) && !options.db && !injected(false)) return result;

  let repo;
  try {
    repo = isRepo(target) ? target : ormOf(options.db).model(target);
  } catch (e) {
    error.value = e;
    isLoading.value = false;
    return result;
  }
  const read = () => {
    try {
      return { query: (typeof query === "function" ? query() : unref(query)) ?? {} };
    } catch (e) {
      return { error: e };
    }
  };
  const answer = (rows) => {
    data.value = rows;
    error.value = null;
    isLoading.value = false;
  };
  const failed = (e) => {
    error.value = e;
    isLoading.value = false;
  };

  if (!getCurrentScope()) {
    outsideScope(`useQuery(${JSON.stringify(repo.name)})`, "it answers once and does not follow changes");
    const first = read();
    if (first.error) failed(first.error);
    else repo.select(first.query).then(answer, failed);
    return result;
  }

  let stop = null;
  let shown = null; // the query text the open live query answers
  const open = ({ query: q, error: e }) => {
    if (e) {
      stop?.();
      stop = null;
      shown = null;
      return failed(e);
    }
    let text;
    try {
      text = JSON.stringify(q);
    } catch {
      text = null; // not JSON: the core says why
    }
    if (stop && text !== null && text === shown) return;
    stop?.();
    shown = text;
    isLoading.value = true;
    let mine = null;
    mine = stop = repo.live(
      q,
      (rows) => stop === mine && answer(rows),
      (err) => stop === mine && failed(err),
    );
  };
  watch(read, open, { immediate: true, deep: true });
  onScopeDispose(() => {
    stop?.();
    stop = null;
  });
  return result;
}
