// Hand-written declarations for micro-sync. Row types come from each model's schema.

/** Standard Schema v1 (Zod >= 3.24, Valibot, ArkType). */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly "~standard": {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => unknown;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}
/** Objects with only `safeParse` / `parse` are accepted too. */
export type LegacySchema<Output> = { safeParse(v: unknown): unknown } | { parse(v: unknown): Output };
export type AnySchema = StandardSchemaV1<any, any> | LegacySchema<any>;

/**
 * The row of a model without a schema that tells its fields: any fields, of any type (as Dexie
 * types an untyped table), so templates and code can use them without casts.
 */
export type UntypedRow = Record<string, any>;

export type InferRow<S> = S extends { readonly "~standard": { readonly types?: infer T } }
  ? NonNullable<T> extends { readonly output: infer O } ? O : UntypedRow
  : S extends { parse(v: unknown): infer O } ? O
  : UntypedRow;

export type Key = string | number;

/**
 * A row as it comes back: rows are JSON, so a `Date` a schema produces is stored, and read back,
 * as its ISO 8601 string (recursively in nested objects and arrays).
 */
export type Stored<T> = T extends Date
  ? string
  : T extends (...args: any[]) => any
    ? T
    : T extends readonly (infer U)[]
      ? Stored<U>[]
      : T extends object
        ? { [K in keyof T]: Stored<T[K]> }
        : T;

export type RelationKind = "hasMany" | "hasOne" | "belongsTo";

/**
 * A relation to model `M`: `parent[localKey] === related[foreignKey]`. `L` is the local key, checked
 * against the parent's fields by `defineRelations` (and `defineModel`'s `relations`).
 */
export interface Relation<K extends RelationKind = RelationKind, M extends AnyModel = AnyModel, L extends string = string> {
  readonly kind: K;
  readonly model: M;
  readonly localKey: L;
  readonly foreignKey: string;
}

/** Passed to sync hooks: `signal` is aborted when the call times out (see `timeoutMs`). */
export interface HookContext {
  signal: AbortSignal;
}

/** One pending write as the push hooks receive it. */
export interface PushedMutation {
  action: "insert" | "update" | "delete";
  query: unknown;
  /** Stable across retries: a backend deduplicates by it. */
  mutationId: string;
  model: string;
}

/**
 * `sync.mutations`' answer for one entry: `"done"`, `"retry"` (it and the entries after it wait
 * for its backoff) or `"reject"` (rolled back), or `{ status, error }`.
 */
export type BatchAnswer = "done" | "retry" | "reject" | { status: "done" | "retry" | "reject"; error?: unknown };

export interface ModelSync<Row> {
  /** Pull: return backend rows for this query shape. */
  query?: (query: SelectQuery<Row>, ctx: HookContext) => Promise<Row[]>;
  /** Push one write. Throw `{ retryable: false }` (or `permanent: true`) to reject it for good. */
  mutation?: (m: PushedMutation, ctx: HookContext) => Promise<unknown>;
  /**
   * Push up to `batchSize` consecutive writes in one call, in outbox order (instead of
   * `mutation`). Resolve with one answer per entry, or nothing when all are done; a throw counts
   * for the first entry, the rest waiting behind it.
   */
  mutations?: (entries: PushedMutation[], ctx: HookContext) => Promise<readonly BatchAnswer[] | void>;
  /** Entries per `mutations` call (default 100). */
  batchSize?: number;
  /**
   * How long a hook call may stay pending before it fails (default 30 000 ms; `Infinity` for no
   * limit). A timed-out push is retried like any failed one; a timed-out pull rejects with SyncError.
   */
  timeoutMs?: number;
}

export interface Model<Name extends string = string, Row = UntypedRow, Rels extends Record<string, Relation> = {}> {
  readonly name: Name;
  readonly primaryKey: string;
  readonly schema?: AnySchema;
  readonly indexes: readonly string[];
  readonly sync?: ModelSync<Row>;
  readonly conflict?: ConflictStrategy<Row>;
  readonly version: number;
  readonly migrate?: (row: any, fromVersion: number) => Row;
  /** Assigning works at run time but is untyped: prefer `defineRelations`. */
  relations: Rels;
  /** Type-only marker carrying the row type. */
  readonly __row?: Row;
}
export type AnyModel = Model<string, any, any>;
export type RowOf<M> = M extends Model<any, infer R, any> ? R : never;
export type RelsOf<M> = M extends Model<any, any, infer R> ? R : {};
/** Field names a model's rows are known to have (`string` without a schema that tells). */
type FieldOf<Row> = keyof Row & string;

