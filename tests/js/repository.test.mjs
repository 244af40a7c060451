// Runs the repository behaviour suite (suite.js) in headless Chromium against both storages.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { browserSuite } from "./harness.mjs";

await browserSuite("suite.js", { test, before, after, assert, minCases: 7 });
