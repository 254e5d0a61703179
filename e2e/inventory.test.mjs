// Browser tests of the inventory flow, as a user sees it: sign in, search
// and filter the item list, assign an unassigned laptop to an employee from
// the item's page (through the htmx typeahead when there are more than 200
// employees, a plain <select> otherwise), and find the assignment in the
// item's history, the item list and the employee's holdings.
//
// Run through `e2e/run.sh target/debug/bravely`: it starts a server with
// `bravely demo --employees 250` data, so the typeahead path is the one
// exercised by default (E2E_DEMO_ARGS='--employees 40' exercises the
// <select>). Every selector and URL the tests rely on is in SEL / URLS.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ADMIN_EMAIL,
  ADMIN_NAME,
  BASE_URL,
  cssString,
  eventually,
  htmxIdle,
  listTotal,
  login,
  normalize,
  open,
  readTable,
  sharedBrowser,
  withPage,
} from './lib.mjs';

// ---------------------------------------------------------------------------
// Selectors and URLs (adjust here when the markup changes)
// ---------------------------------------------------------------------------
const SEL = {
  // Top bar: the signed-in user's name.
  currentUser: 'header.topbar .who',
  main: 'main#main',
  // Admin list pages (src/admin/views.rs list_page).
  listTable: 'table.list',
  listMeta: 'div.list-meta',
  searchInput: 'form.searchbar input[type=search][name=q]',
  searchButton: 'form.searchbar button[type=submit]',
  // Sidebar filter link: block "By <field>", option text.
  filterLink: (field, option) =>
    `aside.filters div.filter:has(> h3:text-is("By ${field}")) li > a:text-is("${option}")`,
  // Item edit page: the assignment panel below the form
  // (src/inventory/handlers.rs item_panel).
  panel: 'section.card#assignment[data-panel=assignment]',
  panelAssignee: 'section#assignment strong.assignee',
  assignForm: 'section#assignment form[hx-post$="/assign"]',
  // The panel's own assignment table: one row per assignment, with a Return
  // form while it is open.
  panelAssignmentRows: 'section#assignment table.simple > tbody > tr',
  employeeSelect: 'select#assign-employee[name=employee]',
  typeahead: 'section#assignment div.typeahead',
  typeaheadInput: 'div.typeahead input[type=search]',
  typeaheadHidden: 'div.typeahead input[type=hidden][name=employee]',
  typeaheadOptions: 'ul.typeahead-results button.typeahead-option[type=button]',
  assignButtonName: /^\s*assign\s*$/i,
  // History page (src/admin/views.rs history); the Changes cell may hold a
  // nested diff table, hence the child combinators.
  historyRows: 'table.history > tbody > tr',
  // Employee holdings page (src/inventory/handlers.rs person): first table = "Holds now".
  holdsNow: 'main#main table.simple',
};

const URLS = {
  home: '/',
  items: '/admin/items/',
  employees: '/admin/employees/',
  activeEmployees: '/admin/employees/?active=yes',
  employeePrefix: '/admin/employees/',
  itemPrefix: '/admin/items/',
  itemEdit: (id) => `/admin/items/${encodeURIComponent(id)}/`,
  itemHistory: (id) => `/admin/items/${encodeURIComponent(id)}/history`,
  holdings: (employeeId) => `/inventory/people/${encodeURIComponent(employeeId)}`,
};

// Above this many employees the assign form offers a typeahead instead of a
// <select> (SELECT_MAX in src/admin/form.rs).
const SELECT_MAX = 200;

// Item list column headers (ResourceDef of items, src/inventory/model.rs).
const COL = { name: 'Name', serial: 'Serial number', kind: 'Kind', assignee: 'Assigned to' };
const EMPTY_CELL = '—';

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const lower = (s) => String(s).toLowerCase();

/** Item rows (rows linking to an item) of the list table on the page. */
async function itemRows(page) {
  const { rows } = await readTable(page, SEL.listTable, URLS.itemPrefix);
  return rows.filter((r) => r.id);
}

/**
 * Wait until the list page (reached by a boosted link/form: htmx swaps the
 * body and pushes the URL) is at `pathname` with `params` in its query
 * string and htmx has settled.
 */
async function waitForList(page, pathname, params) {
  await eventually(
    async () => {
      const url = new URL(page.url());
      return url.pathname === pathname && Object.entries(params).every(([k, v]) => url.searchParams.get(k) === v);
    },
    () => `expected ${pathname}?${new URLSearchParams(params)}, at ${page.url()}`,
  );
  await htmxIdle(page);
  await page.locator(SEL.listTable).first().waitFor();
}