export type ConflictStrategy<Row> =
  | "remote"
  | "local"
  | { lww: FieldOf<Row> }
  | ((local: Row | null, remote: Row, base: Row | null) => Row);

type ModelOptions<S extends AnySchema | undefined, Rels> = {
  /**
   * Pending writes of one row made while offline merge before they are pushed (insert + update →
   * one insert, insert + delete → nothing, update + update → one update). Default `true`.
   */
  coalesce?: boolean;
  /**
   * How a pull treats a row the backend changed while this tab holds pending writes to it:
   * `"remote"` (default) takes the backend's row, `"local"` keeps the local one,
   * `{ lww: field }` keeps whichever has the newer `field` (also guarding rows without pending
   * writes against an older pulled copy), a function returns the row to use. The pending writes'
   * fields stay on top in every case. The function runs synchronously; its row keeps the key.
   */
  conflict?: ConflictStrategy<RowFromSchema<S>>;
  /**
   * The version of the rows' shape (default 1). When the app starts with a higher version than
   * the stored rows, `migrate` runs over every stored row of the model and its pending writes, in
   * one IndexedDB upgrade before anything is read; if it throws, nothing changes and the database
   * fails to open with `MigrationError`.
   */
  version?: number;
  /** Brings a row stored at `fromVersion` to `version`; must keep the primary key. Synchronous. */
  migrate?: (row: any, fromVersion: number) => RowFromSchema<S>;
  primaryKey: S extends AnySchema ? FieldOf<InferRow<S>> : string;
  schema?: S;
  indexes?: readonly (S extends AnySchema ? FieldOf<InferRow<S>> : string)[];
  sync?: ModelSync<S extends AnySchema ? InferRow<S> : UntypedRow>;
  relations?: Rels;
};
type RowFromSchema<S> = S extends AnySchema ? InferRow<S> : UntypedRow;

/**
 * Defines a model. In a Vue `<script setup>` block `defineModel` is the compiler's macro: use
 * `defineSyncModel`, the same function, and define models in a `.ts` module.
 */
export function defineModel<
  const Name extends string,
  S extends AnySchema | undefined = undefined,
  Rels extends Record<string, Relation<RelationKind, AnyModel, FieldOf<RowFromSchema<S>>>> = {},
>(name: Name, options: ModelOptions<S, Rels>): Model<Name, RowFromSchema<S>, Rels>;
/** `defineModel` under a name that does not collide with Vue's `<script setup>` macro. */
export const defineSyncModel: typeof defineModel;

/**
 * Adds relations to `model` and returns it typed with them. Models that refer to each other are
 * defined first, then related: pass the results to `createSyncOrm`, which resolves relations by
 * model name, so `select({ relations })` is typed in both directions and at any depth. Each
 * relation's local key must be a field of `model`.
 */
export function defineRelations<
  M extends AnyModel,
  const R extends Record<string, Relation<RelationKind, AnyModel, FieldOf<RowOf<M>>>>,
>(model: M, relations: R): M extends Model<infer N, infer Row, infer Old> ? Model<N, Row, Omit<Old, keyof R> & R> : never;

export function hasMany<M extends AnyModel, const L extends string>(model: M, localKey: L, foreignKey: FieldOf<RowOf<M>>): Relation<"hasMany", M, L>;
export function hasOne<M extends AnyModel, const L extends string>(model: M, localKey: L, foreignKey: FieldOf<RowOf<M>>): Relation<"hasOne", M, L>;
export function belongsTo<M extends AnyModel, const L extends string>(model: M, localKey: L, foreignKey: FieldOf<RowOf<M>>): Relation<"belongsTo", M, L>;

// ------------------------------------------------------------------ queries
type Scalar<V> = Exclude<V, null | undefined>;
export type FieldCondition<V> =
  | V
  | null
  | {
      eq?: V | null;
      ne?: V | null;
      gt?: Scalar<V> | (Scalar<V> extends number ? string : never);
      gte?: Scalar<V> | (Scalar<V> extends number ? string : never);
      lt?: Scalar<V> | (Scalar<V> extends number ? string : never);
      lte?: Scalar<V> | (Scalar<V> extends number ? string : never);
      in?: readonly Scalar<V>[];
      nin?: readonly Scalar<V>[];
      like?: Scalar<V> extends string ? string : never;
      ilike?: Scalar<V> extends string ? string : never;
      fzlike?: Scalar<V> extends string ? string : never;
    };
export type Where<Row> = { [K in keyof Row]?: FieldCondition<Row[K]> } & {
  and?: readonly Where<Row>[];
  or?: readonly Where<Row>[];
  not?: Where<Row>;
};
export type OrderBy<Row> = readonly { field: FieldOf<Row>; direction?: "asc" | "desc" }[];

