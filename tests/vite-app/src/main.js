// A small app as a user writes it: the package imported by name, built by Vite with no wasm plugin.
import { createSyncOrm, createIndexedDbStorage, defineModel } from "micro-sync";

const notes = defineModel("notes", { primaryKey: "id" });
const db = createSyncOrm({ storage: createIndexedDbStorage({ name: "vite-app" }), models: { notes } });
try {
  await db.model("notes").insert({ values: { id: 1, text: "built with vite" } });
  const rows = await db.model("notes").select({ where: { text: { like: "%vite" } } });
  window.result = { rows };
} catch (e) {
  window.result = { error: `${e.name}: ${e.message}` };
}
document.getElementById("out").textContent = JSON.stringify(window.result);
