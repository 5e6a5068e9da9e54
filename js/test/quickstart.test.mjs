// examples/quickstart.mjs, the README's JavaScript example, run as written:
// `node quickstart.mjs` in an empty folder with FMES_COMPONENT set.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { FMES_COMPONENT, fmes, jsonLines, jsonFiles } from "../testing/helpers.mjs";

const EXAMPLE = fileURLToPath(new URL("../examples/quickstart.mjs", import.meta.url));

test("the quickstart runs and leaves what it says in _COMM", (t) => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), "fmes-quickstart-"));
  t.after(() => fs.rmSync(cwd, { recursive: true, force: true }));

  const run = spawnSync(process.execPath, [EXAMPLE], {
    cwd,
    env: { ...process.env, FMES_COMPONENT },
    encoding: "utf8",
  });
  assert.equal(run.status, 0, `quickstart failed\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
  assert.equal(run.stderr, "");
  assert.equal(
    run.stdout,
    [
      'TASK from planner: {"task":"add --limit to receive"}',
      "waiting for planner: 1",
      "unknown-agent: known agents are coder, planner",
      "",
    ].join("\n"),
  );

  // The CLI sees the same: the task acknowledged (archived), the report waiting.
  const dir = path.join(cwd, "_COMM");
  const archived = jsonFiles(path.join(dir, "ARCHIVE"));
  assert.equal(archived.length, 1);
  const task = JSON.parse(fs.readFileSync(path.join(dir, "ARCHIVE", archived[0]), "utf8"));
  assert.deepEqual(
    [task.from, task.to, task.type, task.priority, task.payload],
    ["planner", "coder", "TASK", 3, { task: "add --limit to receive" }],
  );
  const [report, ...more] = jsonLines(fmes(dir, "--json", "receive", "planner"));
  assert.deepEqual(more, []);
  assert.deepEqual(
    [report.from, report.type, report.payload],
    ["coder", "REPORT", { done: task.id }],
  );
  assert.equal(fmes(dir, "--json", "peek", "coder").trim(), "0");
});