/** The models of an ORM by name; relations resolve their target through it. */
export type ModelMap = Record<string, AnyModel>;
/** A relation's target as the ORM knows it (with the relations `defineRelations` gave it). */
type Target<R, Ms> = R extends Relation<any, infer M, any> ? (M extends Model<infer N, any, any> ? (N extends keyof Ms ? Ms[N] : M) : M) : never;

export type RelationsQuery<Rels, Ms = {}> = {
  [K in keyof Rels]?: true | SelectQuery<RowOf<Target<Rels[K], Ms>>, RelsOf<Target<Rels[K], Ms>>, Ms>;
};

export interface SelectQuery<Row, Rels = {}, Ms = {}> {
  where?: Where<Row>;
  orderBy?: OrderBy<Row>;
  limit?: number;
  offset?: number;
  fields?: readonly FieldOf<Row>[];
  relations?: RelationsQuery<Rels, Ms>;
}

/**
 * Refuses what the constraint alone lets through: a relation name the model does not have (at
 * any depth), and a `where` field the schema does not have next to ones it does.
 */
export type CheckQuery<Q, Row, Rels, Ms> = (Q extends { where: infer W } ? { where: CheckWhere<W, Row> } : unknown) &
  (Q extends { relations: infer RQ } ? { relations: CheckRelations<RQ, Rels, Ms> } : unknown);
type CheckWhere<W, Row> = string extends keyof Row
  ? unknown
  : { [K in keyof W]: K extends keyof Row ? unknown : K extends "and" | "or" | "not" ? unknown : never };
type CheckRelations<RQ, Rels, Ms> = {
  [K in keyof RQ]: K extends keyof Rels
    ? RQ[K] extends object
      ? CheckQuery<RQ[K], RowOf<Target<Rels[K], Ms>>, RelsOf<Target<Rels[K], Ms>>, Ms>
      : unknown
    : never;
};

type Picked<Row, F> = F extends readonly (infer K)[] ? Pick<Row, Extract<K, keyof Row>> : Row;
type RelValue<R, Opt, Ms> = R extends Relation<infer Kind, any, any>
  ? Kind extends "hasMany"
    ? ResultRow<RowOf<Target<R, Ms>>, RelsOf<Target<R, Ms>>, Opt, Ms>[]
    : ResultRow<RowOf<Target<R, Ms>>, RelsOf<Target<R, Ms>>, Opt, Ms> | null
  : never;
/** A row of a result: the (projected) stored row, with the requested relations attached. */
export type ResultRow<Row, Rels, Q, Ms = {}> = Stored<Picked<Row, Q extends { fields: infer F } ? F : undefined>> &
  (Q extends { relations: infer RQ }
    ? { [K in keyof RQ & keyof Rels as RQ[K] extends false | undefined ? never : K]: RelValue<Rels[K], RQ[K], Ms> }
    : {});

export interface Returning<Row, Rels, Ms = {}> {
  fields?: readonly FieldOf<Row>[];
  relations?: RelationsQuery<Rels, Ms>;
}

export interface Repository<Row, Rels = {}, Ms = {}> {
  readonly name: string;
  select<const Q extends SelectQuery<Row, Rels, Ms> = {}>(query?: Q & CheckQuery<Q, Row, Rels, Ms>): Promise<ResultRow<Row, Rels, Q, Ms>[]>;
  /**
   * A live query: `onRows` gets `select(query)`'s rows now and whenever they change (writes here
   * or in another tab, pulls, related rows at any depth); `onError` why the query cannot be
   * answered. Returns the function that closes it.
   */
  live<const Q extends SelectQuery<Row, Rels, Ms> = {}>(
    query: Q & CheckQuery<Q, Row, Rels, Ms>,
    onRows: (rows: ResultRow<Row, Rels, Q, Ms>[]) => void,
    onError?: (error: Error) => void,
  ): () => void;
  insert<const R extends Returning<Row, Rels, Ms> = {}>(args: {
    values: Partial<Row> | readonly Partial<Row>[];
    returning?: R & CheckQuery<R, Row, Rels, Ms>;
  }): Promise<Written<ResultRow<Row, Rels, R, Ms>>>;
  update<const R extends Returning<Row, Rels, Ms> = {}>(args: {
    where: Where<Row>;
    values: Partial<Row>;
    returning?: R & CheckQuery<R, Row, Rels, Ms>;
  }): Promise<Written<ResultRow<Row, Rels, R, Ms>>>;
  delete<const R extends Returning<Row, Rels, Ms> = {}>(args: { where: Where<Row>; returning?: R & CheckQuery<R, Row, Rels, Ms> }): Promise<Written<ResultRow<Row, Rels, R, Ms>>>;
  count(query?: { where?: Where<Row> }): Promise<number>;
  get(key: Key): Promise<Stored<Row> | null>;
  /** Pulls `sync.query(query)` from the backend, merges it, resolves with the local rows. */
  sync<const Q extends SelectQuery<Row, Rels, Ms> = {}>(query?: Q & CheckQuery<Q, Row, Rels, Ms>): Promise<ResultRow<Row, Rels, Q, Ms>[]>;
  getSyncStatus(): SyncStatus;
  subscribeSyncStatus(listener: (status: SyncStatus) => void): () => void;
}

