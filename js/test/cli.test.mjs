// JavaScript and the Rust CLI ($FMES_BIN) on one _COMM, in both directions.

import assert from "node:assert/strict";
import { test } from "node:test";

import { fmes, jsonLines, open, runFmes, tempComm } from "../testing/helpers.mjs";

/** A message as JavaScript, in the shape of a `fmes --json` line. */
function asCliLine(message) {
  return { ...JSON.parse(message.raw), file: message.file };
}

test("JavaScript sends, the CLI receives", async (t) => {
  const { dir } = tempComm(t);
  const comm = await open(dir);
  comm.init(["planner", "coder"]);
  const task = comm.send({
    from: "planner",
    to: "coder",
    priority: 2,
    payload: { task: "add --limit to receive", files: ["src/cli/receive.rs"], unicode: "✓" },
  });
  const report = comm.send({ from: "planner", to: "coder", type: "REPORT", payload: "done" });

  const lines = jsonLines(fmes(dir, "--json", "receive", "coder"));
  assert.deepEqual(lines, [asCliLine(task), asCliLine(report)]);
  assert.equal(fmes(dir, "--json", "peek", "coder").trim(), "2");

  // The CLI archives what JavaScript sent.
  fmes(dir, "archive", "coder", task.file);
  assert.deepEqual(
    comm.receive("coder").messages.map((m) => m.id),
    [report.id],
  );
});

test("the CLI sends, JavaScript receives", async (t) => {
  const { dir } = tempComm(t);
  fmes(dir, "init", "planner", "coder");
  const comm = await open(dir);
  assert.deepEqual(comm.agents(), ["coder", "planner"]);

  const [sent] = jsonLines(
    fmes(dir, "--json", "send", "--from", "coder", "--to", "planner", "--type", "REPORT", "--priority", "4", '{"ok": true, "n": [1, 2]}'),
  );
  const { messages } = comm.receive("planner");
  assert.equal(messages.length, 1);
  const [received] = messages;
  assert.deepEqual(asCliLine(received), sent);
  assert.equal(received.from, "coder");
  assert.equal(received.type, "REPORT");
  assert.equal(received.priority, 4);
  assert.deepEqual(received.payload, { ok: true, n: [1, 2] });

  assert.equal(comm.archive("planner", received.file), received.file);
  assert.equal(fmes(dir, "--json", "peek", "planner").trim(), "0");
});

test("both writers in one mailbox: both readers see one order", async (t) => {
  const { dir } = tempComm(t);
  const comm = await open(dir);
  comm.init(["a", "b"]);
  comm.send({ from: "a", to: "b", payload: "js, priority 5" });
  fmes(dir, "send", "--from", "a", "--to", "b", "--priority", "1", '"cli, priority 1"');
  comm.send({ from: "a", to: "b", priority: 1, payload: "js, priority 1" });
  fmes(dir, "send", "--from", "a", "--to", "b", '"cli, priority 5"');

  const fromCli = jsonLines(fmes(dir, "--json", "receive", "b"));
  const fromJs = comm.receive("b").messages;
  assert.deepEqual(
    fromJs.map((m) => m.payload),
    ["cli, priority 1", "js, priority 1", "js, priority 5", "cli, priority 5"],
  );
  assert.deepEqual(fromJs.map(asCliLine), fromCli);
});

test("claims cross over: the CLI claims what JavaScript sent, JavaScript acks what the CLI claimed", async (t) => {
  const { dir } = tempComm(t);
  const comm = await open(dir);
  comm.init(["planner", "worker"]);
  const first = comm.send({ from: "planner", to: "worker", payload: 1 });
  const second = comm.send({ from: "planner", to: "worker", payload: 2 });

  const [claimed] = jsonLines(fmes(dir, "--json", "claim", "worker", "--consumer", "cli-worker", "--lease", "10m"));
  assert.equal(claimed.id, first.id);
  assert.equal(claimed.deliveries, 1);

  // JavaScript cannot take it, and cannot settle it under another name.
  const js = comm.claim("worker", "js-worker", { limit: 10 });
  assert.deepEqual(
    js.claimed.map((c) => c.message.id),
    [second.id],
  );
  assert.throws(() => comm.ack("worker", "js-worker", claimed.file), { code: "not-found" });

  // The consumer name is what counts, not the runtime holding it.
  assert.equal(comm.ack("worker", "cli-worker", claimed.file), first.file);
  const acked = runFmes(dir, ["ack", "worker", "--consumer", "js-worker", js.claimed[0].message.file]);
  assert.equal(acked.status, 0, acked.stderr);

  const [stats] = jsonLines(fmes(dir, "--json", "stats")).filter((s) => s.agent === "worker");
  assert.deepEqual(stats, { agent: "worker", ready: 0, in_flight: 0, dead: 0, archived: 2, oldest_ready_age_ms: null });
});

test("a CLI error and a JavaScript error say the same thing", async (t) => {
  const { dir } = tempComm(t);
  const comm = await open(dir);
  comm.init(["planner", "coder"]);
  const cli = runFmes(dir, ["send", "--from", "planner", "--to", "nobody", "{}"]);
  assert.equal(cli.status, 1);
  assert.match(cli.stderr, /unknown agent "nobody".*known agents: coder, planner/);
  assert.throws(() => comm.send({ from: "planner", to: "nobody", payload: {} }), {
    code: "unknown-agent",
    details: { name: "nobody", known: ["coder", "planner"] },
  });
});
