#!/usr/bin/env node
// Transpiles the fmes component with jco into js/generated/ (openComm does
// the same on first use; this runs it ahead of time) and prints the folder.
//
//   node scripts/transpile.mjs [COMPONENT]      default: $FMES_COMPONENT

import { transpileComponent } from "../fmes.mjs";

const args = process.argv.slice(2);
if (args.length > 1 || args[0] === "-h" || args[0] === "--help") {
  console.error("usage: node scripts/transpile.mjs [COMPONENT]   (default: $FMES_COMPONENT)");
  process.exit(2);
}
try {
  console.log(await transpileComponent(args[0]));
} catch (error) {
  console.error(error.message);
  process.exit(1);
}
