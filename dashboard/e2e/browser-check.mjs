#!/usr/bin/env node
// The dashboard's browser check: headless Chromium against a running daemon. It signs in through the form,
// opens every page from the navigation and waits for its content, sees a live value change on the screener,
// cancels a resting order through the order's modal, and saves a full-page screenshot of each page (and of
// the overview at phone width). tests/dashboard/test_browser.py runs it against a daemon on the paper
// exchange; it also runs by hand against any daemon:
//
//   DASHBOARD_PASSWORD=… node e2e/browser-check.mjs --url http://127.0.0.1:8000 --user trader \
//     --out /tmp/shots --order <orderLinkId of a working order> [--symbols BTCUSDT,ETHUSDT]
//
// Every option also reads from the environment (DASHBOARD_URL, DASHBOARD_USER, DASHBOARD_PASSWORD,
// DASHBOARD_OUT, DASHBOARD_ORDER, DASHBOARD_SYMBOLS; CHROMIUM for the browser, default /usr/bin/chromium);
// the password is best given there, out of the process list. Success prints one JSON object on stdout and
// exits 0; a failure prints the same object with `failed` (the step, the error, a screenshot of that moment),
// names the step on stderr and exits 1.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const PAGES = [
  // The content that says the page has its data (a loading state is gone once these are there).
  { id: "overview", path: "/", ready: ["bot-state", "balance-equity"] },
  { id: "screener", path: "/screener", ready: ["screener-table"] },
  { id: "charts", path: "/charts", ready: ["pair-picker"] },
  { id: "orders", path: "/orders", ready: ["orders-table", "order-stats"] },
  { id: "strategies", path: "/strategies", ready: ["strategies-table"] },
  { id: "models", path: "/models", ready: ["models-table"] },
];
// Generous: the machine running the suite is shared, and every wait ends as soon as its condition holds.
const WAIT_MS = 60_000;
// The screener polls the API every 30 s: a change seen sooner than that came over the WebSocket.
const LIVE_FIRST_LOOK_MS = 5_000;
const LIVE_DEADLINE_MS = 25_000;

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: process.env.DASHBOARD_URL },
    user: { type: "string", default: process.env.DASHBOARD_USER },
    password: { type: "string", default: process.env.DASHBOARD_PASSWORD },
    out: { type: "string", default: process.env.DASHBOARD_OUT },
    order: { type: "string", default: process.env.DASHBOARD_ORDER },
    symbols: { type: "string", default: process.env.DASHBOARD_SYMBOLS ?? "" },
  },
});
for (const name of ["url", "user", "password", "out", "order"]) {
  if (!opts[name]) {
    process.stderr.write(`browser-check: --${name} (or DASHBOARD_${name.toUpperCase()}) is required\n`);
    process.exit(2);
  }
}
const base = opts.url.replace(/\/+$/, "");
const symbols = opts.symbols.split(",").map((s) => s.trim()).filter(Boolean);
mkdirSync(opts.out, { recursive: true });

const report = { pages: [], screenshots: [], live_changed: {}, close_result: null, order_status: null, console_errors: [], server_errors: [], request_failures: [] };
let shot = 0;
let step = "launch";

const tid = (id) => `[data-testid="${id}"]`;
const byPrefix = (prefix) => `[data-testid^="${prefix}"]`;

