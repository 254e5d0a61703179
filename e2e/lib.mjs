// Shared helpers for Bravely's browser end-to-end tests.
//
// The tests drive Debian's Chromium (/usr/bin/chromium) through the npm
// package `playwright-core` (no bundled browser download: that cannot work on
// these machines). They are run by `e2e/run.sh`, which starts a real
// `bravely serve` on a throw-away data directory and passes:
//
//   BASE_URL        http://127.0.0.1:PORT of the running server
//   ADMIN_EMAIL     superuser created by run.sh
//   ADMIN_PASSWORD  its password
//   ADMIN_NAME      its display name (default "Ada Admin")
//   SCREENSHOT_DIR  where failure screenshots (+ page HTML) are written
//
// Optional knobs: CHROMIUM_PATH (default /usr/bin/chromium), HEADED=1 (show
// the browser, needs a display), SCREENSHOT_ALL=1 (also capture passing
// tests), E2E_TIMEOUT_MS (per action, default 15000).

import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const BASE_URL = (process.env.BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const ADMIN_EMAIL = process.env.ADMIN_EMAIL ?? 'admin@example.com';
export const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD ?? '';
export const ADMIN_NAME = process.env.ADMIN_NAME ?? 'Ada Admin';
export const SCREENSHOT_DIR = path.resolve(process.env.SCREENSHOT_DIR ?? path.join(HERE, 'screenshots'));
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const TIMEOUT_MS = Number(process.env.E2E_TIMEOUT_MS ?? 15_000);
export const NAV_TIMEOUT_MS = 2 * TIMEOUT_MS;
const SCREENSHOT_ALL = process.env.SCREENSHOT_ALL === '1';

// Flags for a headless Chromium in a container/CI as root, with no network
// chatter (the machine only reaches 127.0.0.1 and package registries).
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

// Login form selectors (GET /login).
export const LOGIN = {
  form: 'form:has(input[name=password])',
  email: 'input[name=email]',
  password: 'input[name=password]',
  submit: 'button[type=submit], input[type=submit], button:not([type])',
};

/** Launch the shared browser. Call from a `before` hook; close it in `after`. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: process.env.HEADED !== '1',
    args: CHROMIUM_ARGS,
  });
}

/**
 * One browser for the tests of a `describe` block: call it in the block's body; it launches
 * the browser before the block's tests, closes it after them, and returns a getter for it
 * (what `withPage` takes).
 */
export function sharedBrowser() {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  return () => browser;
}

/**
 * New isolated browser context (own cookie jar) + page, with the base URL set
 * so `page.goto('/admin/')` works, sane timeouts, auto-accepted dialogs
 * (hx-confirm), and a watcher that records problems the test should fail on.
 */
export async function newPage(browser) {
  const context = await browser.newContext({
    baseURL: BASE_URL,
    viewport: { width: 1280, height: 900 },
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(TIMEOUT_MS);
  context.setDefaultNavigationTimeout(NAV_TIMEOUT_MS);
  const page = await context.newPage();
  const problems = watchPage(page);
  return { context, page, problems };
}

/**
 * Collect what should fail a test even when its own assertions pass:
 * uncaught page exceptions, HTTP 5xx from our server, Content Security
 * Policy violations (the app runs under a strict CSP; a blocked script or
 * style is a real bug) and htmx target/swap errors. Other console errors are
 * only reported.
 */
function watchPage(page) {
  const problems = { fatal: [], console: [] };
  page.on('pageerror', (err) => problems.fatal.push(`uncaught exception in page: ${err.message}`));
  page.on('response', (resp) => {
    if (resp.status() >= 500 && resp.url().startsWith(BASE_URL)) {
      problems.fatal.push(`HTTP ${resp.status()} from ${resp.request().method()} ${resp.url()}`);
    }
  });
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (/content security policy/i.test(text)) problems.fatal.push(`CSP violation: ${text}`);
    // htmx could not find or swap into its target: the page is broken.
    else if (/^htmx:(targetError|swapError)\b/.test(text)) problems.fatal.push(`htmx error: ${text}`);
    else problems.console.push(text);
  });
  page.on('dialog', (dialog) => dialog.accept().catch(() => {}));
  return problems;
}

/** File-name-safe slug of a test name. */
export function slug(name) {
  return (
    String(name)
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 80) || 'test'
  );
}

/** Full-page screenshot + the page's HTML into SCREENSHOT_DIR. Never throws. */
export async function capture(page, name, t) {
  const base = path.join(SCREENSHOT_DIR, slug(name));
  try {
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    await page.screenshot({ path: `${base}.png`, fullPage: true, timeout: 10_000 });
    await writeFile(`${base}.html`, await page.content());
    t?.diagnostic(`screenshot: ${base}.png (url: ${page.url()})`);
  } catch (err) {
    t?.diagnostic(`could not capture ${base}.png: ${err.message}`);
  }
}

/**
 * Wrap a test body so it gets a fresh page, optionally logged in, and on
 * failure leaves a full-page screenshot named after the test.
 *
 *   it('does x', withPage(() => browser, async ({ page }) => { ... }, { login: true }));
 */
export function withPage(getBrowser, fn, { login: doLogin = false } = {}) {
  return async (t) => {
    const browser = getBrowser();
    assert.ok(browser, 'browser not launched (launchBrowser() in a before hook)');
    const { context, page, problems } = await newPage(browser);
    let failed = true;
    try {
      if (doLogin) await login(page);
      await fn({ page, context, t });
      assert.deepEqual(problems.fatal, [], 'the page reported problems');
      failed = false;
    } finally {
      if (failed || SCREENSHOT_ALL) await capture(page, t.name, t);
      if (failed) {
        for (const line of problems.fatal) t.diagnostic(`page problem: ${line}`);
        for (const line of problems.console) t.diagnostic(`console error: ${line}`);
      }
      await context.close().catch(() => {});
    }
  };
}

