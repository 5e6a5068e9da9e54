// What goes wrong, and how it is reported: queue errors as FmesError with the
// WIT case and its details; wrong arguments as TypeError; a missing folder or
// component as an Error that says what to do.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { FmesError, openComm } from "../fmes.mjs";
import { FMES_COMPONENT, open, tempComm } from "../testing/helpers.mjs";

async function openWith(t, agents) {
  const { root, dir } = tempComm(t);
  const comm = await open(dir);
  comm.init(agents);
  return { root, dir, comm };
}

/**
 * Asserts `fn` throws an FmesError with `code` and `details` (a RegExp
 * matches details that are text); returns the error.
 */
function queueError(fn, code, details) {
  let thrown;
  assert.throws(fn, (error) => {
    thrown = error;
    return true;
  });
  assert.ok(thrown instanceof FmesError, `expected an FmesError, got ${thrown}`);
  assert.ok(thrown instanceof Error);
  assert.equal(thrown.name, "FmesError");
  assert.equal(thrown.code, code);
  if (details instanceof RegExp) {
    assert.match(thrown.details, details);
  } else {
    assert.deepEqual(thrown.details, details);
  }
  assert.equal(thrown.message.slice(0, code.length + 2), `${code}: `);
  return thrown;
}

test("each queue error arrives as its WIT case with details", async (t) => {
  const { dir, comm } = await openWith(t, ["planner", "coder"]);
  const send = (fields) => () => comm.send({ from: "planner", to: "coder", payload: {}, ...fields });

  const unknown = queueError(send({ to: "nobody" }), "unknown-agent", {
    name: "nobody",
    known: ["coder", "planner"],
  });
  assert.equal(unknown.message, "unknown-agent: no mailbox for nobody (known agents: coder, planner)");

  queueError(send({ from: "../planner" }), "invalid-agent-name", "../planner");
  queueError(send({ priority: 10 }), "invalid-priority", 10);
  queueError(send({ priority: 0 }), "invalid-priority", 0);
  // Beyond the WIT's u8: still invalid-priority, never wrapped around into 1..9.
  queueError(send({ priority: 300 }), "invalid-priority", 300);
  queueError(send({ priority: 261 }), "invalid-priority", 261);
  queueError(send({ type: "NOT A TYPE" }), "invalid-type", "NOT A TYPE");
  queueError(send({ id: "a/b" }), "invalid-message-id", "a/b");
  const tooLarge = queueError(send({ payload: "x".repeat(20), maxPayloadBytes: 10 }), "payload-too-large", {
    size: 22,
    limit: 10,
  });
  assert.equal(tooLarge.message, "payload-too-large: the payload is 22 bytes, over the limit of 10");
  queueError(() => comm.receive("To_Coder/.."), "invalid-agent-name", "To_Coder/..");

  queueError(() => comm.archive("coder", "../ARCHIVE/x.json"), "invalid-file-name", "../ARCHIVE/x.json");
  queueError(() => comm.archive("coder", "5_missing.json"), "not-found", /5_missing\.json/);

  queueError(() => comm.claim("coder", "two words"), "invalid-consumer", "two words");
  queueError(() => comm.ack("coder", "w1", "5_never_claimed.json"), "not-found", /5_never_claimed\.json/);

  // A mailbox path that is a file, not a folder.
  fs.writeFileSync(path.join(dir, "To_Ghost"), "");
  queueError(() => comm.init(["ghost"]), "invalid-layout", /To_Ghost/);
});

test("arguments JavaScript cannot turn into the call are TypeErrors", async (t) => {
  const { comm } = await openWith(t, ["a", "b"]);
  assert.throws(() => comm.send({ from: "a", to: "b", payload: undefined }), {
    name: "TypeError",
    message: "fmes: the payload must be a JSON value, got undefined",
  });
  assert.throws(() => comm.send({ from: "a", to: "b", payload: () => 1 }), TypeError);
  assert.throws(() => comm.send({ from: "a", to: "b", payload: 1n }), TypeError);
  assert.throws(() => comm.send({ to: "b", payload: 1 }), {
    name: "TypeError",
    message: "fmes: from must be a string, got undefined",
  });
  assert.throws(() => comm.send({ from: "a", to: "b", payload: 1, priority: 2.5 }), {
    name: "TypeError",
    message: "fmes: priority must be an integer from 1 to 9, got 2.5",
  });
  assert.throws(() => comm.send({ from: "a", to: "b", payload: 1, priority: "3" }), TypeError);
  assert.throws(() => comm.receive("b", { limit: 2 ** 32 }), {
    name: "TypeError",
    message: "fmes: limit must be an integer from 0 to 4294967295, got 4294967296",
  });
  assert.throws(() => comm.claim("b", "w1", { leaseMs: -1 }), {
    name: "TypeError",
    message: "fmes: leaseMs must be an integer from 0 to 18446744073709551615, got -1",
  });
  assert.throws(() => comm.ack("b", "w1"), { name: "TypeError", message: "fmes: file must be a string, got undefined" });
  assert.throws(() => comm.init("b"), TypeError);
  assert.throws(() => comm.configure({ maxDeliveries: -1 }), TypeError);
  assert.throws(() => comm.configure({ maxDelivery: 3 }), {
    name: "TypeError",
    message: "fmes: unknown setting maxDelivery (known: durable, maxDeliveries, origin)",
  });
  assert.throws(() => comm.cleanup({ maxAgeSeconds: 1.5 }), TypeError);
  assert.throws(() => comm.purgeDeadLetters("b", { file: "x.json", all: true }), TypeError);
  assert.throws(() => comm.purgeDeadLetters(null, { file: "x.json" }), TypeError);
  // Nothing was sent by any of them.
  assert.equal(comm.peek("b"), 0);
});

test("openComm says what is missing: the folder, or the component", async (t) => {
  const { root, dir } = tempComm(t);

  const absent = path.join(root, "absent", "_COMM");
  await assert.rejects(open(absent), {
    message: `fmes: the _COMM folder ${absent} does not exist (pass { create: true } to create it)`,
  });
  const comm = await open(absent, { create: true });
  assert.deepEqual(comm.init(["a"]), ["a"]);
  assert.ok(fs.statSync(path.join(absent, "To_A")).isDirectory());

  await assert.rejects(open(dir, { durabel: false }), { name: "TypeError", message: /unknown setting durabel/ });

  const file = path.join(root, "a-file");
  fs.writeFileSync(file, "");
  await assert.rejects(open(file), { message: `fmes: the _COMM folder ${file} is not a directory` });

  const saved = process.env.FMES_COMPONENT;
  delete process.env.FMES_COMPONENT;
  try {
    await assert.rejects(openComm(dir), /no component: pass openComm\(dir, \{ component: .* or set FMES_COMPONENT/);
    process.env.FMES_COMPONENT = FMES_COMPONENT;
    // The environment variable is the default.
    const fromEnv = await openComm(dir);
    assert.deepEqual(fromEnv.agents(), []);
  } finally {
    process.env.FMES_COMPONENT = saved;
  }

  const nowhere = path.join(root, "nowhere.wasm");
  await assert.rejects(openComm(dir, { component: nowhere }), {
    message: new RegExp(`^fmes: cannot read the component ${nowhere}: ENOENT`),
  });

  const notWasm = path.join(root, "not.wasm");
  fs.writeFileSync(notWasm, "not a component");
  await assert.rejects(openComm(dir, { component: notWasm }), /^Error: fmes: jco [\d.]+ could not transpile/);
});
