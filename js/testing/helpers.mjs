// What the tests share: the fmes binary and component from the environment,
// temporary `_COMM` folders, and the CLI as a subprocess.
//
// Outside test/ on purpose: `node --test test/` runs every .mjs under test/.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { openComm } from "../fmes.mjs";

/** The path in `$name`, which must name an existing file; else a clear error. */
function requiredFile(name, what) {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`${name} is not set: it must name ${what}`);
  }
  if (!fs.statSync(value, { throwIfNoEntry: false })?.isFile()) {
    throw new Error(`${name}=${value} is not a file: it must name ${what}`);
  }
  return path.resolve(value);
}

/** The `fmes` CLI. */
export const FMES_BIN = requiredFile(
  "FMES_BIN",
  "the fmes binary (`cargo build -p fmes`, then FMES_BIN=target/debug/fmes)",
);

/** The queue component. */
export const FMES_COMPONENT = requiredFile(
  "FMES_COMPONENT",
  "the queue component (`fmes component -o /tmp/fmes_queue.wasm`, then FMES_COMPONENT=/tmp/fmes_queue.wasm)",
);

/**
 * A new empty `_COMM` inside a new temporary folder, removed when the test
 * ends: `{ root, dir }`.
 */
export function tempComm(t) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "fmes-js-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, "_COMM");
  fs.mkdirSync(dir);
  return { root, dir };
}

/** openComm on `dir` with the component under test. */
export function open(dir, options = {}) {
  return openComm(dir, { component: FMES_COMPONENT, ...options });
}

/** Runs `fmes --comm <dir> args...`: `{ status, stdout, stderr }`. */
export function runFmes(dir, args, { input } = {}) {
  const env = { ...process.env };
  delete env.FMES_COMM;
  const result = spawnSync(FMES_BIN, ["--comm", dir, ...args], { env, input, encoding: "utf8" });
  if (result.error) {
    throw result.error;
  }
  return result;
}

/** Runs `fmes --comm <dir> args...`, which must succeed; returns its stdout. */
export function fmes(dir, ...args) {
  const result = runFmes(dir, args);
  if (result.status !== 0) {
    throw new Error(
      `fmes ${args.join(" ")} exited with ${result.status}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
  return result.stdout;
}

/** The JSON values of a `--json` output, one per line. */
export function jsonLines(text) {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line));
}

/** Names of the `*.json` files directly in `dir`, sorted. */
export function jsonFiles(dir) {
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith(".json"))
    .sort();
}
