// fmes from JavaScript: the fmes queue component (the same .wasm the `fmes`
// CLI runs), transpiled to JavaScript and core WebAssembly with jco and run in
// Node with @bytecodealliance/preview2-shim.
//
// openComm(dir) maps the folder `dir` to the component's preopen `/_COMM`,
// exactly as the `fmes` CLI does, so JavaScript agents, the CLI, the Rust
// library and Python agents share one `_COMM`.
//
// Not a sandbox: the Node shim refuses `..` and absolute paths but follows
// symbolic links out of `dir`, where wasmtime confines the component to it
// (see test/sandbox.test.mjs), and nothing limits a call's time or memory.
// Run only the fmes component here, never untrusted code.

import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { WASIShim } from "@bytecodealliance/preview2-shim/instantiation";

/** Where transpiled components go: one folder per component and jco version. */
export const GENERATED_DIR = fileURLToPath(new URL("./generated/", import.meta.url));

/** The guest path of the `_COMM` folder inside the component. */
const GUEST_ROOT = "/_COMM";

/** Base name of the transpiled files (`fmes_queue.js`, `fmes_queue.core.wasm`, ...). */
const NAME = "fmes_queue";

/** One lease's default length, as the CLI's `--lease 5m`. */
const DEFAULT_LEASE_MS = 5 * 60 * 1000;

/**
 * An error the queue reported: one case of the WIT `queue-error` variant.
 *
 * `code` is the case name as in wit/queue.wit (`"unknown-agent"`,
 * `"invalid-priority"`, ...); `details` is its value: a string for most
 * cases, a number for `invalid-priority`, `{ name, known }` for
 * `unknown-agent` and `{ size, limit }` for `payload-too-large`.
 */
export class FmesError extends Error {
  constructor(code, details) {
    super(`${code}: ${describe(code, details)}`);
    this.name = "FmesError";
    this.code = code;
    this.details = details;
  }
}

function describe(code, details) {
  switch (code) {
    case "unknown-agent":
      return details.known.length === 0
        ? `no mailbox for ${details.name} (there are no mailboxes)`
        : `no mailbox for ${details.name} (known agents: ${details.known.join(", ")})`;
    case "payload-too-large":
      return `the payload is ${details.size} bytes, over the limit of ${details.limit}`;
    default:
      return String(details);
  }
}

/** The component path: the option, else `$FMES_COMPONENT`, else a clear error. */
function componentPath(component) {
  const chosen = component ?? process.env.FMES_COMPONENT;
  if (chosen === undefined || chosen === "") {
    throw new Error(
      "fmes: no component: pass openComm(dir, { component: 'fmes_queue.wasm' }) or set " +
        "FMES_COMPONENT (write the file with `fmes component -o fmes_queue.wasm`)",
    );
  }
  return path.resolve(chosen);
}

function jcoVersion() {
  const require = createRequire(import.meta.url);
  // The package's entry point is dist/api.js; its package.json is one folder up from dist/.
  const entry = require.resolve("@bytecodealliance/jco");
  const manifest = path.join(path.dirname(path.dirname(entry)), "package.json");
  return JSON.parse(fs.readFileSync(manifest, "utf8")).version;
}

/**
 * Transpiles the component at `component` (default `$FMES_COMPONENT`) with
 * jco's API into `GENERATED_DIR/<hash>/`, unless that folder is already
 * there, and returns the folder. `<hash>` covers the component's bytes and
 * jco's version, so a rebuilt component or a new jco gets a new folder; old
 * folders are never used again and can be deleted at any time.
 *
 * Several processes may transpile at once: each writes a private folder and
 * renames it into place, and the first rename wins.
 */