/** Type a query into the list's search box and submit it with Enter. */
async function searchList(page, term) {
  const box = page.locator(SEL.searchInput).first();
  await box.fill(term);
  await box.press('Enter');
  await waitForList(page, URLS.items, { q: term });
  assert.equal(await page.locator(SEL.searchInput).first().inputValue(), term, 'search box keeps the query');
}

/** What a user would type to find `name`: first name + 2 letters of the next word. */
function typeaheadQuery(name) {
  const [first, second = ''] = name.split(' ');
  return second ? `${first} ${second.slice(0, 2)}` : first;
}

/**
 * Pick `employee` ({ id, name }) in the assign form's employee picker.
 * Returns 'typeahead' or 'select'.
 */
async function pickEmployee(page, employee, t) {
  const form = page.locator(SEL.assignForm).first();
  if ((await form.locator(SEL.typeahead).count()) === 0 && (await page.locator(SEL.typeahead).count()) === 0) {
    const select = form.locator(SEL.employeeSelect);
    assert.equal(await select.count(), 1, `assign form has neither a typeahead nor ${SEL.employeeSelect}`);
    await select.selectOption(String(employee.id));
    const chosen = normalize(await select.locator('option:checked').innerText());
    assert.equal(chosen, employee.name, 'the select shows the chosen employee');
    return 'select';
  }

  const input = form.locator(SEL.typeaheadInput).first();
  const results = form.locator(SEL.typeaheadOptions);
  const query = typeaheadQuery(employee.name);
  t.diagnostic(`typing "${query}" into the employee typeahead`);
  await input.click();
  await input.pressSequentially(query, { delay: 40 });

  // The options offered must be the matches for what was typed (not the
  // list the focus event fetched), and include our employee.
  const wanted = form.locator(`${SEL.typeaheadOptions}[data-id=${cssString(employee.id)}]`);
  let offered = [];
  await eventually(
    async () => {
      offered = (await results.allInnerTexts()).map(normalize);
      return offered.length > 0 && offered.every((o) => lower(o).includes(lower(query))) && (await wanted.count()) === 1;
    },
    async () => {
      // Say what the user would see, incl. suggestions outside the list (a
      // response swapped over the <ul> instead of into it).
      const lists = await form.locator('div.typeahead ul.typeahead-results').count();
      const anywhere = (await form.locator('div.typeahead button.typeahead-option').allInnerTexts()).map(normalize);
      return (
        `typeahead for "${query}" should offer only matching names incl. "${employee.name}" (#${employee.id}); ` +
        `offered in ul.typeahead-results: ${JSON.stringify(offered)}; ul.typeahead-results present: ${lists}; ` +
        `suggestions anywhere in the typeahead: ${JSON.stringify(anywhere)}`
      );
    },
  );
  assert.ok(offered.length <= 10, `at most 10 suggestions, got ${offered.length}`);
  assert.equal(normalize(await wanted.innerText()), employee.name, 'option label is the employee name');
  assert.equal(await wanted.getAttribute('data-label'), employee.name);

  await wanted.click();
  await htmxIdle(page); // choosing refocuses the input, which fires a lookup

  assert.equal(await input.inputValue(), employee.name, 'the typeahead shows the chosen name');
  assert.equal(await form.locator(SEL.typeaheadHidden).inputValue(), String(employee.id), 'the chosen id goes with the form');
  assert.equal(await results.count(), 0, 'the suggestion list closes after choosing');
  return 'typeahead';
}

/** Assert the assignment panel on the page names `name` as the assignee. */
async function expectAssignee(page, name, when) {
  const shown = page.locator(SEL.panelAssignee).first();
  try {
    await eventually(
      async () => (await shown.count()) > 0 && normalize(await shown.innerText()) === name,
      async () => `panel says: ${normalize(await page.locator(SEL.panel).first().innerText().catch(() => '(no panel)')).slice(0, 300)}`,
    );
  } catch (err) {
    throw new Error(`${when}: the assignment panel does not show "${name}" as the assignee; ${err.message}`);
  }
  const text = normalize(await page.locator(SEL.panel).first().innerText());
  assert.ok(text.includes(`Assigned to ${name}.`), `${when}: panel should read "Assigned to ${name}.": ${text.slice(0, 300)}`);
  assert.equal(await page.locator(SEL.assignForm).count(), 0, `${when}: an assigned laptop offers no Assign form`);
  const open = page.locator(SEL.panelAssignmentRows).filter({ hasText: name }).filter({ has: page.getByRole('button', { name: 'Return' }) });
  assert.equal(await open.count(), 1, `${when}: the panel lists the open assignment to ${name} with a Return button`);
}

// ---------------------------------------------------------------------------