/**
 * A write's rows, carrying (non-enumerable) the ids of the outbox entries it queued: pass the
 * result to `db.whenSynced()` to wait for the backend. Empty for a model that does not push.
 */
export type Written<T> = T[] & { readonly mutationIds: readonly string[] };

// ------------------------------------------------------------------ storage and the ORM
export interface Storage {
  readonly kind: "indexeddb" | "memory";
}
export function createIndexedDbStorage(options?: { name?: string }): Storage;
export function createMemoryStorage(): Storage;

export type ModelsInput = Record<string, AnyModel> | readonly AnyModel[];
type ModelUnion<M extends ModelsInput> = M extends readonly (infer U)[] ? U : M[keyof M];
type ByName<M extends ModelsInput> = { [X in ModelUnion<M> as X extends Model<infer N, any, any> ? N : never]: X };

/** Names of the models in a `models` input. */
export type ModelName<M extends ModelsInput> = keyof ByName<M> & string;
/** The models of a `models` input by name. */
export type ModelsByName<M extends ModelsInput> = ByName<M>;
/** The repository type of model `N`. */
export type RepositoryOf<M extends ModelsInput, N extends ModelName<M>> = Repository<RowOf<ByName<M>[N]>, RelsOf<ByName<M>[N]>, ByName<M>>;

export interface SyncOrmOptions<M extends ModelsInput> {
  storage?: Storage;
  models: M;
  /** Starts the background loop that drains the outbox. Without it, no loop runs. */
  engine?: EngineOptions;
  /**
   * One batch hook for every model that has no push hook of its own: entries of all those models
   * go out together, in outbox order (each entry names its `model`).
   */
  sync?: OrmSync;
}

/** `createSyncOrm({ sync })`: the ORM-wide batch push hook. */
export interface OrmSync {
  mutations: (entries: PushedMutation[], ctx: HookContext) => Promise<readonly BatchAnswer[] | void>;
  /** Entries per call (default 100). */
  batchSize?: number;
  /** How long a call may stay pending before it fails (default 30 000 ms). */
  timeoutMs?: number;
}

export interface SyncOrm<M extends ModelsInput = ModelsInput> {
  /** Resolves once storage is open (every method waits for it anyway). */
  readonly ready: Promise<void>;
  model<N extends ModelName<M>>(name: N): RepositoryOf<M, N>;
  /** Called with the model name after local data changed (writes, pulls, rollbacks, other tabs). */
  onChange(listener: (model: string) => void): () => void;
  startEngine(): void;
  stopEngine(): void;
  /**
   * Resumes pushes paused because a push hook threw an error with `needsAuth: true` (nothing was
   * rolled back or retried meanwhile). Call it once the user signed in again.
   */
  resumeSync(): void;
  /**
   * Pushes every pending write now, ignoring backoff; resolves when each has been tried. Called
   * while a push is in flight (from a sync hook, say), it resolves at once and the running drain
   * carries on without backoff once that push settled.
   */
  retryPendingSync(): Promise<void>;
  pending(): Promise<PendingMutation[]>;
  /**
   * Stored records that could not be decoded (written by another version, or corrupted): they
   * stay in storage, are skipped by reads, and are listed here.
   */
  unreadable(): Promise<UnreadableDataError[]>;
  /**
   * Resolves when the backend acknowledged these writes (mutation ids, or a write's result), or
   * every write pending now when called without; rejects with `RejectedWriteError` when the
   * backend rejected one of them. Works across tabs: whichever tab pushes them.
   */
  whenSynced(ids?: string | readonly string[] | { readonly mutationIds: readonly string[] }): Promise<void>;
  /** Writes the backend rejected (rolled back), oldest first, until acknowledged. */
  rejected(): Promise<RejectedMutation[]>;
  /** Forgets a rejected write in every tab; resolves with whether there was one. */
  acknowledgeRejected(mutationId: string): Promise<boolean>;
  /** Drops a pending write and rolls it back; rejects with SyncError while it is being pushed. */
  discardPending(mutationId: string): Promise<void>;
  retryPending(mutationId: string): Promise<void>;
  /**
   * Closes the database: later calls reject with `DatabaseClosedError`. Resolves once storage is
   * released; awaiting it is only needed to reopen the same database at once.
   */
  close(): Promise<void>;
}

