// Vue adapter: binds micro-sync repositories to Vue refs inside an effect scope.
import { getCurrentScope, onScopeDispose, shallowRef } from "vue";
import { createSyncOrm } from "../index.js";

/**
 * Creates the ORM inside the current effect scope, starts its sync engine (pass `engine: false`
 * to opt out), and stops and closes it when the scope is disposed. Returns `{ db, useRepo }`.
 */
export function useSyncOrm(options) {
  const { engine, ...rest } = options ?? {};
  const db = createSyncOrm(engine === false ? rest : { ...rest, engine: engine ?? {} });
  const sync = { db, useRepo: (name) => useRepo(sync, name) };
  if (getCurrentScope()) onScopeDispose(() => db.close());
  return sync;
}

/** The common misspelling, kept as an alias. */
export const useSycnOrm = useSyncOrm;

/**
 * A repository's methods plus `rows`, a shallow ref set by `select()` / `sync()` and refreshed
 * (same query) whenever the data it shows changes, in this tab or another; and `status`, a ref
 * of the repository's sync status. Subscriptions end with the current effect scope.
 */
export function useRepo(sync, name) {
  const db = sync.db ?? sync;
  const repo = db.model(name);
  const rows = shallowRef([]);
  const status = shallowRef(repo.getSyncStatus());
  let lastQuery = null;
  let generation = 0;

  async function show(load, query) {
    lastQuery = query;
    const mine = ++generation;
    const result = await load(query);
    if (mine === generation) rows.value = result;
    return result;
  }
  const select = (query = {}) => show((q) => repo.select(q), query);

  const touched = (query) => {
    const out = new Set([name]);
    for (const rel of Object.keys(query?.relations ?? {})) {
      const r = repo.model.relations?.[rel];
      if (r) out.add(r.model.name);
    }
    return out;
  };

  const stops = [
    db.onChange((model) => {
      if (lastQuery && touched(lastQuery).has(model)) select(lastQuery).catch(() => {});
    }),
    repo.subscribeSyncStatus((s) => (status.value = s)),
  ];
  if (getCurrentScope()) onScopeDispose(() => stops.forEach((stop) => stop()));

  return {
    rows,
    status,
    select,
    sync: (query = {}) => show((q) => repo.sync(q), query),
    insert: (args) => repo.insert(args),
    update: (args) => repo.update(args),
    delete: (args) => repo.delete(args),
    count: (args) => repo.count(args),
    get: (key) => repo.get(key),
    getSyncStatus: () => repo.getSyncStatus(),
    subscribeSyncStatus: (fn) => repo.subscribeSyncStatus(fn),
  };
}
