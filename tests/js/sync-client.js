// Browser side of the sync tests: a todos model whose hooks talk to the test backend over HTTP.
import * as ms from "micro-sync";

export async function setup(dbName, intervalMs = 150) {
  const mutation = async (m) => {
    const res = await fetch("/api/push", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(m) });
    if (res.status === 422) throw Object.assign(new Error(await res.text()), { retryable: false });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  };
  const query = async () => (await fetch("/api/rows")).json();
  const todos = ms.defineModel("todos", { primaryKey: "id", sync: { mutation, query } });
  const db = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name: dbName }), models: { todos }, engine: { intervalMs } });
  window.db = db;
  window.statuses = [];
  db.model("todos").subscribeSyncStatus((s) => window.statuses.push(s));
  await db.ready;
}
