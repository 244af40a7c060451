// The demo's models and the hooks that reach the backend in backend.mjs.
import { z } from "zod";
import { belongsTo, defineModel, hasMany } from "micro-sync";

/** The page's "offline" switch: a custom network detector, and hooks fail while it is on. */
export const network = {
  forcedOffline: false,
  listeners: new Set(),
  isOnline() {
    return !this.forcedOffline && navigator.onLine;
  },
  subscribe(fn) {
    const tell = () => fn(this.isOnline());
    this.listeners.add(tell);
    addEventListener("online", tell);
    addEventListener("offline", tell);
    return () => {
      this.listeners.delete(tell);
      removeEventListener("online", tell);
      removeEventListener("offline", tell);
    };
  },
  set(offline) {
    this.forcedOffline = offline;
    for (const fn of this.listeners) fn();
  },
};

async function post(path, body, signal) {
  if (!network.isOnline()) throw new Error("offline: the backend is unreachable");
  // `signal` is aborted if micro-sync gives up waiting (sync.timeoutMs), which cancels the request.
  const res = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
  const data = await res.json().catch(() => ({}));
  // 4xx means the backend will never accept this mutation: a rejection, not a retry.
  if (res.status >= 400 && res.status < 500) throw Object.assign(new Error(data.error ?? `HTTP ${res.status}`), { retryable: false });
  if (!res.ok) throw new Error(data.error ?? `HTTP ${res.status}`);
  return data;
}

const hooks = (model) => ({
  // Up to 100 consecutive writes per request; the backend answers each: done or reject.
  mutations: async (entries, { signal }) => (await post("/api/push-batch", { mutations: entries }, signal)).results,
  query: (query, { signal }) => post("/api/pull", { model, query }, signal),
  timeoutMs: 10_000,
});

export const projects = defineModel("projects", {
  primaryKey: "id",
  schema: z.object({ id: z.string(), name: z.string().min(1, "Name the project"), color: z.string().default("#2f6fed") }),
  sync: hooks("projects"),
});

export const tasks = defineModel("tasks", {
  primaryKey: "id",
  indexes: ["projectId", "done"],
  schema: z.object({
    id: z.string(),
    projectId: z.string(),
    title: z.string().trim().min(1, "Give the task a title"),
    done: z.boolean().default(false),
    priority: z.number().int().min(1).max(3).default(2),
    createdAt: z.string(),
    updatedAt: z.string().optional(),
  }),
  // When a pull brings a task this tab also changed, the newer edit (by updatedAt) wins; the
  // fields of writes not yet pushed stay on top either way.
  conflict: { lww: "updatedAt" },
  sync: hooks("tasks"),
});

projects.relations = { tasks: hasMany(tasks, "id", "projectId") };
tasks.relations = { project: belongsTo(projects, "projectId", "id") };
