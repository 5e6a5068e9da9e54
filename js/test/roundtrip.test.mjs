// Every operation of the wrapper against the component, each test in its own _COMM.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { jsonFiles, open, tempComm } from "../testing/helpers.mjs";

async function openWith(t, agents) {
  const { root, dir } = tempComm(t);
  const comm = await open(dir);
  comm.init(agents);
  return { root, dir, comm };
}

test("init creates the mailboxes once; agents lists them", async (t) => {
  const { dir } = tempComm(t);
  const comm = await open(dir);
  assert.deepEqual(comm.agents(), []);
  assert.deepEqual(comm.init(["planner", "Coder"]), ["planner", "Coder"]);
  assert.deepEqual(comm.init(["planner", "reviewer"]), ["reviewer"]);
  assert.deepEqual(comm.agents(), ["coder", "planner", "reviewer"]);
  assert.ok(fs.statSync(path.join(dir, "To_Coder")).isDirectory());
  assert.ok(fs.statSync(path.join(dir, "ARCHIVE")).isDirectory());
});

test("send, receive, peek and archive a message", async (t) => {
  const { dir, comm } = await openWith(t, ["planner", "coder"]);
  const sent = comm.send({ from: "planner", to: "coder", priority: 3, payload: { task: "add --limit" } });
  assert.equal(sent.from, "planner");
  assert.equal(sent.to, "coder");
  assert.equal(sent.type, "TASK");
  assert.equal(sent.priority, 3);
  assert.match(sent.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.match(sent.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(sent.file, /^3_\d{8}_\d{6}\.\d{9}Z_planner_TASK_[0-9a-f]{12}\.json$/);
  assert.deepEqual(sent.payload, { task: "add --limit" });

  // The file on disk is the message as stored.
  const stored = JSON.parse(fs.readFileSync(path.join(dir, "To_Coder", sent.file), "utf8"));
  assert.deepEqual(stored, JSON.parse(sent.raw));
  assert.deepEqual(stored, {
    id: sent.id,
    from: "planner",
    to: "coder",
    type: "TASK",
    priority: 3,
    timestamp: sent.timestamp,
    payload: { task: "add --limit" },
  });

  assert.equal(comm.peek("coder"), 1);
  const { messages, malformed } = comm.receive("coder");
  assert.deepEqual(messages, [sent]);
  assert.deepEqual(malformed, []);
  // Receiving does not remove.
  assert.equal(comm.peek("coder"), 1);

  assert.equal(comm.archive("coder", sent.file), sent.file);
  assert.equal(comm.peek("coder"), 0);
  assert.deepEqual(jsonFiles(path.join(dir, "ARCHIVE")), [sent.file]);
});

test("payloads are JSON values and come back equal", async (t) => {
  const { comm } = await openWith(t, ["a", "b"]);
  const payloads = [
    { nested: { list: [1, 2.5, "three", null, true] } },
    "plain text",
    42,
    null,
    false,
    [],
    { unicode: "größe ✓ 日本", quote: '"\\' },
  ];
  const files = payloads.map((payload) => comm.send({ from: "a", to: "b", payload }).file);
  const received = comm.receive("b").messages;
  // One sender's messages keep their order.
  assert.deepEqual(
    received.map((m) => m.file),
    files,
  );
  assert.deepEqual(
    received.map((m) => m.payload),
    payloads,
  );
});

test("delivery order is priority first, then send order; type and limit filter", async (t) => {
  const { comm } = await openWith(t, ["planner", "coder"]);
  const low = comm.send({ from: "planner", to: "coder", priority: 9, payload: "low" });
  const report = comm.send({ from: "planner", to: "coder", type: "REPORT", payload: "report" });
  const urgent = comm.send({ from: "planner", to: "coder", priority: 1, payload: "urgent" });
  const task = comm.send({ from: "planner", to: "coder", payload: "task" });
  const ids = (messages) => messages.map((m) => m.id);

  assert.deepEqual(ids(comm.receive("coder").messages), [urgent.id, report.id, task.id, low.id]);
  assert.deepEqual(ids(comm.receive("coder", { type: "REPORT" }).messages), [report.id]);
  assert.deepEqual(ids(comm.receive("coder", { limit: 2 }).messages), [urgent.id, report.id]);
  assert.deepEqual(ids(comm.receive("coder", { type: "TASK", limit: 1 }).messages), [urgent.id]);
});

test("fields other writers add are kept in raw; malformed files are reported, not fatal", async (t) => {
  const { dir, comm } = await openWith(t, ["claude", "cursor"]);
  const mailbox = path.join(dir, "To_Cursor");
  // As the Python implementation names and writes a message, plus an extra field.
  const python = {
    id: "7d3f1b0e-2f4a-4c55-9a1e-0b9c1d2e3f40",
    from: "claude",
    to: "cursor",
    type: "REQUEST",
    priority: 2,
    timestamp: "2026-11-23T10:15:00Z",
    payload: { question: "which branch?" },
    reply_to: "claude-42",
  };
  fs.writeFileSync(path.join(mailbox, "2_20261123_111500_claude_REQUEST.json"), JSON.stringify(python, null, 2));
  fs.writeFileSync(path.join(mailbox, "5_garbage.json"), "{ not json");

  const { messages, malformed } = comm.receive("cursor");
  assert.equal(messages.length, 1);
  assert.equal(messages[0].file, "2_20261123_111500_claude_REQUEST.json");
  assert.deepEqual(messages[0].payload, python.payload);
  assert.equal(JSON.parse(messages[0].raw).reply_to, "claude-42");
  assert.equal(malformed.length, 1);
  assert.equal(malformed[0].file, "5_garbage.json");
  assert.match(malformed[0].reason, /JSON/);
  assert.equal(comm.peek("cursor"), 2);
});

test("broadcast sends one copy to every other agent", async (t) => {
  const { comm } = await openWith(t, ["planner", "coder", "reviewer"]);
  const copies = comm.broadcast({ from: "planner", payload: { stop: true } });
  assert.deepEqual(
    copies.map((m) => [m.to, m.type, m.priority]),
    [
      ["coder", "ALERT", 1],
      ["reviewer", "ALERT", 1],
    ],
  );
  assert.equal(comm.peek("planner"), 0);
  assert.deepEqual(comm.receive("reviewer").messages[0].payload, { stop: true });
});

test("a send with an id is stored at most once", async (t) => {
  const { comm } = await openWith(t, ["a", "b"]);
  const first = comm.send({ from: "a", to: "b", id: "job-17", payload: 1 });
  const again = comm.send({ from: "a", to: "b", id: "job-17", payload: 1 });
  assert.equal(first.id, "job-17");
  assert.equal(again.file, first.file);
  assert.equal(comm.peek("b"), 1);
});

test("claim, extend, release and ack hand each message to one consumer", async (t) => {
  const { dir, comm } = await openWith(t, ["planner", "coder"]);
  const one = comm.send({ from: "planner", to: "coder", payload: 1 });
  const two = comm.send({ from: "planner", to: "coder", payload: 2 });

  const before = Date.now();
  const first = comm.claim("coder", "w1", { leaseMs: 60_000 });
  assert.equal(first.claimed.length, 1);
  assert.deepEqual(first.deadLettered, []);
  const held = first.claimed[0];
  assert.equal(held.message.id, one.id);
  assert.equal(held.deliveries, 1);
  assert.ok(held.leaseExpiresMs >= before + 60_000 && held.leaseExpiresMs <= Date.now() + 60_000);
  // Claimed messages are out of the mailbox.
  assert.equal(comm.peek("coder"), 1);

  const second = comm.claim("coder", "w2", { limit: 10 });
  assert.deepEqual(
    second.claimed.map((c) => c.message.id),
    [two.id],
  );
  assert.deepEqual(comm.claim("coder", "w3").claimed, []);

  // Only the consumer holding a claim can settle it.
  assert.throws(() => comm.ack("coder", "w1", second.claimed[0].message.file), { code: "not-found" });
  assert.equal(comm.ack("coder", "w2", second.claimed[0].message.file), two.file);

  const extended = comm.extend("coder", "w1", held.message.file, { leaseMs: 120_000 });
  assert.ok(extended > held.leaseExpiresMs, `${extended} > ${held.leaseExpiresMs}`);

  const released = comm.release("coder", "w1", held.message.file);
  assert.equal(released.deadLettered, false);
  assert.deepEqual(jsonFiles(path.join(dir, "To_Coder")), [released.file]);

  const unbegun = comm.claim("coder", "w4");
  assert.equal(unbegun.claimed[0].deliveries, 2);
  // Given back unbegun, the delivery does not count.
  assert.equal(comm.giveBack("coder", "w4", unbegun.claimed[0].message.file), released.file);

  const again = comm.claim("coder", "w3");
  assert.equal(again.claimed[0].message.id, one.id);
  assert.equal(again.claimed[0].deliveries, 2);
  comm.ack("coder", "w3", again.claimed[0].message.file);
  assert.deepEqual(
    comm.stats().find((s) => s.agent === "coder"),
    { agent: "coder", ready: 0, inFlight: 0, dead: 0, archived: 2, oldestReadyAgeMs: null },
  );
});

test("an expired lease is returned by recover and counted as a delivery", async (t) => {
  const { comm } = await openWith(t, ["a", "b"]);
  const sent = comm.send({ from: "a", to: "b", payload: "x" });
  comm.claim("b", "w1", { leaseMs: 1 });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(comm.recover(), { returned: 1, deadLettered: 0, finishedMoves: 0, removedTemporary: 0 });
  const { claimed } = comm.claim("b", "w2");
  assert.equal(claimed[0].message.id, sent.id);
  assert.equal(claimed[0].deliveries, 2);
});

test("dead letters: delivery limit and files that are not messages; list, retry, purge", async (t) => {
  const { dir, comm } = await openWith(t, ["a", "b"]);
  comm.configure({ maxDeliveries: 1 });
  const sent = comm.send({ from: "a", to: "b", payload: "x" });
  fs.writeFileSync(path.join(dir, "To_B", "9_broken.json"), "[1, 2");

  const batch = comm.claim("b", "w1", { limit: 10 });
  assert.deepEqual(
    batch.claimed.map((c) => c.message.id),
    [sent.id],
  );
  assert.deepEqual(
    batch.deadLettered.map((d) => d.file),
    ["9_broken.json"],
  );
  const released = comm.release("b", "w1", batch.claimed[0].message.file);
  assert.equal(released.deadLettered, true);

  const dead = comm.deadLetters("b");
  assert.equal(dead.length, 2);
  assert.deepEqual(dead, comm.deadLetters());
  const pages = [...comm.deadLetterPages("b", { pageSize: 1 })];
  assert.deepEqual(pages.flat(), dead);
  assert.ok(pages.length >= 2, `${pages.length} pages`);
  assert.throws(() => comm.deadLetterPages("b", { pageSize: -1 }), TypeError);
  for (const letter of dead) {
    assert.equal(letter.agent, "b");
    assert.equal(typeof letter.reason, "string");
    assert.ok(letter.reason.length > 0);
    assert.ok(letter.deadAtMs > 0);
  }
  const broken = dead.find((d) => d.file === "9_broken.json");
  const expired = dead.find((d) => d.file !== "9_broken.json");
  assert.equal(expired.deliveries, 1);

  const back = comm.retryDeadLetter("b", expired.file);
  assert.deepEqual(
    comm.receive("b").messages.map((m) => [m.id, m.file]),
    [[sent.id, back]],
  );

  assert.throws(() => comm.purgeDeadLetters("b"), TypeError);
  assert.deepEqual(
    comm.purgeDeadLetters("b", { file: broken.file }).map((d) => d.file),
    [broken.file],
  );
  assert.deepEqual(comm.deadLetters(), []);
  assert.deepEqual(comm.purgeDeadLetters(null, { all: true }), []);
});

test("cleanup archives messages older than the age given", async (t) => {
  const { dir, comm } = await openWith(t, ["a", "b"]);
  const old = comm.send({ from: "a", to: "b", payload: "old" });
  const fresh = comm.send({ from: "a", to: "b", payload: "fresh" });
  const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
  fs.utimesSync(path.join(dir, "To_B", old.file), twoDaysAgo, twoDaysAgo);

  assert.deepEqual(comm.cleanup(), { archived: 1, removedTemporary: 0 });
  assert.deepEqual(
    comm.receive("b").messages.map((m) => m.id),
    [fresh.id],
  );
  assert.deepEqual(jsonFiles(path.join(dir, "ARCHIVE")), [old.file]);
});

test("two open folders are independent: each instance sees its own _COMM only", async (t) => {
  const first = await openWith(t, ["a", "b"]);
  const second = await openWith(t, ["c"]);
  first.comm.send({ from: "a", to: "b", payload: 1 });
  assert.deepEqual(first.comm.agents(), ["a", "b"]);
  assert.deepEqual(second.comm.agents(), ["c"]);
  assert.throws(() => second.comm.peek("b"), { code: "unknown-agent" });
});

test("configure durable: false still sends and receives", async (t) => {
  const { comm } = await openWith(t, ["a", "b"]);
  comm.configure({ durable: false, origin: 0x1a2b3c4d });
  const sent = comm.send({ from: "a", to: "b", payload: "fast" });
  // The origin tag is in the name: 8 hex digits, then a 4-digit counter.
  assert.match(sent.file, /_1a2b3c4d[0-9a-f]{4}\.json$/);
  assert.equal(comm.receive("b").messages[0].id, sent.id);
});

test("receivePages reads a mailbox page by page", async (t) => {
  const { dir, comm } = await openWith(t, ["planner", "coder"]);
  for (let i = 0; i < 25; i++) {
    comm.send({ from: "planner", to: "coder", priority: 1 + (i % 9), payload: i });
  }
  fs.writeFileSync(path.join(dir, "To_Coder", "junk.json"), "nope");
  const whole = comm.receive("coder");
  const pages = [...comm.receivePages("coder", { pageSize: 10 })];
  assert.equal(pages.length, 3);
  assert.deepEqual(pages.flatMap((page) => page.messages), whole.messages);
  assert.deepEqual(pages.flatMap((page) => page.malformed), whole.malformed);
  assert.equal(whole.malformed.length, 1);
  assert.throws(() => comm.receivePages("coder", { pageSize: -1 }), TypeError);
  const byTime = [...comm.receivePages("coder", { pageSize: 10, bySendTime: true })];
  const inSendOrder = [...whole.messages].sort((a, b) => (a.file.slice(2) < b.file.slice(2) ? -1 : 1));
  assert.deepEqual(byTime.flatMap((page) => page.messages.map((m) => m.file)), inSendOrder.map((m) => m.file));
  assert.notDeepEqual(inSendOrder.map((m) => m.priority), whole.messages.map((m) => m.priority));
  assert.throws(() => comm.receivePages("coder", { bySendTime: "yes" }), /bySendTime must be true or false/);
});
