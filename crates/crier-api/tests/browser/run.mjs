// `node run.mjs <scenario.mjs>`: runs the scenario's default export, an async function of a
// session (see lib.mjs), in a fresh headless Chromium, and prints the outcome as one line of
// JSON on stdout (the last line: a scenario may log above it). A failure prints its stack on
// stderr and exits 1. Started by tests/common/browser.rs.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { run } from "./lib.mjs";

const [script] = process.argv.slice(2);
if (!script) {
  process.stderr.write("usage: node run.mjs <scenario.mjs>\n");
  process.exit(2);
}
try {
  const { default: scenario } = await import(pathToFileURL(resolve(script)).href);
  const outcome = await run(scenario);
  process.stdout.write(`\n${JSON.stringify(outcome)}\n`);
} catch (e) {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
}
