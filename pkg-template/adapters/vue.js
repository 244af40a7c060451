// Vue adapter: binds micro-sync repositories to Vue refs inside an effect scope.
import { getCurrentScope, onScopeDispose, shallowRef } from "vue";
import { createSyncOrm } from "../index.js";

/**
 * Creates the ORM inside the current effect scope and closes it when the scope is disposed.
 * Returns `{ db, useRepo }`.
 */
export function useSyncOrm(options) {
  const db = createSyncOrm(options);
  const sync = { db, useRepo: (name) => useRepo(sync, name) };
  if (getCurrentScope()) onScopeDispose(() => db.close());
  return sync;
}

/** The common misspelling, kept as an alias. */
export const useSycnOrm = useSyncOrm;

/**
 * A repository's methods plus `rows`, a shallow ref set by `select()` and refreshed (same query)
 * whenever the model or a model it loads through relations changes.
 */
export function useRepo(sync, name) {
  const repo = sync.db.model(name);
  const rows = shallowRef([]);
  let lastQuery = null;
  let generation = 0;

  async function select(query = {}) {
    lastQuery = query;
    const mine = ++generation;
    const result = await repo.select(query);
    if (mine === generation) rows.value = result;
    return result;
  }

  const touched = (query, out = new Set([name])) => {
    for (const rel of Object.keys(query?.relations ?? {})) {
      const r = repo.model.relations?.[rel];
      if (r) out.add(r.model.name);
    }
    return out;
  };

  const stop = sync.db.onChange((model) => {
    if (lastQuery && touched(lastQuery).has(model)) select(lastQuery).catch(() => {});
  });
  if (getCurrentScope()) onScopeDispose(stop);

  return {
    rows,
    select,
    insert: (args) => repo.insert(args),
    update: (args) => repo.update(args),
    delete: (args) => repo.delete(args),
    count: (args) => repo.count(args),
    get: (key) => repo.get(key),
  };
}