export async function transpileComponent(component) {
  const source = componentPath(component);
  let bytes;
  try {
    bytes = fs.readFileSync(source);
  } catch (error) {
    throw new Error(`fmes: cannot read the component ${source}: ${error.message}`, { cause: error });
  }
  const version = jcoVersion();
  const key = createHash("sha256").update(`jco ${version}\n`).update(bytes).digest("hex").slice(0, 16);
  const target = path.join(GENERATED_DIR, key);
  if (fs.existsSync(path.join(target, `${NAME}.js`))) {
    return target;
  }

  const { transpile } = await import("@bytecodealliance/jco");
  let files;
  try {
    ({ files } = await transpile(bytes, {
      name: NAME,
      // The generated module exports instantiate(getCoreModule, imports):
      // every instance gets its own WASI imports, hence its own `_COMM`.
      instantiation: "async",
      // (jco's typings call this noTypescript, which its API ignores.)
      emitTypescriptDeclarations: false,
      quiet: true,
    }));
  } catch (error) {
    throw new Error(`fmes: jco ${version} could not transpile ${source}: ${error.message}`, {
      cause: error,
    });
  }

  fs.mkdirSync(GENERATED_DIR, { recursive: true });
  const staging = path.join(GENERATED_DIR, `.staging-${process.pid}-${randomBytes(6).toString("hex")}`);
  try {
    for (const [name, data] of Object.entries(files)) {
      const file = path.join(staging, name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, data);
    }
    // The generated code is an ES module whatever folder holds it.
    fs.writeFileSync(path.join(staging, "package.json"), '{ "type": "module" }\n');
    fs.renameSync(staging, target);
  } catch (error) {
    fs.rmSync(staging, { recursive: true, force: true });
    // Another process renamed its copy into place first: use that one.
    if (!(["ENOTEMPTY", "EEXIST"].includes(error.code) && fs.existsSync(path.join(target, `${NAME}.js`)))) {
      throw new Error(`fmes: cannot write the transpiled component to ${target}: ${error.message}`, {
        cause: error,
      });
    }
  }
  return target;
}

/** Per transpiled folder: its `instantiate` and its compiled core modules. */
const loaded = new Map();

function load(folder) {
  let entry = loaded.get(folder);
  if (entry === undefined) {
    const modules = new Map();
    entry = import(pathToFileURL(path.join(folder, `${NAME}.js`)).href).then(({ instantiate }) => ({
      instantiate,
      getCoreModule(name) {
        let module = modules.get(name);
        if (module === undefined) {
          module = WebAssembly.compile(fs.readFileSync(path.join(folder, name)));
          modules.set(name, module);
        }
        return module;
      },
    }));
    entry.catch(() => loaded.delete(folder));
    loaded.set(folder, entry);
  }
  return entry;
}

/**
 * The WASI imports an instance on `dir` gets: the folder as the preopen
 * `/_COMM`, an empty environment, no arguments; clocks, random and stdio as
 * the shim provides them. Exported so the tests can show what they do and
 * do not confine.
 */
export function componentImports(dir) {
  const shim = new WASIShim({
    sandbox: {
      preopens: { [GUEST_ROOT]: dir },
      env: {},
      args: [],
      // No network setting: the component imports no wasi:sockets, and the
      // shim's enableNetwork: false would turn sockets off for the whole process.
    },
  });
  const imports = shim.getImportObject();
  // The shim's preopen descriptor cannot be listed (readDirectory and sync
  // fail with bad-descriptor and invalid), and the component lists and syncs
  // `_COMM` itself. A directory opened at "." through it can do both, so that
  // is what the component gets as `/_COMM`.
  const [[preopen]] = imports["wasi:filesystem/preopens"].getDirectories();
  let root;
  try {
    root = preopen.openAt({ symlinkFollow: true }, ".", { directory: true }, { read: true });
  } catch (code) {
    throw new Error(`fmes: cannot open ${dir} as a directory: ${code}`);
  }
  imports["wasi:filesystem/preopens"] = {
    getDirectories: () => [[root, GUEST_ROOT]],
  };
  // The shim's wall clock reads Date.now() twice, for the seconds and for
  // the milliseconds, so across a second boundary it can be a second early.
  // Send times order messages: read the clock once.
  imports["wasi:clocks/wall-clock"] = {
    ...imports["wasi:clocks/wall-clock"],
    now() {
      const ms = Date.now();
      return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1_000_000 };
    },
  };
  return imports;
}