describe('inventory', () => {
  const getBrowser = sharedBrowser();
  // Set by the assign test, read by the later ones.
  let assigned = null;

  it('anonymous visitors are sent to the login page, and back after signing in', withPage(getBrowser, async ({ page, context }) => {
    await page.goto(URLS.items);
    const url = new URL(page.url());
    assert.equal(url.pathname, '/login', `expected a redirect to /login, at ${page.url()}`);
    assert.equal(url.searchParams.get('next'), URLS.items, 'the login page remembers where we were going');
    assert.equal(await page.locator('input[name=password]').count(), 1, 'login form has a password field');

    await login(page, { next: URLS.items });
    assert.equal(new URL(page.url()).pathname, URLS.items, 'signed in, we are on the page we asked for');
    assert.equal(normalize(await page.locator(SEL.currentUser).innerText()), ADMIN_NAME);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'bravely_session');
    assert.ok(session, `no bravely_session cookie, got: ${cookies.map((c) => c.name).join(', ')}`);
    assert.ok(session.httpOnly, 'bravely_session must be HttpOnly');
  }));

  it('logging in lands on the home page, which greets the user by name', withPage(getBrowser, async ({ page }) => {
    await login(page);
    assert.equal(new URL(page.url()).pathname, URLS.home);
    assert.equal(normalize(await page.locator(SEL.currentUser).innerText()), ADMIN_NAME, 'top bar shows the user');
    const main = normalize(await page.locator(SEL.main).innerText());
    assert.ok(main.includes(`Welcome, ${ADMIN_NAME}.`), `home page should greet "${ADMIN_NAME}": ${main.slice(0, 200)}`);
  }));

  it('the item list can be searched by serial number and by model', withPage(getBrowser, async ({ page }) => {
    await open(page, URLS.items);
    const total = await listTotal(page, SEL.listMeta);
    const all = await itemRows(page);
    assert.ok(all.length > 0 && total >= all.length, `the item list has rows (demo data): ${all.length} rows, total ${total}`);

    // 1. A serial number finds exactly that item.
    const target = all.find((r) => r.col[COL.serial] && r.col[COL.serial] !== EMPTY_CELL);
    assert.ok(target, `no row with a serial number among ${all.length}`);
    const serial = target.col[COL.serial];
    await searchList(page, serial);
    let rows = await itemRows(page);
    assert.deepEqual(
      rows.map((r) => [r.id, r.col[COL.serial]]),
      [[target.id, serial]],
      `searching "${serial}" should list only item ${target.id}`,
    );
    assert.equal(await listTotal(page, SEL.listMeta), 1, 'the meta line counts 1 match');

    // 2. A model name: every row shown has it, and some items are left out.
    const word = target.col[COL.name].split(' ').find((w) => /^[A-Za-z][\w-]{3,}$/.test(w)) ?? target.col[COL.name];
    await searchList(page, word);
    rows = await itemRows(page);
    assert.ok(rows.length > 0, `searching "${word}" lists nothing`);
    const strays = rows.filter((r) => !lower(r.col[COL.name]).includes(lower(word)));
    assert.deepEqual(strays.map((r) => r.col[COL.name]), [], `rows not matching "${word}"`);
    const matched = await listTotal(page, SEL.listMeta);
    assert.ok(matched >= rows.length && matched < total, `"${word}" should narrow ${total} items, meta says ${matched}`);

    // 3. Nonsense finds nothing, and says so.
    await searchList(page, 'zzq-no-such-item-4711');
    assert.deepEqual(await itemRows(page), [], 'no item rows for a nonsense query');
    assert.match(normalize(await page.locator(SEL.listMeta).innerText()), /^No items match\./);
  }, { login: true }));

  it('an unassigned laptop can be assigned to an employee (picker: typeahead above 200 employees, select below)', withPage(getBrowser, async ({ page, t }) => {
    // 1. An active employee, from the employee list; how many employees there are.
    await open(page, URLS.employees);
    const employeeCount = await listTotal(page, SEL.listMeta);
    assert.ok(employeeCount > 0, `no employees (meta: ${await page.locator(SEL.listMeta).innerText()})`);
    await open(page, URLS.activeEmployees);
    const { rows: people } = await readTable(page, SEL.listTable, URLS.employeePrefix);
    const candidates = people.filter((r) => r.id && r.linkText.includes(' '));
    assert.ok(candidates.length > 0, `no active employees on ${URLS.activeEmployees}`);
    const employee = { id: candidates[Math.min(2, candidates.length - 1)].id, name: candidates[Math.min(2, candidates.length - 1)].linkText };

    // 2. Filter the item list to unassigned laptops, as a user would: by the sidebar.
    await open(page, URLS.items);
    await page.locator(SEL.filterLink('kind', 'Laptop')).click();
    await waitForList(page, URLS.items, {});
    const kindId = new URL(page.url()).searchParams.get('kind');
    assert.ok(kindId, `the Laptop filter did not set kind= (at ${page.url()})`);
    await page.locator(SEL.filterLink('assigned', 'No')).click();
    await waitForList(page, URLS.items, { kind: kindId, assigned: 'no' });
    const free = await itemRows(page);
    assert.ok(free.length > 0, 'the demo data has unassigned laptops');
    const wrong = free.filter((r) => r.col[COL.kind] !== 'Laptop' || r.col[COL.assignee] !== EMPTY_CELL);
    assert.deepEqual(wrong.map((r) => r.text), [], 'every listed item is a laptop with nobody assigned');
    const item = free[0];
    t.diagnostic(`assigning item ${item.id} (${item.col[COL.name]}, ${item.col[COL.serial]}) to ${employee.name} (#${employee.id}); ${employeeCount} employees`);

    // 3. Its page says it is not assigned and offers the Assign form.
    await page.locator(`${SEL.listTable} a[href=${cssString(URLS.itemEdit(item.id))}]`).first().click();
    await eventually(
      async () => new URL(page.url()).pathname === URLS.itemEdit(item.id),
      () => `clicking item ${item.id} did not open its page (at ${page.url()})`,
    );
    await htmxIdle(page);
    const panel = page.locator(SEL.panel).first();
    await panel.waitFor();
    assert.match(normalize(await panel.innerText()), /Not assigned\./, 'a free laptop says "Not assigned."');
    assert.equal(await page.locator(SEL.assignForm).count(), 1, 'a free laptop offers the Assign form');

    // 4. The picker is a typeahead above SELECT_MAX employees, a <select> otherwise.
    const picker = await pickEmployee(page, employee, t);
    assert.equal(picker, employeeCount > SELECT_MAX ? 'typeahead' : 'select', `picker with ${employeeCount} employees`);
    t.diagnostic(`picked the employee with the ${picker}`);

    // 5. Assign: htmx posts and swaps the panel, which now names the employee.
    const form = page.locator(SEL.assignForm).first();
    const posted = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(BASE_URL));
    await form.getByRole('button', { name: SEL.assignButtonName }).click();
    const resp = await posted;
    assert.equal(new URL(resp.url()).pathname, `/inventory/items/${item.id}/assign`);
    assert.equal(resp.status(), 200, `assign POST answered ${resp.status()}`);
    await htmxIdle(page);
    assert.equal(new URL(page.url()).pathname, URLS.itemEdit(item.id), 'assigning stays on the item page');
    await expectAssignee(page, employee.name, 'after assigning');

    // 6. ...and so does a fresh load of the page.
    await open(page, URLS.itemEdit(item.id));
    await expectAssignee(page, employee.name, 'after reloading');
    assigned = { ...employee, item };
  }, { login: true }));

  it('the item history shows the assignment', withPage(getBrowser, async ({ page, t }) => {
    if (!assigned) {
      t.skip('needs the assign test to have passed');
      return;
    }
    await open(page, URLS.itemHistory(assigned.item.id));
    const rows = await page.locator(SEL.historyRows).evaluateAll((trs) =>
      trs.map((tr) => [...tr.children].map((td) => td.innerText.replace(/\s+/g, ' ').trim())),
    );
    // Columns: When, Who, What, Changes.
    const entries = rows.filter(([, , what]) => what === 'assigned');
    assert.equal(entries.length, 1, `one "assigned" entry expected in ${JSON.stringify(rows)}`);
    const [, who, , changes] = entries[0];
    assert.ok(changes.includes(`Assigned to ${assigned.name}`), `history note should say "Assigned to ${assigned.name}": ${changes}`);
    assert.ok(who.includes(ADMIN_NAME) || who.includes(ADMIN_EMAIL), `history should name who assigned it: ${who}`);
  }, { login: true }));

  it('the assignment shows in the item list and in the employee\'s holdings', withPage(getBrowser, async ({ page, t }) => {
    if (!assigned) {
      t.skip('needs the assign test to have passed');
      return;
    }
    const serial = assigned.item.col[COL.serial];
    await open(page, `${URLS.items}?q=${encodeURIComponent(serial)}`);
    const rows = await itemRows(page);
    assert.deepEqual(rows.map((r) => [r.id, r.col[COL.assignee]]), [[assigned.item.id, assigned.name]], 'item list shows the new holder');

    await open(page, URLS.holdings(assigned.id));
    const holds = normalize(await page.locator(SEL.holdsNow).first().innerText());
    assert.ok(holds.includes(serial), `"${assigned.name}" holds ${serial}: ${holds.slice(0, 400)}`);
  }, { login: true }));
});
