// Shared by the browser scenarios (run by run.mjs, from tests/common/browser.rs): Debian's
// Chromium through playwright-core (both from scripts/peers/browser.sh), headless, with every
// request that would leave the machine refused and recorded, console errors and uncaught page
// errors recorded, screenshots saved under target/screenshots/<test>/, and the browser closed
// whatever happens.
//
// Environment (set by the Rust side): CRIER_TEST_PLAYWRIGHT (the folder holding
// node_modules/playwright-core), CRIER_TEST_CHROMIUM (the executable), CRIER_BROWSER_BASE_URL
// (the server under test), CRIER_BROWSER_SCREENSHOTS (this test's screenshot folder), and
// whatever the test passes (API keys etc.), read with `session.env(name)`.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

// The environment variable `name`; throws when it is unset or empty.
export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

// playwright-core from CRIER_TEST_PLAYWRIGHT (not from a node_modules next to this file).
export function playwright() {
  const require = createRequire(join(env("CRIER_TEST_PLAYWRIGHT"), "package.json"));
  return require("playwright-core");
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

// Whether a request to `url` stays on this machine. Only http(s) and ws(s) reach the
// network; data:, blob: and the like never leave the page.
export function isLocal(url) {
  const u = url instanceof URL ? url : new URL(url);
  if (!["http:", "https:", "ws:", "wss:"].includes(u.protocol)) return true;
  return LOOPBACK.has(u.hostname);
}

// Runs `scenario(session)` in a fresh headless Chromium and returns
// `{ result, offsite_requests, console_errors, page_errors, screenshots }`: what the scenario
// returned, and what the test asserts on besides it. When the scenario throws, or the test's
// timeout stops it (SIGTERM), a screenshot (failure.png, timeout.png), the page's address and
// what the page did go to stderr first.
export async function run(scenario) {
  const { chromium } = playwright();
  const seen = { offsite_requests: [], console_errors: [], page_errors: [], screenshots: [] };
  const shots = env("CRIER_BROWSER_SCREENSHOTS");
  const browser = await chromium.launch({
    executablePath: env("CRIER_TEST_CHROMIUM"),
    headless: true,
    args: [
      "--disable-background-networking",
      // We run as root, where Chromium's sandbox does not start.
      "--no-sandbox",
      // A second wall behind the routes below: no proxy, and no host name resolves except
      // the loopback ones, so even the browser's own requests cannot leave the machine.
      "--no-proxy-server",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ],
    // SIGTERM is handled below.
    handleSIGTERM: false,
  });
  let session;
  // Where the page is and what it did; after a screenshot, when the browser still answers.
  const report = async (step) => {
    if (session) await session.screenshot(step).catch(() => {});
    process.stderr.write(`at ${session?.page.url()}\n${JSON.stringify(seen, null, 2)}\n`);
  };
  const stopped = async () => {
    process.stderr.write("stopped: the test's time is up\n");
    await report("timeout");
    await browser.close().catch(() => {});
    process.exit(124);
  };
  process.once("SIGTERM", stopped);
  try {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      // Service workers' requests would bypass the routes.
      serviceWorkers: "block",
    });
    await context.route(
      (url) => !isLocal(url),
      (route) => {
        const req = route.request();
        seen.offsite_requests.push({ method: req.method(), url: req.url(), type: req.resourceType() });
        return route.abort("blockedbyclient");
      },
    );
    await context.routeWebSocket(
      (url) => !isLocal(url),
      (ws) => {
        seen.offsite_requests.push({ method: "GET", url: ws.url(), type: "websocket" });
        return ws.close();
      },
    );
    context.on("page", (page) => {
      page.on("console", (msg) => {
        if (msg.type() === "error") {
          seen.console_errors.push({ page: page.url(), text: msg.text(), location: msg.location() });
        }
      });
      page.on("pageerror", (e) => seen.page_errors.push({ page: page.url(), error: String(e) }));
    });
    const page = await context.newPage();
    session = {
      baseUrl: env("CRIER_BROWSER_BASE_URL").replace(/\/$/, ""),
      env,
      browser,
      context,
      page,
      // A screenshot of `target` (the page, another page or a locator; the viewport, or the
      // whole page with `fullPage`) as <CRIER_BROWSER_SCREENSHOTS>/<step>.png; returns its path.
      async screenshot(step, { target = page, fullPage = false } = {}) {
        mkdirSync(shots, { recursive: true });
        const path = join(shots, `${step}.png`);
        await target.screenshot(fullPage ? { path, fullPage } : { path });
        seen.screenshots.push(path);
        return path;
      },
    };
    let result;
    try {
      result = await scenario(session);
    } catch (e) {
      await report("failure");
      throw e;
    }
    return { result: result ?? null, ...seen };
  } finally {
    process.off("SIGTERM", stopped);
    await browser.close();
  }
}
