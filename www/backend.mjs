// The demo backend: the server side of micro-sync's two hooks, over a real database.
//
//   POST /api/push  { mutationId, model, action, query }  applies one mutation, once: the
//                   mutation id is recorded in the same transaction, so a repeated id is
//                   acknowledged without being applied again.
//   POST /api/push-batch { mutations: [...] }             applies a batch in ONE transaction,
//                   each mutation once, in order; answers { results: [{ status, error? }] }, one
//                   per mutation ("done", or "reject" for one the backend will never accept).
//   POST /api/pull  { model, query }                      rows for a micro-sync query shape.
//   GET  /api/stats                                        counts, for the demo and its tests.
//
// Storage: PGlite (Postgres compiled to WebAssembly, in-process) by default, in www/.data, or
// PostgreSQL when DATABASE_URL is set. Malformed requests get a 4xx with a message.
import { createMemoryStorage, createSyncOrm, defineModel } from "../pkg/index.js";

export const MODELS = { projects: "id", tasks: "id" };
const FORBIDDEN = /forbidden/i;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function connect() {
  if (process.env.DATABASE_URL) {
    const { default: pg } = await import("pg");
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
    return {
      query: (sql, params) => pool.query(sql, params),
      async transaction(fn) {
        const client = await pool.connect();
        try {
          await client.query("begin");
          const out = await fn({ query: (sql, params) => client.query(sql, params) });
          await client.query("commit");
          return out;
        } catch (e) {
          await client.query("rollback");
          throw e;
        } finally {
          client.release();
        }
      },
      close: () => pool.end(),
    };
  }
  const { PGlite } = await import("@electric-sql/pglite");
  const db = new PGlite(process.env.DEMO_DATA_DIR ?? new URL("./.data", import.meta.url).pathname);
  return { query: (sql, params) => db.query(sql, params), transaction: (fn) => db.transaction((tx) => fn(tx)), close: () => db.close() };
}