/**
 * Log in through the real form: GET /login (sets the CSRF cookie), fill
 * email + password, submit, wait until we have left /login.
 */
export async function login(page, { email = ADMIN_EMAIL, password = ADMIN_PASSWORD, next } = {}) {
  assert.ok(password, 'ADMIN_PASSWORD is not set (run the tests through e2e/run.sh)');
  const resp = await page.goto(next ? `/login?next=${encodeURIComponent(next)}` : '/login');
  assert.equal(resp?.status(), 200, `GET /login answered ${resp?.status()}`);
  const form = page.locator(LOGIN.form).first();
  await form.locator(LOGIN.email).fill(email);
  await form.locator(LOGIN.password).fill(password);
  await form.locator(LOGIN.submit).first().click();
  try {
    await page.waitForURL((url) => !url.pathname.startsWith('/login'), { timeout: NAV_TIMEOUT_MS });
  } catch {
    const says = normalize(await page.locator('body').innerText().catch(() => '')).slice(0, 300);
    throw new Error(`login as ${email} did not leave /login (now at ${page.url()}); page says: ${says}`);
  }
}

/** GET a path and assert the final response is 200. Returns the response. */
export async function open(page, urlPath) {
  const resp = await page.goto(urlPath);
  assert.ok(resp, `no response for ${urlPath}`);
  assert.equal(resp.status(), 200, `GET ${urlPath} answered ${resp.status()} (now at ${page.url()})`);
  return resp;
}

/** Collapse whitespace. */
export function normalize(text) {
  return String(text ?? '').replace(/\s+/g, ' ').trim();
}

/**
 * Read the rows of a list table in one round trip. For each row: its
 * normalised text, its cells' texts, and the path of the first link (or
 * `data-href`) that points to an object under `pathPrefix`
 * (e.g. '/admin/items/' -> '/admin/items/42/'), with that object's id.
 */
export async function readRows(page, rowSelector, pathPrefix) {
  const rows = await page.locator(rowSelector).evaluateAll((trs) =>
    trs.map((tr) => {
      const clean = (s) => (s ?? '').replace(/\s+/g, ' ').trim();
      const targets = [
        ...[...tr.querySelectorAll('a[href]')].map((a) => ({ href: a.getAttribute('href'), text: a.innerText })),
        ...(tr.dataset.href ? [{ href: tr.dataset.href, text: '' }] : []),
      ].map((l) => ({ path: new URL(l.href, location.href).pathname, text: clean(l.text) }));
      return {
        text: clean(tr.innerText),
        cells: [...tr.querySelectorAll('td, th')].map((c) => clean(c.innerText)),
        links: targets,
      };
    }),
  );
  const escaped = pathPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const objectPath = new RegExp(`^${escaped}([^/]+)/?$`);
  return rows.map((row) => {
    const link = row.links.find((l) => objectPath.test(l.path) && !/^(new|add)$/.test(l.path.match(objectPath)[1]));
    return {
      text: row.text,
      cells: row.cells,
      path: link?.path ?? null,
      id: link ? decodeURIComponent(link.path.match(objectPath)[1]) : null,
      linkText: link?.text ?? '',
    };
  });
}

/**
 * Read a list table with its header: like readRows, plus `col`, a map from
 * each column's header text (e.g. 'Serial number', 'Assigned to'; taken from
 * textContent, since CSS may upper-case the rendered header) to the row's
 * cell text in that column. Returns { headers, rows }.
 */
export async function readTable(page, tableSelector, pathPrefix) {
  const headers = await page
    .locator(tableSelector)
    .first()
    .evaluate((table) => [...(table.tHead?.rows[0]?.cells ?? [])].map((th) => th.textContent.replace(/\s+/g, ' ').trim()));
  const rows = await readRows(page, `${tableSelector} > tbody > tr`, pathPrefix);
  for (const row of rows) {
    row.col = Object.fromEntries(headers.map((h, i) => [h, row.cells[i] ?? '']));
  }
  return { headers, rows };
}

/**
 * The total a list page reports in its meta line ("1–100 of 1,234" -> 1234;
 * "No items match." -> 0). Returns null when the line is not understood.
 */
export async function listTotal(page, selector = 'div.list-meta') {
  const text = normalize(await page.locator(selector).first().innerText());
  if (/^No \S.* match\./.test(text)) return 0;
  const m = text.match(/\bof ([\d,]+)/);
  return m ? Number(m[1].replaceAll(',', '')) : null;
}

/** A string as a double-quoted CSS attribute value. */
export function cssString(value) {
  return `"${String(value).replace(/["\\]/g, '\\$&')}"`;
}

/**
 * Poll `check()` (async, returns truthy when done) until it passes or the
 * timeout expires; then throw with `describe()`'s account of the last state.
 * Used instead of page.waitForFunction so nothing is eval'd in the page
 * (the app's CSP forbids eval).
 */
export async function eventually(check, describe, { timeout = TIMEOUT_MS, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms: ${await describe()}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/**
 * Wait until htmx has no request in flight (it puts the class `htmx-request`
 * on the requesting element or its indicator while one is), then give it a
 * moment to settle the swap.
 */
export async function htmxIdle(page, { timeout = TIMEOUT_MS } = {}) {
  await new Promise((resolve) => setTimeout(resolve, 50));
  await eventually(
    async () => (await page.locator('.htmx-request').count()) === 0,
    () => 'htmx still has a request in flight (.htmx-request present)',
    { timeout, interval: 50 },
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
}