async function screenshot(page, name) {
  shot += 1;
  const file = join(opts.out, `${String(shot).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  report.screenshots.push(file);
  return file;
}

/** What the page shows instead of its content: its loading, empty and error states. */
async function states(page) {
  const shown = await page.locator(`main ${byPrefix("state-")}, main .stale-banner`).evaluateAll((els) =>
    els.map((e) => `${e.dataset.testid ?? e.className}: ${e.textContent.trim()}`),
  );
  return shown.length ? shown.join(" | ") : "nothing";
}

/** The page's content is there, nothing on it is still loading, and no part of it shows an error. */
async function settle(page, ready) {
  for (const id of ready) {
    // An error state ends the wait at once; anything else gets the whole wait, then is described.
    const content = page.locator(tid(id)).first();
    await page.locator(`${tid(id)}, main ${tid("state-error")}`).first().waitFor({ state: "visible", timeout: WAIT_MS }).catch(async () => {
      throw new Error(`no ${id} within ${WAIT_MS / 1000} s; the page shows ${await states(page)}`);
    });
    if (!(await content.isVisible())) throw new Error(`no ${id}: the page shows ${await states(page)}`);
  }
  await page.waitForFunction(() => !document.querySelector('main [data-testid="state-loading"]'), null, { timeout: WAIT_MS }).catch(async () => {
    throw new Error(`still loading after ${WAIT_MS / 1000} s: ${await states(page)}`);
  });
  const errors = await page.locator(`main ${tid("state-error")}, main .stale-banner`).allInnerTexts();
  if (errors.length) throw new Error(`the page shows an error: ${errors.map((t) => t.trim()).join(" | ")}`);
}

async function visit(page, { id, path, ready }) {
  await page.locator(tid(`nav-${id}`)).click();
  await page.waitForURL((u) => u.pathname === path, { timeout: WAIT_MS });
  await settle(page, ready);
}

async function readLast(page) {
  const out = {};
  for (const cell of await page.locator(byPrefix("screener-last-")).all()) {
    const id = await cell.getAttribute("data-testid");
    out[id.slice("screener-last-".length)] = (await cell.innerText()).trim();
  }
  return out;
}

/** The screener's last prices, read ~5 s apart and then each second until one moves (at most 25 s). */
async function liveChange(page) {
  await page.locator(`${tid("connection-state")}[data-state="connected"]`).waitFor({ timeout: WAIT_MS });
  const before = await readLast(page);
  if (!Object.keys(before).length) throw new Error("the screener shows no last price");
  const started = Date.now();
  await page.waitForTimeout(LIVE_FIRST_LOOK_MS);
  for (;;) {
    const after = await readLast(page);
    const changed = Object.keys(before).filter((s) => after[s] !== undefined && after[s] !== before[s]);
    if (changed.length || Date.now() - started >= LIVE_DEADLINE_MS) {
      const state = await page.locator(tid("connection-state")).getAttribute("data-state");
      report.live_changed = { value: "screener-last", before, after, changed, waited_ms: Date.now() - started, connection: state };
      if (!changed.length) throw new Error(`no last price changed in ${LIVE_DEADLINE_MS / 1000} s: ${JSON.stringify(before)}`);
      return;
    }
    await page.waitForTimeout(1_000);
  }
}

/** Every pair asked for has a chart with a drawn canvas (picking the ones not shown yet). */
async function charts(page) {
  const wanted = symbols.length ? symbols : [];
  for (const symbol of wanted) {
    const pick = page.locator(tid(`chart-pick-${symbol}`));
    await pick.waitFor({ timeout: WAIT_MS });
    if (!(await pick.isChecked())) await pick.check();
  }
  const expect = wanted.length ? wanted : [null];
  for (const symbol of expect) {
    const card = symbol ? page.locator(tid(`chart-${symbol}`)) : page.locator(`${byPrefix("chart-")}.chart-card`).first();
    await card.locator("canvas").first().waitFor({ state: "visible", timeout: WAIT_MS });
  }
  await settle(page, ["chart-grid"]);
  report.charts = await page.locator(`${byPrefix("chart-")}.chart-card`).evaluateAll((els) => els.map((e) => e.dataset.testid.slice(6)));
}

/** The given order's row opens its modal; Close, then the confirmation, cancels it; the answer is shown. */
async function closeOrder(page) {
  const row = page.locator(tid(`order-row-${opts.order}`));
  await row.waitFor({ state: "visible", timeout: WAIT_MS });
  await row.click();
  const detail = page.locator(tid("order-detail"));
  await detail.waitFor({ timeout: WAIT_MS });
  await detail.locator(tid("order-close")).click({ timeout: WAIT_MS });
  await page.locator(tid("confirm-dialog")).locator(tid("confirm-close")).click({ timeout: WAIT_MS });
  const result = page.locator(tid("close-result"));
  await result.waitFor({ state: "visible", timeout: WAIT_MS });
  report.close_result = (await result.innerText()).trim();
  // The detail reloads after the answer: its status badge follows the exchange's confirmation.
  await page.waitForFunction(
    (sel) => /cancel/i.test(document.querySelector(sel)?.textContent ?? ""),
    `${tid("order-detail")} ${tid("order-status")}`,
    { timeout: WAIT_MS },
  );
  report.order_status = (await detail.locator(tid("order-status")).innerText()).trim();
  await page.waitForFunction(() => !document.querySelector('[data-testid="order-detail"] [data-testid="state-loading"]'), null, { timeout: WAIT_MS });
}

async function run(page) {
  step = "login";
  await page.goto(`${base}/`, { waitUntil: "domcontentloaded", timeout: WAIT_MS });
  await page.locator(tid("login-username")).fill(opts.user, { timeout: WAIT_MS });
  await page.locator(tid("login-password")).fill(opts.password);
  await page.locator(tid("login-submit")).click();
  await Promise.race([
    page.locator(tid("current-user")).waitFor({ timeout: WAIT_MS }),
    page.locator(tid("login-error")).waitFor({ timeout: WAIT_MS }).then(async () => {
      throw new Error(`login refused: ${await page.locator(tid("login-error")).innerText()}`);
    }),
  ]);
  step = "connect";
  await page.locator(`${tid("connection-state")}[data-state="connected"]`).waitFor({ timeout: WAIT_MS });

  for (const p of PAGES) {
    step = `page ${p.id}`;
    await visit(page, p);
    if (p.id === "screener") {
      step = "live data on the screener";
      await liveChange(page);
    } else if (p.id === "charts") {
      step = "charts";
      await charts(page);
    }
    step = `screenshot ${p.id}`;
    await screenshot(page, p.id);
    report.pages.push(p.id);
    if (p.id === "orders") {
      step = "close the order through its modal";
      await closeOrder(page);
      await screenshot(page, "order-closed");
      await page.locator(tid("modal-close")).click();
      await page.locator(tid("order-detail")).waitFor({ state: "detached", timeout: WAIT_MS });
    }
  }

  step = "overview at phone width";
  await page.setViewportSize({ width: 375, height: 812 });
  await visit(page, PAGES[0]);
  await screenshot(page, "overview-phone");
}

let browser;
let page;
let failed = null;
try {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
    timeout: WAIT_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("console", (msg) => {
    if (msg.type() === "error") report.console_errors.push({ text: msg.text(), url: msg.location()?.url ?? null, step });
  });
  page.on("pageerror", (err) => report.console_errors.push({ text: `uncaught: ${err.message}`, url: null, step }));
  page.on("response", (res) => {
    if (res.status() >= 500) report.server_errors.push({ status: res.status(), method: res.request().method(), url: res.url(), step });
  });
  page.on("requestfailed", (req) => {
    // Leaving a page aborts its polls on purpose (net::ERR_ABORTED): only other failures are worth a look.
    const error = req.failure()?.errorText ?? "";
    if (!error.includes("ERR_ABORTED")) report.request_failures.push({ error, method: req.method(), url: req.url(), step });
  });
  await run(page);
} catch (err) {
  failed = { step, error: String(err?.message ?? err).replace(/\x1b\[[0-9;]*m/g, "").slice(0, 2_000), screenshot: null };
  if (page) {
    try {
      failed.screenshot = await screenshot(page, `failed-${step.replace(/[^a-z0-9]+/gi, "-")}`);
    } catch (shotErr) {
      failed.screenshot = `none: ${shotErr.message}`;
    }
  }
} finally {
  if (browser) await browser.close().catch(() => undefined);
}
if (failed) report.failed = failed;
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
if (failed) {
  process.stderr.write(`browser-check failed at "${failed.step}": ${failed.error}\n`);
  process.exit(1);
}
