// Worst-case inputs for micro-sync (SPEC 9: nothing an app or a backend sends may block the page
// for long). Run in the page by `make bench`; prints times, asserts only the answers.
import * as ms from "micro-sync";

const time = async (f) => {
  const t = performance.now();
  const out = await f();
  return [performance.now() - t, out];
};

/** The longest stretch the main thread was busy while `f` ran (long tasks, or timer gaps). */
async function longestBlock(f) {
  let longest = 0;
  let last = performance.now();
  let running = true;
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setTimeout(() => channel.port2.postMessage(0), 0);
  };
  channel.port2.postMessage(0);
  const [total, out] = await time(f);
  running = false;
  channel.port1.close();
  return { total, longest: Math.max(longest, performance.now() - last), out };
}

export async function runWorst() {
  const out = {};
  const plain = ms.defineModel("plain", { primaryKey: "id" });
  const db = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { plain } });
  const repo = db.model("plain");

  // like: a 10,000-character pattern over one 100,000-character value.
  const value = "ab".repeat(50_000);
  await repo.insert({ values: { id: 0, s: value } });
  const pattern = `%${"ab".repeat(4_998)}c%`; // 9,999 characters, a near-match everywhere
  let [ms1, rows] = await time(() => repo.select({ where: { s: { like: pattern } }, fields: ["id"] }));
  if (rows.length !== 0) throw new Error("like answer is wrong");
  out.like10k = ms1;

  // like: two ~5,000-character segments over 200 rows of 20,000 characters: the second nearly
  // matches at every place and never fits (each run of "xy" is 2 characters too short).
  await repo.delete({ where: {} });
  const seg = "xy".repeat(2_495);
  const almost = seg + `${"xy".repeat(2_494)}z`.repeat(3);
  await repo.insert({ values: Array.from({ length: 200 }, (_, i) => ({ id: i, s: almost })) });
  [ms1, rows] = await time(() => repo.select({ where: { s: { like: `%${seg}%${seg}%` } }, fields: ["id"] }));
  if (rows.length !== 0) throw new Error("segment like answer is wrong");
  out.like5kx200 = ms1;

  // or: the largest allowed (1,000 branches) over 10,000 rows; in: 100,000 values.
  await repo.delete({ where: {} });
  await repo.insert({ values: Array.from({ length: 10_000 }, (_, i) => ({ id: i, n: i % 997, s: `v${i}` })) });
  const or = Array.from({ length: 999 }, (_, i) => ({ s: `v${i * 7}` }));
  [ms1, rows] = await time(() => repo.select({ where: { or }, fields: ["id"] }));
  if (rows.length !== 999) throw new Error(`or answer is wrong: ${rows.length}`);
  out.or1000 = ms1;
  const mixed = Array.from({ length: 999 }, (_, i) => (i % 2 ? { s: `v${i * 7}` } : { n: 1_000 + i }));
  [ms1, rows] = await time(() => repo.select({ where: { or: mixed }, fields: ["id"] }));
  if (rows.length !== 499) throw new Error(`mixed or answer is wrong: ${rows.length}`);
  out.or1000mixed = ms1;
  const list = Array.from({ length: 100_000 }, (_, i) => i * 3);
  [ms1, rows] = await time(() => repo.count({ where: { id: { in: list } } }));
  if (rows !== 3_334) throw new Error(`in answer is wrong: ${rows}`);
  out.in100k = ms1;
  await db.close();

  // A 50,000-row pull into IndexedDB: total time, and the longest the page was blocked.
  const remote = Array.from({ length: 50_000 }, (_, i) => ({ id: `r${i}`, name: `row ${i}`, n: i }));
  const big = ms.defineModel("big", { primaryKey: "id", sync: { query: async () => remote } });
  const pdb = ms.createSyncOrm({ storage: ms.createIndexedDbStorage({ name: `worst-${Math.random()}` }), models: { big } });
  await pdb.ready;
  const pull = await longestBlock(() => pdb.model("big").sync({ limit: 1 }));
  if ((await pdb.model("big").count()) !== 50_000) throw new Error("pull answer is wrong");
  out.pull50k = pull.total;
  out.pull50kBlock = pull.longest;
  await pdb.close();
  return out;
}
