const ms = await import(process.argv[2] ?? "../../pkg/index.js");
const results = { insert: [], update: [] };
for (let rep = 0; rep < 5; rep++) {
  const users = ms.defineModel("users", { primaryKey: "id", indexes: ["status"] });
  const db = ms.createSyncOrm({ storage: ms.createMemoryStorage(), models: { users } });
  await db.model("users").count();
  const N = 5000;
  let t = performance.now();
  for (let i = 0; i < N; i++) await db.model("users").insert({ values: { id: "u" + i, name: "Ada " + i, email: `u${i}@x.com`, age: i % 80, status: "vip" } });
  results.insert.push((performance.now() - t) / N * 1000);
  t = performance.now();
  for (let i = 0; i < N; i++) await db.model("users").update({ where: { id: "u" + i }, values: { age: 1 } });
  results.update.push((performance.now() - t) / N * 1000);
  await db.close();
}
const min = (xs) => Math.min(...xs).toFixed(1);
console.log(`µs/op insert ${min(results.insert)} update ${min(results.update)}`);
