import type { ShallowRef } from "vue";
import type { AnyModel, Repository, SyncOrm, SyncOrmOptions } from "../index.js";

type ModelsInput = Record<string, AnyModel> | readonly AnyModel[];

export type UseRepo<R> = R extends Repository<infer Row, infer Rels>
  ? Omit<Repository<Row, Rels>, "name"> & { rows: ShallowRef<Row[]> }
  : never;

export interface UseSyncOrm<M extends ModelsInput> {
  db: SyncOrm<M>;
  useRepo<N extends Parameters<SyncOrm<M>["model"]>[0]>(name: N): UseRepo<ReturnType<SyncOrm<M>["model"]>>;
}

export function useSyncOrm<const M extends ModelsInput>(options: SyncOrmOptions<M>): UseSyncOrm<M>;
export const useSycnOrm: typeof useSyncOrm;
export function useRepo<M extends ModelsInput, N extends Parameters<SyncOrm<M>["model"]>[0]>(
  sync: UseSyncOrm<M>,
  name: N,
): UseRepo<ReturnType<SyncOrm<M>["model"]>>;