/**
 * Opens the `_COMM` folder `dir` with its own instance of the component.
 *
 * Options: `component`, the path of the component file (default
 * `$FMES_COMPONENT`; `fmes component -o FILE` writes it); `create`, create
 * `dir` (and its parents) if missing; `durable`, `maxDeliveries`, `origin`,
 * as in `configure`.
 */
export async function openComm(dir, options = {}) {
  const { component, create = false, ...settings } = options;
  const absolute = path.resolve(dir);
  if (create) {
    fs.mkdirSync(absolute, { recursive: true });
  }
  let stat;
  try {
    stat = fs.statSync(absolute);
  } catch (error) {
    throw new Error(
      error.code === "ENOENT"
        ? `fmes: the _COMM folder ${absolute} does not exist (pass { create: true } to create it)`
        : `fmes: cannot open the _COMM folder ${absolute}: ${error.message}`,
      { cause: error },
    );
  }
  if (!stat.isDirectory()) {
    throw new Error(`fmes: the _COMM folder ${absolute} is not a directory`);
  }
  const folder = await transpileComponent(component);
  const { instantiate, getCoreModule } = await load(folder);
  const instance = await instantiate(getCoreModule, componentImports(absolute));
  const comm = new Comm(instance, absolute);
  if (Object.keys(settings).length > 0) {
    comm.configure(settings);
  }
  return comm;
}

/** Runs one exported function; a `queue-error` becomes an `FmesError`. */
function call(fn, ...args) {
  try {
    return fn(...args);
  } catch (error) {
    // jco throws a result's error as a ComponentError holding the variant
    // as its payload: { tag: "unknown-agent", val: { name, known } }.
    const payload = error !== null && typeof error === "object" ? error.payload : undefined;
    if (payload !== null && typeof payload === "object" && typeof payload.tag === "string") {
      throw new FmesError(payload.tag, errorDetails(payload.tag, payload.val));
    }
    throw error;
  }
}

function errorDetails(code, value) {
  switch (code) {
    case "unknown-agent":
      return { name: value.name, known: [...value.known] };
    case "payload-too-large":
      return { size: Number(value.size), limit: Number(value.limit) };
    default:
      return value;
  }
}

/** JSON text of a payload, or a TypeError naming what is wrong with it. */
function payloadText(payload) {
  const text = JSON.stringify(payload);
  if (text === undefined) {
    throw new TypeError(`fmes: the payload must be a JSON value, got ${typeof payload}`);
  }
  return text;
}

/**
 * An integer argument of `bits` bits (a number, or a bigint for 64): jco
 * would otherwise wrap 300 into a u8 as 44, or truncate 2.5.
 */
function unsigned(value, bits, what) {
  const max = 2n ** BigInt(bits) - 1n;
  const ok =
    typeof value === "bigint" ? value >= 0n && value <= max : Number.isSafeInteger(value) && value >= 0 && BigInt(value) <= max;
  if (!ok) {
    throw new TypeError(`fmes: ${what} must be an integer from 0 to ${max}, got ${typeof value === "string" ? JSON.stringify(value) : value}`);
  }
  return bits === 64 ? BigInt(value) : Number(value);
}

/** A string argument, or a TypeError naming it. */
function text(value, what) {
  if (typeof value !== "string") {
    throw new TypeError(`fmes: ${what} must be a string, got ${value === null ? "null" : typeof value}`);
  }
  return value;
}

function optionalText(value, what) {
  return value === undefined || value === null ? undefined : text(value, what);
}

