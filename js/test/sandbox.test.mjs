// What the component is given in Node, and what the shim does and does not
// confine. The README's warning rests on these tests: preview2-shim checks
// the path a guest names for `..` and a leading `/`, then hands it to Node's
// `fs`, which follows symbolic links wherever they lead. wasmtime resolves
// every path inside the preopen instead. So a guest that can make a symbolic
// link (any guest with wasi:filesystem) reads and writes outside `/_COMM`.
// If a shim upgrade makes a NOT CONFINED test fail, update the README.
//
// The calls below are the ones a component makes through its
// `wasi:filesystem` imports (a transpiled component calls exactly these
// JavaScript methods), on the imports fmes.mjs hands the fmes component.

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { componentImports } from "../fmes.mjs";
import { tempComm } from "../testing/helpers.mjs";

const NO_FOLLOW = { symlinkFollow: false };
const READ = { read: true };

/** The `/_COMM` descriptor the component gets, and a file beside `_COMM`. */
function setUp(t) {
  const { root, dir } = tempComm(t);
  fs.writeFileSync(path.join(root, "outside.txt"), "a file outside _COMM");
  const imports = componentImports(dir);
  const directories = imports["wasi:filesystem/preopens"].getDirectories();
  assert.deepEqual(
    directories.map(([, guestPath]) => guestPath),
    ["/_COMM"],
  );
  return { root, dir, imports, comm: directories[0][0] };
}

/** Reads a whole small file through a descriptor, as a guest would. */
function readAt(directory, name) {
  const file = directory.openAt(NO_FOLLOW, name, {}, READ);
  const [bytes] = file.read(1024n, 0n);
  return Buffer.from(bytes).toString("utf8");
}

/** The WASI error code a shim call throws. */
function errorCode(fn) {
  try {
    fn();
  } catch (code) {
    return code;
  }
  assert.fail("expected the call to fail");
}

test("the component gets only /_COMM, no environment, no arguments", (t) => {
  const { imports, comm } = setUp(t);
  assert.deepEqual(imports["wasi:cli/environment"].getEnvironment(), []);
  assert.deepEqual(imports["wasi:cli/environment"].getArguments(), []);
  // The component lists /_COMM and flushes it: the descriptor supports both.
  comm.createDirectoryAt("To_Coder");
  const entries = comm.readDirectory();
  assert.deepEqual(entries.readDirectoryEntry(), { name: "To_Coder", type: "directory" });
  assert.equal(entries.readDirectoryEntry(), undefined);
  comm.sync();
});

test("the shim refuses `..` and absolute paths", (t) => {
  const { comm } = setUp(t);
  assert.equal(errorCode(() => readAt(comm, "../outside.txt")), "not-permitted");
  assert.equal(errorCode(() => readAt(comm, "To_Coder/../../outside.txt")), "not-permitted");
  assert.equal(errorCode(() => readAt(comm, "/etc/hostname")), "not-permitted");
  assert.equal(errorCode(() => comm.symlinkAt("/etc/hostname", "absolute")), "not-permitted");
});

test("NOT CONFINED: a symbolic link the guest makes leads out of /_COMM", (t) => {
  const { root, comm } = setUp(t);
  // A relative link to `..` is accepted, and followed as a folder in a path
  // even without symlink-follow.
  comm.symlinkAt("..", "up");
  assert.equal(readAt(comm, "up/outside.txt"), "a file outside _COMM");
  const created = comm.openAt(NO_FOLLOW, "up/written-from-the-guest.txt", { create: true }, { write: true });
  created.write(new TextEncoder().encode("escaped"), 0n);
  assert.equal(fs.readFileSync(path.join(root, "written-from-the-guest.txt"), "utf8"), "escaped");
  // A link to a file outside, followed when the guest asks for it.
  comm.symlinkAt("../outside.txt", "file-link");
  assert.equal(
    Buffer.from(comm.openAt({ symlinkFollow: true }, "file-link", {}, READ).read(1024n, 0n)[0]).toString(),
    "a file outside _COMM",
  );
});

test("NOT CONFINED: a folder the guest holds open follows a rename and a link", (t) => {
  const { comm } = setUp(t);
  comm.createDirectoryAt("work");
  const work = comm.openAt(NO_FOLLOW, "work", { directory: true }, READ);
  comm.renameAt("work", comm, "work-moved");
  comm.symlinkAt("..", "work");
  // The shim keeps the held folder as a path, so it is now `_COMM/..`.
  assert.equal(readAt(work, "outside.txt"), "a file outside _COMM");
});

test("the wall clock is read once per call", (t) => {
  const { imports } = setUp(t);
  const clock = imports["wasi:clocks/wall-clock"];
  // Two reads straddling a second boundary, as the shim's clock would make.
  const readings = [1_700_000_000_999, 1_700_000_001_000];
  t.mock.method(Date, "now", () => readings.shift() ?? assert.fail("read more than twice"));
  assert.deepEqual(clock.now(), { seconds: 1_700_000_000n, nanoseconds: 999_000_000 });
  assert.deepEqual(clock.now(), { seconds: 1_700_000_001n, nanoseconds: 0 });
});
