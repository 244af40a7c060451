// Runs the guarantees suite (guarantees.js: SPEC 9) in headless Chromium against both storages.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { browserSuite } from "./harness.mjs";

await browserSuite("guarantees.js", { test, before, after, assert, minCases: 10 });
