// Organisation sign-in in a real browser, against the real OpenID provider of
// tests/oidc (npm's oidc-provider) that e2e/run.sh starts and configures as
// provider "test" ("Test Org", groups claim value "eng" -> Bravely group
// "Engineers").
//
// The administrator first creates the Engineers group with the permission to
// view items, through the admin pages. Then a person who has never used
// Bravely opens the item list, is sent to sign in, picks the organisation
// button, signs in on the provider's own page, and lands on the item list as
// a new user whose only permissions are their group's.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { login, normalize, open, sharedBrowser, withPage } from './lib.mjs';

const OIDC = {
  issuer: process.env.OIDC_ISSUER,
  email: process.env.OIDC_USER_EMAIL ?? 'nina@example.com',
  password: process.env.OIDC_USER_PASSWORD ?? 'nina-pw-1234',
  name: process.env.OIDC_USER_NAME ?? 'Nina Newhire',
};

const SEL = {
  providerButton: 'a.btn:text-is("Sign in with Test Org")',
  providerForm: 'form[action^="/interaction/"]',
  currentUser: 'header.topbar .who',
  listTable: 'table.list',
  groupName: 'main form input[name=name]',
  groupPermissions: 'main form select[name=permissions]',
  // Not the sign-out button of the top bar, which is a form too.
  save: 'main form button.btn-primary[type=submit]:text-is("Save")',
};

describe('organisation sign-in (OpenID Connect)', { skip: OIDC.issuer ? false : 'OIDC_ISSUER is not set (run e2e/run.sh)' }, () => {
  const getBrowser = sharedBrowser();

  it(
    'the administrator maps the "eng" group to a Bravely group that may view items',
    withPage(
      getBrowser,
      async ({ page }) => {
        await open(page, '/admin/groups/new');
        await page.locator(SEL.groupName).fill('Engineers');
        await page.locator(SEL.groupPermissions).selectOption(['items.view']);
        await Promise.all([page.waitForURL((u) => !u.pathname.endsWith('/new')), page.locator(SEL.save).click()]);
        await open(page, '/admin/groups/');
        assert.match(normalize(await page.locator('main').innerText()), /Engineers/);
      },
      { login: true },
    ),
  );

  it(
    'a new user signs in through the provider and lands on the page they asked for, with their group\'s permissions',
    withPage(
      getBrowser,
      async ({ page }) => {
        // Not signed in: the item list sends the browser to the sign-in page, next kept.
        await page.goto('/admin/items/');
        assert.equal(new URL(page.url()).pathname, '/login');
        assert.equal(new URL(page.url()).searchParams.get('next'), '/admin/items/');

        // The organisation button leaves Bravely for the provider's own sign-in page.
        await page.locator(SEL.providerButton).click();
        await page.waitForURL((u) => u.href.startsWith(OIDC.issuer));
        const form = page.locator(SEL.providerForm);
        await form.locator('input[name=email]').fill(OIDC.email);
        await form.locator('input[name=password]').fill(OIDC.password);
        await form.locator('button[type=submit]').click();

        // Back in Bravely, on the page first asked for.
        await page.waitForURL((u) => !u.href.startsWith(OIDC.issuer) && !u.pathname.startsWith('/auth/'));
        assert.equal(new URL(page.url()).pathname, '/admin/items/');
        await page.locator(SEL.listTable).waitFor();
        assert.equal(normalize(await page.locator(SEL.currentUser).innerText()), OIDC.name);

        // Only the group's permission: employees stay closed.
        const resp = await page.goto('/admin/employees/');
        assert.equal(resp?.status(), 403);
      },
    ),
  );

  it(
    'the administrator sees the new account, without a password, in the Engineers group',
    withPage(
      getBrowser,
      async ({ page }) => {
        await open(page, `/admin/users/?q=${encodeURIComponent(OIDC.email)}`);
        const row = page.locator('table.list tbody tr', { hasText: OIDC.email });
        await row.locator('a').first().click();
        await page.waitForURL((u) => /\/admin\/users\/\d+\/$/.test(u.pathname));
        const groups = await page.locator('select[name=groups] option:checked').allInnerTexts();
        assert.deepEqual(groups.map(normalize), ['Engineers'], 'the mapped group, and only it');
      },
      { login: true },
    ),
  );
});

// The password form still works for the administrator next to the button (break-glass).
describe('the sign-in page', () => {
  const getBrowser = sharedBrowser();

  it(
    'shows the organisation button next to the password form',
    withPage(
      getBrowser,
      async ({ page }) => {
        await open(page, '/login');
        assert.equal(await page.locator(SEL.providerButton).count(), OIDC.issuer ? 1 : 0);
        assert.equal(await page.locator('input[name=password]').count(), 1);
        await login(page);
        assert.notEqual(new URL(page.url()).pathname, '/login');
      },
    ),
  );
});
