// W12 (micro-sync): going online with 1,000 pending writes, through the demo backend
// (www/backend.mjs, PGlite in memory). The writes are made while a custom network detector says
// offline (IndexedDB storage, one insert call per write); then the detector says online and the
// clock runs until the outbox is empty. `batched`: `sync.mutations` to /api/push-batch (100 per
// request); `single`: `sync.mutation` to /api/push, one request per write (the baseline).
import { createIndexedDbStorage, createSyncOrm, defineModel } from "micro-sync";

const stats = async () => (await fetch("/api/stats")).json();

async function post(path, body, signal) {
  const res = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
  const data = await res.json();
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
  return data;
}

export async function drainPending(mode, n, tag) {
  let online = false;
  const listeners = new Set();
  const detector = { isOnline: () => online, subscribe: (f) => (listeners.add(f), () => listeners.delete(f)) };
  const sync =
    mode === "batched"
      ? { mutations: async (entries, { signal }) => (await post("/api/push-batch", { mutations: entries }, signal)).results, batchSize: 100 }
      : { mutation: (m, { signal }) => post("/api/push", m, signal) };
  const notes = defineModel("tasks", { primaryKey: "id", sync });
  const db = createSyncOrm({ storage: createIndexedDbStorage({ name: `w12-${mode}-${tag}` }), models: { notes }, engine: { intervalMs: 60_000, networkDetector: detector } });
  const repo = db.model("tasks");
  for (let i = 0; i < n; i++) await repo.insert({ values: { id: `w12-${mode}-${tag}-${i}`, title: `write ${i}`, n: i } });
  const before = await stats();
  const pending = (await db.pending()).length;
  const t0 = performance.now();
  const drained = new Promise((resolve) => {
    const off = repo.subscribeSyncStatus((s) => s.pendingCount === 0 && (off(), resolve()));
  });
  online = true;
  for (const f of listeners) f(true);
  await drained;
  const ms = performance.now() - t0;
  const after = await stats();
  await db.close();
  if (pending !== n) throw new Error(`expected ${n} pending writes, found ${pending}`);
  if (after.received - before.received !== n) throw new Error(`the backend received ${after.received - before.received} of ${n} writes`);
  return { ms, requests: after.requests - before.requests };
}
