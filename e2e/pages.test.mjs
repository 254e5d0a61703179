// Every page a superuser can reach by following links works in a real browser.
//
// Starting from the home page, the test follows the same-origin links of each page it opens
// (breadth first, GET only: every change in Bravely is a POST with a CSRF token, so following
// links changes nothing). It opens each page like a user would and requires: a 200 answer,
// a <title> and an <h1>, a layout that fits the window (no sideways page scroll, no table
// running under the filters panel), no 5xx from any request the page makes (htmx panels included), no
// failed asset or fragment load, no Content Security Policy violation, no uncaught script
// error, and no htmx target/swap error. Links that are downloads (CSV exports, backup files)
// are fetched with the session instead of opened, and must answer 200 too.
//
// To keep it bounded, paths are grouped by shape (numbers become {id}): each shape is opened
// at most twice, and each with at most three different query strings (sorting, filters,
// pages), up to MAX_PAGES pages in all. A second walk opens one page of each shape in a phone's
// 390 px width, where no page may scroll sideways (wide tables scroll inside themselves).
//
// Run through `e2e/run.sh target/debug/bravely` (demo data: employees, items, thanks).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BASE_URL, htmxIdle, sharedBrowser, withPage } from './lib.mjs';

const MAX_PAGES = 220;
const PER_SHAPE = 2;
const QUERIES_PER_SHAPE = 3;

// Never followed: leaving the session, machine endpoints, and the sign-in flows (they leave
// for the identity provider or need a fresh browser).
const SKIP = [/^\/logout/, /^\/login/, /^\/auth\//, /^\/setup\//, /^\/slack\//, /^\/metrics/, /^\/healthz/, /^\/readyz/, /^\/assets\//];

// Runs in the page: what is laid out wrong at the test's 1280 px width. The page must not
// scroll sideways, and a table in a list column must not run under the filters panel beside
// it unless a scrolling box clips it.
function layoutProblems() {
  const problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth + 1) problems.push(`the page scrolls sideways (${root.scrollWidth} px wide in ${root.clientWidth})`);
  const aside = document.querySelector('aside.filters');
  const column = document.querySelector('.list-main');
  if (aside && column) {
    const limit = aside.getBoundingClientRect().left;
    for (const table of column.querySelectorAll('table')) {
      let clipped = false;
      for (let el = table.parentElement; el && el !== column.parentElement; el = el.parentElement) {
        if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(el).overflowX)) clipped = true;
      }
      const right = table.getBoundingClientRect().right;
      if (!clipped && right > limit + 1) problems.push(`a table runs ${Math.round(right - limit)} px under the filters panel`);
    }
  }
  return problems;
}

const shapeOf = (pathname) => pathname.replace(/\/\d+(?=\/|$)/g, '/{id}');

/**
 * Walk the pages reachable from the home page (see the top of this file) and collect what is
 * wrong with them. `perShape` and `queriesPerShape` bound the walk.
 */
async function crawl(page, { perShape, queriesPerShape, maxPages }) {
  const failures = [];
  // Assets or fragments that failed to load (a broken link inside the page).
  page.on('response', (resp) => {
    if (resp.url().startsWith(BASE_URL) && resp.status() >= 400 && resp.request().resourceType() !== 'document') {
      failures.push(`${resp.status()} for ${resp.request().resourceType()} ${resp.url()} (on ${page.url()})`);
    }
  });

  const queue = ['/'];
  const seen = new Set(queue);
  const opened = new Map(); // shape -> count
  const queries = new Map(); // shape -> count of query-string variants
  const visited = [];
  let downloads = 0;

  while (queue.length && visited.length < maxPages) {
    const target = queue.shift();
    const url = new URL(target, BASE_URL);
    const shape = shapeOf(url.pathname);
    if ((opened.get(shape) ?? 0) >= perShape) continue;
    if (url.search && (queries.get(shape) ?? 0) >= queriesPerShape) continue;

    // Downloads are not pages: ask with the session's cookies and check the answer.
    const head = await page.request.get(target, { maxRedirects: 5 });
    const type = head.headers()['content-type'] ?? '';
    if (!type.startsWith('text/html')) {
      downloads += 1;
      if (head.status() !== 200) failures.push(`GET ${target} (${type || 'no type'}) answered ${head.status()}`);
      continue;
    }

    opened.set(shape, (opened.get(shape) ?? 0) + 1);
    if (url.search) queries.set(shape, (queries.get(shape) ?? 0) + 1);
    visited.push(target);
    const resp = await page.goto(target);
    if (!resp || resp.status() !== 200) {
      failures.push(`GET ${target} answered ${resp?.status() ?? 'nothing'}`);
      continue;
    }
    await htmxIdle(page);
    const title = (await page.title()).trim();
    if (!title) failures.push(`${target}: no <title>`);
    if ((await page.locator('h1').count()) === 0) failures.push(`${target}: no <h1>`);
    const layout = await page.evaluate(layoutProblems);
    for (const problem of layout) failures.push(`${target}: ${problem}`);

    const links = await page.locator('a[href]').evaluateAll((as) => as.map((a) => a.href));
    for (const href of links) {
      const next = new URL(href);
      if (next.origin !== new URL(BASE_URL).origin) continue;
      if (SKIP.some((re) => re.test(next.pathname))) continue;
      const key = next.pathname + next.search;
      if (seen.has(key)) continue;
      seen.add(key);
      queue.push(key);
    }
  }
  return { failures, opened, visited, downloads, left: queue.length };
}

/** The walk reached the modules: the admin, the Kudos pages and Backups, and enough pages. */
function assertReach({ opened, visited }, min) {
  for (const shape of ['/admin', '/kudos', '/kudos/feed', '/backups']) {
    assert.ok([...opened.keys()].some((s) => s === shape || s === `${shape}/`), `the crawl reached ${shape} (shapes: ${[...opened.keys()].join(' ')})`);
  }
  assert.ok(visited.length >= min, `at least ${min} pages opened (got ${visited.length})`);
}

describe('every page', () => {
  const getBrowser = sharedBrowser();

  it('reachable from the home page loads without errors', withPage(getBrowser, async ({ page, t }) => {
    const run = await crawl(page, { perShape: PER_SHAPE, queriesPerShape: QUERIES_PER_SHAPE, maxPages: MAX_PAGES });
    t.diagnostic(`opened ${run.visited.length} pages of ${run.opened.size} shapes, fetched ${run.downloads} downloads; ${run.left} links left unvisited`);
    assert.deepEqual(run.failures, [], 'pages with problems');
    assertReach(run, 40);
  }, { login: true }));

  it('fits a phone screen (390 px): one page of each shape, none scrolls sideways', withPage(getBrowser, async ({ page, t }) => {
    await page.setViewportSize({ width: 390, height: 844 });
    const run = await crawl(page, { perShape: 1, queriesPerShape: 0, maxPages: MAX_PAGES });
    t.diagnostic(`opened ${run.visited.length} pages at 390 px`);
    assert.deepEqual(run.failures, [], 'pages with problems');
    assertReach(run, 40);
  }, { login: true }));
});