function optional(value, bits, what) {
  return value === undefined || value === null ? undefined : unsigned(value, bits, what);
}

/** A priority: outside 1..9 the queue refuses it, so it does beyond a u8 too. */
function priorityArgument(priority) {
  if (priority === undefined || priority === null) {
    return undefined;
  }
  if (!Number.isSafeInteger(priority)) {
    throw new TypeError(`fmes: priority must be an integer from 1 to 9, got ${priority}`);
  }
  if (priority < 0 || priority > 255) {
    throw new FmesError("invalid-priority", priority);
  }
  return priority;
}

function claimArguments(agent, consumer, file) {
  return [text(agent, "agent"), text(consumer, "consumer"), text(file, "file")];
}

/** A message as JavaScript: the payload parsed, everything else as stored. */
function message(m) {
  return {
    id: m.id,
    from: m.from,
    to: m.to,
    type: m.type,
    priority: m.priority,
    timestamp: m.timestamp,
    payload: JSON.parse(m.payload),
    file: m.file,
    // The whole stored object as JSON text, with any fields other writers added.
    raw: m.raw,
  };
}

function malformed(files) {
  return files.map(({ file, reason }) => ({ file, reason }));
}

function deadLetter(d) {
  return {
    agent: d.agent,
    file: d.file,
    reason: d.reason,
    deliveries: d.deliveries,
    deadAtMs: Number(d.deadAtMs),
  };
}

/**
 * One open `_COMM` folder. Every method is synchronous, runs one call of the
 * component, and throws an `FmesError` for what the queue refuses. Messages
 * are `{ id, from, to, type, priority, timestamp, payload, file, raw }` with
 * `payload` the parsed JSON value and `raw` the stored JSON text.
 */
export class Comm {
  #admin;
  #messages;
  #claims;
  #dead;
  #options = { durable: true, maxDeliveries: 5, origin: 0 };

  constructor(instance, dir) {
    this.#admin = instance.admin;
    this.#messages = instance.messages;
    this.#claims = instance.claims;
    this.#dead = instance.deadLetters;
    /** The absolute path of the `_COMM` folder. */
    this.dir = dir;
  }

