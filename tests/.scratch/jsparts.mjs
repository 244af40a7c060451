// Times pieces of the JS path in isolation.
const src = await import("node:fs").then((fs) => fs.readFileSync("pkg/index.js", "utf8"));
const row = (i) => ({ id: "u" + i, name: "Ada " + i, email: `u${i}@x.com`, age: i % 80, status: "vip" });
const N = 200000;
let t = performance.now();
for (let i = 0; i < N; i++) JSON.stringify(row(i));
console.log("stringify µs", ((performance.now() - t) / N * 1000).toFixed(2));
const MAX_DEPTH = 64;
const describe = (v) => typeof v;
function checkJson(value, path, fail, skipUndefined = true) {
  const ancestors = [];
  const walk = (v) => {
    switch (typeof v) {
      case "string": case "boolean": return;
      case "number": if (!Number.isFinite(v)) fail(path, "x"); return;
      case "undefined": return fail(path, "u");
    }
    if (v === null) return;
    if (v instanceof Date) return;
    if (ancestors.includes(v)) return fail(path, "cycle");
    if (ancestors.length >= MAX_DEPTH) return fail(path, "deep");
    ancestors.push(v);
    if (Array.isArray(v)) { for (let i = 0; i < v.length; i++) { path.push(String(i)); walk(v[i]); path.pop(); } }
    else { const proto = Object.getPrototypeOf(v); if (proto !== Object.prototype && proto !== null) fail(path, "c");
      for (const k of Object.keys(v)) { if (v[k] === undefined && skipUndefined) continue; path.push(k); walk(v[k]); path.pop(); } }
    ancestors.pop();
  };
  walk(value);
}
t = performance.now();
for (let i = 0; i < N; i++) checkJson(row(i), [], () => { throw 1; });
console.log("walk µs", ((performance.now() - t) / N * 1000).toFixed(2));
t = performance.now();
for (let i = 0; i < N; i++) await new Promise((ok) => Promise.resolve(i).then(ok));
console.log("promise wrap µs", ((performance.now() - t) / N * 1000).toFixed(2));
