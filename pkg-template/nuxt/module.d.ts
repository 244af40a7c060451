import type { EngineOptions } from "../index.js";

/** Options of `micro-sync/nuxt`, under `microSync` in nuxt.config (or inline in `modules`). */
export interface MicroSyncNuxtOptions {
  /** The module exporting your models (`export const models = { ... }`), resolved with Nuxt's aliases. Default `"~/models"`. */
  models?: string;
  /** The IndexedDB database's name. Default `"micro-sync"`. */
  databaseName?: string;
  /** The sync engine's options (`intervalMs`), or `false` to leave it stopped. Default `{}` (started). */
  engine?: Omit<EngineOptions, "networkDetector"> | false;
  /** Auto-import useQuery, useRepo, useSyncOrm, defineSyncModel, defineRelations, hasMany, hasOne, belongsTo. Default `true`. */
  autoImports?: boolean;
}

/** The Nuxt module: `modules: ["micro-sync/nuxt"]`. */
declare function microSyncModule(inlineOptions: MicroSyncNuxtOptions | undefined, nuxt: unknown): void;
declare namespace microSyncModule {
  const meta: { name: string; configKey: string };
}
export default microSyncModule;

declare module "@nuxt/schema" {
  interface NuxtConfig {
    microSync?: MicroSyncNuxtOptions;
  }
  interface NuxtOptions {
    microSync?: MicroSyncNuxtOptions;
  }
}