  /**
   * Changes settings for later calls: `durable` (flush to disk before
   * returning; default true), `maxDeliveries` (default 5), `origin` (a
   * 32-bit tag in every file name this instance writes; 0, the default,
   * picks a random one).
   */
  configure(settings = {}) {
    const { durable, maxDeliveries, origin, ...unknown } = settings;
    const extra = Object.keys(unknown);
    if (extra.length > 0) {
      throw new TypeError(`fmes: unknown setting ${extra.join(", ")} (known: durable, maxDeliveries, origin)`);
    }
    const next = { ...this.#options };
    if (durable !== undefined) next.durable = Boolean(durable);
    if (maxDeliveries !== undefined) next.maxDeliveries = unsigned(maxDeliveries, 32, "maxDeliveries");
    if (origin !== undefined) next.origin = unsigned(origin, 32, "origin");
    call(this.#admin.configure, next);
    this.#options = next;
  }

  /** Creates `ARCHIVE/` and the mailboxes; returns the agents whose mailbox it created. */
  init(agents = []) {
    if (!Array.isArray(agents)) {
      throw new TypeError("fmes: init takes an array of agent names");
    }
    return call(
      this.#admin.init,
      agents.map((agent) => text(agent, "each agent name")),
    );
  }

  /** The agents that have a mailbox, lower-case, sorted. */
  agents() {
    return call(this.#admin.agents);
  }

  /**
   * Sends one message; returns it as stored. `payload` is any JSON value;
   * `type` defaults to `TASK`, `priority` (1 most urgent .. 9) to 5,
   * `maxPayloadBytes` to 1 MiB. With `id`, sends at most once per id.
   */
  send({ from, to, payload, type, priority, maxPayloadBytes, id }) {
    return message(
      call(this.#messages.send, {
        from: text(from, "from"),
        to: text(to, "to"),
        type: optionalText(type, "type"),
        priority: priorityArgument(priority),
        payload: payloadText(payload),
        maxPayloadBytes: optional(maxPayloadBytes, 64, "maxPayloadBytes"),
        id: optionalText(id, "id"),
      }),
    );
  }

  /** One copy to every other agent, priority 1, type `ALERT` by default; returns the copies. */
  broadcast({ from, payload, type, maxPayloadBytes }) {
    const bound = optional(maxPayloadBytes, 64, "maxPayloadBytes");
    return call(this.#messages.broadcast, text(from, "from"), optionalText(type, "type"), payloadText(payload), bound).map(message);
  }

  /**
   * The messages waiting for `agent`, in delivery order, without removing
   * them: `{ messages, malformed }`, where `malformed` lists files that are
   * not readable messages with the reason.
   */
  receive(agent, { type, limit } = {}) {
    const received = call(this.#messages.receive, text(agent, "agent"), optionalText(type, "type"), optional(limit, 32, "limit"));
    return { messages: received.messages.map(message), malformed: malformed(received.malformed) };
  }

  /**
   * The messages waiting for `agent`, a page at a time, in delivery order,
   * without removing them: for a mailbox too big to hold at once. Yields
   * `{ messages, malformed }` pages of at most `pageSize` messages (a page
   * may hold fewer, even none, while more follow); a file that is not a
   * message is reported once, in the page where it is found. With
   * `bySendTime`, the pages are in order of send time, then file name,
   * whatever the priority: the order in which to merge several mailboxes'
   * pages into one timeline.
   */
  receivePages(agent, { type, pageSize = 1000, bySendTime = false } = {}) {
    // Checked now, not at the first page.
    const args = [text(agent, "agent"), optionalText(type, "type"), unsigned(pageSize, 32, "pageSize")];
    if (typeof bySendTime !== "boolean") {
      throw new TypeError(`bySendTime must be true or false, not ${JSON.stringify(bySendTime)}`);
    }
    const receivePage = bySendTime ? this.#messages.receivePageBySendTime : this.#messages.receivePage;
    return (function* pages() {
      let after;
      do {
        const page = call(receivePage, ...args, after);
        yield { messages: page.messages.map(message), malformed: malformed(page.malformed) };
        after = page.next;
      } while (after !== undefined && after !== null);
    })();
  }

  /** Counts the messages waiting for `agent`. */
  peek(agent) {
    return call(this.#messages.peek, text(agent, "agent"));
  }

  /** Moves a handled message into `ARCHIVE/`; returns its name there. */
  archive(agent, file) {
    return call(this.#messages.archive, text(agent, "agent"), text(file, "file"));
  }

  /** Archives messages older than `maxAgeSeconds` (default a day) and removes stale temporary files. */
  cleanup({ maxAgeSeconds = 24 * 60 * 60 } = {}) {
    const report = call(this.#admin.cleanup, unsigned(maxAgeSeconds, 64, "maxAgeSeconds"));
    return { archived: report.archived, removedTemporary: report.removedTemporary };
  }

  /**
   * Takes up to `limit` (default 1) messages for `consumer` alone until
   * `leaseMs` (default 5 minutes) from now: `{ claimed, deadLettered }`, each
   * claimed entry `{ message, deliveries, leaseExpiresMs }`.
   */
  claim(agent, consumer, { limit = 1, leaseMs = DEFAULT_LEASE_MS } = {}) {
    const batch = call(this.#claims.claim, text(agent, "agent"), text(consumer, "consumer"), unsigned(limit, 32, "limit"), unsigned(leaseMs, 64, "leaseMs"));
    return {
      claimed: batch.claimed.map((c) => ({
        message: message(c.message),
        deliveries: c.deliveries,
        leaseExpiresMs: Number(c.leaseExpiresMs),
      })),
      deadLettered: malformed(batch.deadLettered),
    };
  }

  /** Done with a claimed message: archives it; returns its name in `ARCHIVE/`. */
  ack(agent, consumer, file) {
    return call(this.#claims.ack, ...claimArguments(agent, consumer, file));
  }

  /**
   * Gives a claimed message back: `{ deadLettered: false, file }` with its
   * name back in the mailbox, or `{ deadLettered: true, file }` at its
   * delivery limit.
   */
  release(agent, consumer, file) {
    const released = call(this.#claims.release, ...claimArguments(agent, consumer, file));
    return { deadLettered: released.tag === "dead-lettered", file: released.val };
  }

  /**
   * Gives back a claimed message the consumer never began to handle, with
   * the delivery count it had before the claim (`release` counts the
   * delivery); returns its name in the mailbox.
   */
  giveBack(agent, consumer, file) {
    return call(this.#claims.giveBack, ...claimArguments(agent, consumer, file));
  }

  /** Extends a claim to `leaseMs` (default 5 minutes) from now; returns the new end (ms since 1970). */
  extend(agent, consumer, file, { leaseMs = DEFAULT_LEASE_MS } = {}) {
    return Number(call(this.#claims.extend, ...claimArguments(agent, consumer, file), unsigned(leaseMs, 64, "leaseMs")));
  }

  /** Returns expired claims, completes interrupted moves, removes stale temporary files. */
  recover() {
    const r = call(this.#claims.recover);
    return {
      returned: r.returned,
      deadLettered: r.deadLettered,
      finishedMoves: r.finishedMoves,
      removedTemporary: r.removedTemporary,
    };
  }

  /** The dead letters of `agent`, or of every agent. */
  deadLetters(agent) {
    return call(this.#dead.list, optionalText(agent, "agent")).map(deadLetter);
  }

  /**
   * An agent's dead letters by file name, a page at a time: an iterator of
   * arrays of at most `pageSize` (maybe fewer while more follow). Letters
   * retried or purged while the pages are read are left out.
   */
  deadLetterPages(agent, { pageSize = 1000 } = {}) {
    // Checked now, not at the first page.
    const args = [text(agent, "agent"), unsigned(pageSize, 32, "pageSize")];
    const listPage = this.#dead.listPage;
    return (function* pages() {
      let after;
      do {
        const page = call(listPage, ...args, after);
        yield page.letters.map(deadLetter);
        after = page.next;
      } while (after !== undefined && after !== null);
    })();
  }

  /** Puts a dead letter back in its mailbox, delivery count reset; returns its name there. */
  retryDeadLetter(agent, file) {
    return call(this.#dead.retry, text(agent, "agent"), text(file, "file"));
  }

  /**
   * Deletes dead letters and returns them: `{ file }` one of `agent`'s, or
   * `{ all: true }` every one of `agent`'s (of every agent when `agent` is
   * null). Nothing else deletes dead letters.
   */
  purgeDeadLetters(agent, { file, all = false } = {}) {
    if ((file === undefined) === !all) {
      throw new TypeError("fmes: purgeDeadLetters takes either { file } or { all: true }");
    }
    if (file !== undefined && (agent === undefined || agent === null)) {
      throw new TypeError("fmes: purgeDeadLetters with { file } needs the agent");
    }
    return call(this.#dead.purge, optionalText(agent, "agent"), optionalText(file, "file")).map(deadLetter);
  }

  /** Per mailbox: `{ agent, ready, inFlight, dead, archived, oldestReadyAgeMs }` (null when empty). */
  stats() {
    return call(this.#admin.stats).map((s) => ({
      agent: s.agent,
      ready: s.ready,
      inFlight: s.inFlight,
      dead: s.dead,
      archived: s.archived,
      oldestReadyAgeMs: s.oldestReadyAgeMs === undefined ? null : Number(s.oldestReadyAgeMs),
    }));
  }
}
