import type { ShallowRef } from "vue";
import type { AnyModel, EngineOptions, Repository, SyncOrm, SyncOrmOptions, SyncStatus } from "../index.js";

type ModelsInput = Record<string, AnyModel> | readonly AnyModel[];
type RepoOf<M extends ModelsInput, N extends string> = SyncOrm<M>["model"] extends (name: N) => infer R ? R : never;

export type UseRepo<R> = R extends Repository<infer Row, infer Rels>
  ? Omit<Repository<Row, Rels>, "name"> & { rows: ShallowRef<Row[]>; status: ShallowRef<SyncStatus> }
  : never;

export interface UseSyncOrm<M extends ModelsInput> {
  db: SyncOrm<M>;
  useRepo<N extends Parameters<SyncOrm<M>["model"]>[0]>(name: N): UseRepo<RepoOf<M, N>>;
}

export function useSyncOrm<const M extends ModelsInput>(
  options: Omit<SyncOrmOptions<M>, "engine"> & { engine?: EngineOptions | false },
): UseSyncOrm<M>;
export const useSycnOrm: typeof useSyncOrm;
export function useRepo<M extends ModelsInput, N extends Parameters<SyncOrm<M>["model"]>[0]>(
  sync: UseSyncOrm<M>,
  name: N,
): UseRepo<RepoOf<M, N>>;
