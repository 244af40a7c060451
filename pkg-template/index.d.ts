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

export type InferRow<S> = S extends { readonly "~standard": { readonly types?: infer T } }
  ? NonNullable<T> extends { readonly output: infer O } ? O : Record<string, unknown>
  : S extends { parse(v: unknown): infer O } ? O
  : Record<string, unknown>;

export type Key = string | number;

export interface Relation<K extends "hasMany" | "hasOne" | "belongsTo" = any, M extends AnyModel = AnyModel> {
  readonly kind: K;
  readonly model: M;
  readonly localKey: string;
  readonly foreignKey: string;
}

/** Passed to sync hooks: `signal` is aborted when the call times out (see `timeoutMs`). */
export interface HookContext {
  signal: AbortSignal;
}

export interface ModelSync<Row> {
  /** Pull: return backend rows for this query shape. */
  query?: (query: SelectQuery<Row>, ctx: HookContext) => Promise<Row[]>;
  /** Push one write. Throw `{ retryable: false }` (or `permanent: true`) to reject it for good. */
  mutation?: (m: { action: "insert" | "update" | "delete"; query: unknown; mutationId: string; model: string }, ctx: HookContext) => Promise<unknown>;
  /**
   * How long a hook call may stay pending before it fails (default 30 000 ms; `Infinity` for no
   * limit). A timed-out push is retried like any failed one; a timed-out pull rejects with SyncError.
   */
  timeoutMs?: number;
}

export interface Model<Name extends string = string, Row = Record<string, unknown>, Rels extends Record<string, Relation> = {}> {
  readonly name: Name;
  readonly primaryKey: string;
  readonly schema?: AnySchema;
  readonly indexes: readonly string[];
  readonly sync?: ModelSync<Row>;
  relations: Rels;
  /** Type-only marker carrying the row type. */
  readonly __row?: Row;
}
export type AnyModel = Model<string, any, any>;
export type RowOf<M> = M extends Model<any, infer R, any> ? R : never;
type RelsOf<M> = M extends Model<any, any, infer R> ? R : {};

export function defineModel<
  const Name extends string,
  S extends AnySchema | undefined = undefined,
  Rels extends Record<string, Relation> = {},
>(
  name: Name,
  options: {
    primaryKey: S extends AnySchema ? keyof InferRow<S> & string : string;
    schema?: S;
    indexes?: readonly (S extends AnySchema ? keyof InferRow<S> & string : string)[];
    sync?: ModelSync<S extends AnySchema ? InferRow<S> : Record<string, unknown>>;
    relations?: Rels;
  },
): Model<Name, S extends AnySchema ? InferRow<S> : Record<string, unknown>, Rels>;

export function hasMany<M extends AnyModel>(model: M, localKey: string, foreignKey: keyof RowOf<M> & string): Relation<"hasMany", M>;
export function hasOne<M extends AnyModel>(model: M, localKey: string, foreignKey: keyof RowOf<M> & string): Relation<"hasOne", M>;
export function belongsTo<M extends AnyModel>(model: M, localKey: string, foreignKey: keyof RowOf<M> & string): Relation<"belongsTo", M>;

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
export type OrderBy<Row> = readonly { field: keyof Row & string; direction?: "asc" | "desc" }[];

type RelationOptions<M extends AnyModel> = true | (SelectQuery<RowOf<M>, RelsOf<M>> & {});
export type RelationsQuery<Rels> = { [K in keyof Rels]?: Rels[K] extends Relation<any, infer M> ? RelationOptions<M> : never };

export interface SelectQuery<Row, Rels = {}> {
  where?: Where<Row>;
  orderBy?: OrderBy<Row>;
  limit?: number;
  offset?: number;
  fields?: readonly (keyof Row & string)[];
  relations?: RelationsQuery<Rels>;
}

type Picked<Row, F> = F extends readonly (infer K)[] ? Pick<Row, Extract<K, keyof Row>> : Row;
type RelValue<R, Opt> = R extends Relation<infer Kind, infer M>
  ? Kind extends "hasMany"
    ? ResultRow<RowOf<M>, RelsOf<M>, Opt>[]
    : ResultRow<RowOf<M>, RelsOf<M>, Opt> | null
  : never;
export type ResultRow<Row, Rels, Q> = Picked<Row, Q extends { fields: infer F } ? F : undefined> &
  (Q extends { relations: infer RQ }
    ? { [K in keyof RQ & keyof Rels]: RelValue<Rels[K], RQ[K]> }
    : {});

export interface Returning<Row, Rels> {
  fields?: readonly (keyof Row & string)[];
  relations?: RelationsQuery<Rels>;
}

export interface Repository<Row, Rels = {}> {
  readonly name: string;
  select<const Q extends SelectQuery<Row, Rels> = {}>(query?: Q): Promise<ResultRow<Row, Rels, Q>[]>;
  insert<const R extends Returning<Row, Rels> = {}>(args: {
    values: Partial<Row> | readonly Partial<Row>[];
    returning?: R;
  }): Promise<ResultRow<Row, Rels, R>[]>;
  update<const R extends Returning<Row, Rels> = {}>(args: {
    where: Where<Row>;
    values: Partial<Row>;
    returning?: R;
  }): Promise<ResultRow<Row, Rels, R>[]>;
  delete<const R extends Returning<Row, Rels> = {}>(args: { where: Where<Row>; returning?: R }): Promise<ResultRow<Row, Rels, R>[]>;
  count(query?: { where?: Where<Row> }): Promise<number>;
  get(key: Key): Promise<Row | null>;
  /** Pulls `sync.query(query)` from the backend, merges it, resolves with the local rows. */
  sync<const Q extends SelectQuery<Row, Rels> = {}>(query?: Q): Promise<ResultRow<Row, Rels, Q>[]>;
  getSyncStatus(): SyncStatus;
  subscribeSyncStatus(listener: (status: SyncStatus) => void): () => void;
}

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
/** The repository type of model `N`. */
export type RepositoryOf<M extends ModelsInput, N extends ModelName<M>> = Repository<RowOf<ByName<M>[N]>, RelsOf<ByName<M>[N]>>;

export interface SyncOrmOptions<M extends ModelsInput> {
  storage?: Storage;
  models: M;
  /** Starts the background loop that drains the outbox. Without it, no loop runs. */
  engine?: EngineOptions;
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

export interface PendingMutation {
  mutationId: string;
  model: string;
  action: "insert" | "update" | "delete";
  /** The primary key written (an array when one write touched several rows). */
  key: Key | Key[];
  query: unknown;
  createdAt: number;
  attempts: number;
  lastError: string | null;
  nextAttemptAt: number;
}

export interface SyncEngineHandle {
  start(): void;
  stop(): void;
  readonly running: boolean;
}
export function createSyncEngine(config: { db: SyncOrm<any>; intervalMs?: number; networkDetector?: NetworkDetector }): SyncEngineHandle;

/** Bytes of WebAssembly memory in use by the engine (0 before first use). For diagnostics. */
export function memoryUsage(): { wasmBytes: number };
