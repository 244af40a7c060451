import type { App, Ref, ShallowRef } from "vue";
import type {
  CheckQuery, EngineOptions, ModelName, ModelsByName, ModelsInput, Repository, RepositoryOf, ResultRow, SelectQuery, SyncOrm,
  SyncOrmOptions, SyncStatus,
} from "../index.js";

/**
 * Register your models once to type the composables that take a model NAME (`useQuery("todos",
 * ...)`, `useRepo("todos")`, `useSyncOrm()`):
 * ```ts
 * declare module "micro-sync/adapters/vue" {
 *   interface Register { models: typeof models }
 * }
 * ```
 * (`micro-sync/nuxt` writes this for you.) Without it, rows are untyped records.
 */
export interface Register {}
/** The registered models, or any models. */
export type RegisteredModels = Register extends { models: infer M extends ModelsInput } ? M : ModelsInput;

/** What `useRepo` returns: the repository's methods, `status`, and `rows` of its last `select`/`sync`. */
export type UseRepo<R> = R extends Repository<infer Row, infer Rels, infer Ms>
  ? Omit<Repository<Row, Rels, Ms>, "name"> & {
      readonly name: string;
      /** The rows of the last `select()` / `sync()` called through this object, kept up to date. */
      rows: ShallowRef<ResultRow<Row, Rels, {}, Ms>[]>;
      status: ShallowRef<SyncStatus>;
    }
  : never;

/** An ORM as the adapter hands it out. */
export interface UseSyncOrm<M extends ModelsInput = RegisteredModels> {
  db: SyncOrm<M>;
  useRepo<N extends ModelName<M>>(name: N): UseRepo<RepositoryOf<M, N>>;
}

type CreateOptions<M extends ModelsInput> = Omit<SyncOrmOptions<M>, "engine"> & { engine?: EngineOptions | false };

/**
 * `useSyncOrm(options)` creates an ORM in the current effect scope (its sync engine started unless
 * `engine: false`) and closes it with the scope. `useSyncOrm()` returns the app-wide one
 * (`app.use(syncOrmPlugin, ...)` or `provideSyncOrm`); it throws `MissingSyncOrmError` if none.
 */
export function useSyncOrm<const M extends ModelsInput>(options: CreateOptions<M>): UseSyncOrm<M>;
export function useSyncOrm<M extends ModelsInput = RegisteredModels>(): UseSyncOrm<M>;
/** The common misspelling, kept as an alias. */
export const useSycnOrm: typeof useSyncOrm;

/**
 * Provides an ORM to this component's descendants: options create one (closed with this component),
 * or pass an ORM from `createSyncOrm()` (left open).
 */
export function provideSyncOrm<const M extends ModelsInput>(optionsOrDb: CreateOptions<M> | SyncOrm<M>): UseSyncOrm<M>;

/**
 * The app-wide ORM: `app.use(syncOrmPlugin, { models, storage, engine })` creates one (closed when the
 * app unmounts); `app.use(syncOrmPlugin, db)` (or `{ db }`) installs one you created. Templates see
 * it as `$sync`.
 */
export const syncOrmPlugin: {
  install<M extends ModelsInput>(app: App, options: CreateOptions<M> | SyncOrm<M> | { db: SyncOrm<M> }): void;
};

/** `useRepo(name)` on the app-wide ORM, or `useRepo(sync, name)` on a given one. Ends with the scope. */
export function useRepo<N extends ModelName<RegisteredModels>>(name: N): UseRepo<RepositoryOf<RegisteredModels, N>>;
export function useRepo<M extends ModelsInput, N extends ModelName<M>>(sync: UseSyncOrm<M> | { db: SyncOrm<M> }, name: N): UseRepo<RepositoryOf<M, N>>;

/** What `useQuery` returns. `data` is `[]` until the first answer; `error` is `null` once one came. */
export interface QueryResult<Row> {
  data: ShallowRef<Row[]>;
  error: ShallowRef<Error | null>;
  isLoading: Ref<boolean>;
}

type QueryOf<R> = R extends Repository<infer Row, infer Rels, infer Ms> ? SelectQuery<Row, Rels, Ms> : never;
type RowsOf<R, Q> = R extends Repository<infer Row, infer Rels, infer Ms> ? ResultRow<Row, Rels, Q, Ms> : never;
type Checked<R, Q> = R extends Repository<infer Row, infer Rels, infer Ms> ? CheckQuery<Q, Row, Rels, Ms> : never;

/**
 * A live query: `{ data, error, isLoading }`. `query` is watched, so refs it reads run it again;
 * `data` follows every change of the rows it reads (relations at any depth), in this tab, another
 * tab or a pull. `target` is a model name (of the app-wide ORM, or of `options.db`) or a
 * repository (`db.model("todos")`, `useRepo(...)`). Ends with the effect scope; outside one it
 * warns and answers once.
 */
export function useQuery<N extends ModelName<RegisteredModels>, const Q extends QueryOf<RepositoryOf<RegisteredModels, N>> = {}>(
  target: N,
  query?: () => Q & Checked<RepositoryOf<RegisteredModels, N>, Q>,
  options?: { db?: SyncOrm<any> | UseSyncOrm<any> },
): QueryResult<RowsOf<RepositoryOf<RegisteredModels, N>, Q>>;
export function useQuery<R extends Repository<any, any, any>, const Q = {}>(
  target: R,
  query?: () => Q & QueryOf<R> & Checked<R, Q>,
  options?: { db?: SyncOrm<any> | UseSyncOrm<any> },
): QueryResult<RowsOf<R, Q>>;

export type { ModelsByName };