export function createSyncOrm<const M extends ModelsInput>(options: SyncOrmOptions<M>): SyncOrm<M>;

// ------------------------------------------------------------------ errors
export interface ValidationIssue {
  path: string[];
  message: string;
}
export class MicroSyncError extends Error {}
export class ValidationError extends MicroSyncError {
  readonly name: "ValidationError";
  readonly issues: ValidationIssue[];
  readonly model: string;
}
export class QueryError extends MicroSyncError {
  readonly name: "QueryError";
}
export class UnknownModelError extends MicroSyncError {
  readonly name: "UnknownModelError";
}
export class ConstraintError extends MicroSyncError {
  readonly name: "ConstraintError";
}
export class StorageError extends MicroSyncError {
  readonly name: "StorageError";
  readonly domName?: string;
}
export class QuotaExceededError extends MicroSyncError {
  readonly name: "QuotaExceededError";
  readonly domName: "QuotaExceededError";
}
export class DatabaseClosedError extends MicroSyncError {
  readonly name: "DatabaseClosedError";
}
export class SyncError extends MicroSyncError {
  readonly name: "SyncError";
}
/**
 * A model migration failed (the stored data was left as it was), or the stored rows are at a newer
 * version than this page's models (reload to run the newer code).
 */
export class MigrationError extends MicroSyncError {
  readonly name: "MigrationError";
}
/** `whenSynced()`: the backend rejected one of the writes (its change was rolled back). */
export class RejectedWriteError extends MicroSyncError {
  readonly name: "RejectedWriteError";
  readonly mutationId: string;
}
/**
 * The WebAssembly engine trapped (ran out of memory, or hit a bug) while working for this
 * database: every pending and later call of it rejects with this error (`cause` says why). Its
 * locks are released; create a new database with `createSyncOrm()`.
 */
export class EngineFailedError extends MicroSyncError {
  readonly name: "EngineFailedError";
}

/** A stored record that could not be decoded; it is left in storage and skipped. */
export class UnreadableDataError extends MicroSyncError {
  readonly name: "UnreadableDataError";
  /** The model (or `_pendingSync` for the outbox) whose store holds it. */
  readonly store: string;
  readonly key: Key | null;
}

// ------------------------------------------------------------------ sync
export interface SyncStatus {
  readonly online: boolean;
  readonly engineRunning: boolean;
  readonly syncing: boolean;
  readonly pendingCount: number;
  readonly lastError: string | null;
  readonly lastSyncedAt: number | null;
  /** Pushes wait for `db.resumeSync()`: a push hook threw an error with `needsAuth: true`. */
  readonly needsAuth: boolean;
}

export interface NetworkDetector {
  isOnline(): boolean;
  /** Calls `listener(online)` on every change; returns the unsubscribe function. */
  subscribe(listener: (online: boolean) => void): () => void;
}
export function createNetworkDetector(): NetworkDetector;

export interface EngineOptions {
  /** How often to drain the outbox while online (default 30 000). */
  intervalMs?: number;
  networkDetector?: NetworkDetector;
}

/** An outbox entry as `pending()` and `rejected()` show it. */
export interface OutboxEntryView {
  mutationId: string;
  model: string;
  action: "insert" | "update" | "delete";
  /** The primary key written (an array when one write touched several rows). */
  key: Key | Key[];
  query: unknown;
  createdAt: number;
}

export interface PendingMutation extends OutboxEntryView {
  attempts: number;
  lastError: string | null;
  nextAttemptAt: number;
}

export interface RejectedMutation extends OutboxEntryView {
  /** The backend's error message. */
  error: string;
  rejectedAt: number;
  /** The rows as the write had made them, just before the rollback. */
  rows: UntypedRow[];
}

export interface SyncEngineHandle {
  start(): void;
  stop(): void;
  readonly running: boolean;
}
export function createSyncEngine(config: { db: SyncOrm<any>; intervalMs?: number; networkDetector?: NetworkDetector }): SyncEngineHandle;

/** Bytes of WebAssembly memory in use by the engine (0 before first use). For diagnostics. */
export function memoryUsage(): { wasmBytes: number };
