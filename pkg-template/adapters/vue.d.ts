import type { ShallowRef } from "vue";
import type { EngineOptions, ModelName, ModelsInput, Repository, RepositoryOf, SyncOrm, SyncOrmOptions, SyncStatus } from "../index.js";

export type UseRepo<R> = R extends Repository<infer Row, infer Rels>
  ? Omit<Repository<Row, Rels>, "name"> & { rows: ShallowRef<Row[]>; status: ShallowRef<SyncStatus> }
  : never;

export interface UseSyncOrm<M extends ModelsInput> {
  db: SyncOrm<M>;
  useRepo<N extends ModelName<M>>(name: N): UseRepo<RepositoryOf<M, N>>;
}

export function useSyncOrm<const M extends ModelsInput>(
  options: Omit<SyncOrmOptions<M>, "engine"> & { engine?: EngineOptions | false },
): UseSyncOrm<M>;
export const useSycnOrm: typeof useSyncOrm;
export function useRepo<M extends ModelsInput, N extends ModelName<M>>(sync: UseSyncOrm<M>, name: N): UseRepo<RepositoryOf<M, N>>;