export async function createBackend() {
  const db = await connect();
  await db.query(`create table if not exists rows (model text not null, id text not null, data jsonb not null, primary key (model, id))`);
  await db.query(`create table if not exists mutations (mutation_id text primary key, model text not null, action text not null, applied_at timestamptz not null default now())`);
  let delayMs = 0; // set by tests to keep pushes in flight
  let received = 0; // mutations received (repeats included)
  let requests = 0; // push requests (one mutation, or a batch)

  const keysOf = (m) => {
    const keys = m.query?.where?.[MODELS[m.model]]?.in;
    if (!Array.isArray(keys) || !keys.every((k) => typeof k === "string" || typeof k === "number")) {
      throw new HttpError(400, `${m.action} needs query.where.${MODELS[m.model]}.in: an array of keys`);
    }
    return keys.map(String);
  };

  /** Throws an HttpError (4xx) for a mutation the backend will never accept. */
  function check(m) {
    if (!m || typeof m !== "object") throw new HttpError(400, "a mutation must be a JSON object");
    if (typeof m.mutationId !== "string" || !m.mutationId) throw new HttpError(400, "mutationId must be a non-empty string");
    if (!(m.model in MODELS)) throw new HttpError(400, `unknown model ${JSON.stringify(m.model)}`);
    if (!["insert", "update", "delete"].includes(m.action)) throw new HttpError(400, `unknown action ${JSON.stringify(m.action)}`);
    if (m.model === "tasks" && FORBIDDEN.test(JSON.stringify(m.query?.values ?? ""))) {
      throw new HttpError(422, "task titles containing “forbidden” are not accepted");
    }
    const pk = MODELS[m.model];
    if (m.action === "insert") {
      const values = m.query?.values;
      if (!Array.isArray(values) || !values.every((r) => r && typeof r === "object" && (typeof r[pk] === "string" || typeof r[pk] === "number"))) {
        throw new HttpError(400, `insert needs query.values: rows with a "${pk}"`);
      }
    } else {
      keysOf(m);
      const values = m.query?.values;
      if (m.action === "update" && (!values || typeof values !== "object" || Array.isArray(values))) throw new HttpError(400, "update needs query.values: an object");
    }
  }

  /** Applies a checked mutation in transaction `tx`, unless its id was applied before. */
  async function apply(tx, m) {
    const seen = await tx.query(`insert into mutations (mutation_id, model, action) values ($1, $2, $3) on conflict do nothing returning mutation_id`, [m.mutationId, m.model, m.action]);
    if (seen.rows.length === 0) return { applied: false, duplicate: true };
    const pk = MODELS[m.model];
    if (m.action === "insert") {
      for (const r of m.query.values) {
        await tx.query(`insert into rows (model, id, data) values ($1, $2, $3) on conflict (model, id) do update set data = excluded.data`, [m.model, String(r[pk]), JSON.stringify(r)]);
      }
    } else if (m.action === "update") {
      for (const id of keysOf(m)) await tx.query(`update rows set data = data || $3::jsonb where model = $1 and id = $2`, [m.model, id, JSON.stringify(m.query.values)]);
    } else {
      for (const id of keysOf(m)) await tx.query(`delete from rows where model = $1 and id = $2`, [m.model, id]);
    }
    return { applied: true };
  }

  async function push(m) {
    check(m);
    received++;
    requests++;
    if (delayMs) await new Promise((ok) => setTimeout(ok, delayMs));
    return db.transaction((tx) => apply(tx, m));
  }

  async function pushBatch(body) {
    const list = body?.mutations;
    if (!Array.isArray(list) || list.length === 0 || list.length > 1000) throw new HttpError(400, "mutations must be an array of 1 to 1,000 mutations");
    received += list.length;
    requests++;
    if (delayMs) await new Promise((ok) => setTimeout(ok, delayMs));
    return db.transaction(async (tx) => {
      const results = [];
      for (const m of list) {
        try {
          check(m);
        } catch (e) {
          if (!(e instanceof HttpError)) throw e;
          results.push({ status: "reject", error: e.message });
          continue;
        }
        await apply(tx, m);
        results.push({ status: "done" });
      }
      return { results };
    });
  }

  // The query shape is answered by micro-sync's own engine over the model's rows.
  async function pull(body) {
    if (!body || !(body.model in MODELS)) throw new HttpError(400, `unknown model ${JSON.stringify(body?.model)}`);
    const { rows } = await db.query(`select data from rows where model = $1`, [body.model]);
    const model = defineModel(body.model, { primaryKey: MODELS[body.model] });
    const orm = createSyncOrm({ storage: createMemoryStorage(), models: [model] });
    try {
      if (rows.length) await orm.model(body.model).insert({ values: rows.map((r) => (typeof r.data === "string" ? JSON.parse(r.data) : r.data)) });
      const { relations, ...query } = body.query ?? {};
      return await orm.model(body.model).select(query);
    } catch (e) {
      if (e.name === "QueryError" || e.name === "ValidationError") throw new HttpError(400, e.message);
      throw e;
    } finally {
      orm.close();
    }
  }

  async function stats() {
    const m = await db.query(`select model, count(*)::int as n from mutations group by model`);
    const r = await db.query(`select model, count(*)::int as n from rows group by model`);
    return { mutations: Object.fromEntries(m.rows.map((x) => [x.model, x.n])), rows: Object.fromEntries(r.rows.map((x) => [x.model, x.n])), received, requests };
  }

  async function readJson(req) {
    let text = "";
    for await (const chunk of req) {
      text += chunk;
      if (text.length > 5_000_000) throw new HttpError(413, "body too large");
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpError(400, "body is not valid JSON");
    }
  }

  /** Node http handler; returns true when it answered. */
  async function handle(req, res) {
    const path = new URL(req.url, "http://x").pathname;
    if (!path.startsWith("/api/")) return false;
    const send = (status, body) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    try {
      if (path === "/api/push" && req.method === "POST") send(200, await push(await readJson(req)));
      else if (path === "/api/push-batch" && req.method === "POST") send(200, await pushBatch(await readJson(req)));
      else if (path === "/api/pull" && req.method === "POST") send(200, await pull(await readJson(req)));
      else if (path === "/api/stats" && req.method === "GET") send(200, await stats());
      else if (path === "/api/test/delay" && req.method === "POST") send(200, { delayMs: (delayMs = Number((await readJson(req)).ms) || 0) });
      else send(404, { error: `no such endpoint: ${req.method} ${path}` });
    } catch (e) {
      send(e.status ?? 500, { error: e.status ? e.message : `internal error: ${e.message}` });
    }
    return true;
  }

  return { handle, stats, close: () => db.close(), query: (s, p) => db.query(s, p) };
}
