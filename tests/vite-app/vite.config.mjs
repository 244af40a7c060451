import { defineConfig } from "vite";
// Nothing micro-sync specific: the point is that the package needs no wasm plugin.
export default defineConfig({ base: "./", logLevel: "warn", build: { outDir: "dist", emptyOutDir: true } });
