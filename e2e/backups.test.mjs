// Browser tests of backups and scheduled jobs, as the operator sees them: make a backup, verify
// it, reach the restore confirmation (a wrong word is refused with a field error), start the
// database policy's job from the jobs page and find its backup in the list.
//
// Run through `e2e/run.sh target/debug/bravely`. The restore itself is not carried out here
// (it restarts the server the other tests use); tests/it/restore.rs does it against the binary.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually, normalize, open, sharedBrowser, withPage } from './lib.mjs';

const SEL = {
  backupNow: 'form[action="/backups"] button[type=submit]',
  rows: 'main table.list >> nth=0 >> tbody > tr',
  flash: '.flash',
  jobsRow: (key) => `tr#job-${key}`,
};

describe('backups and scheduled jobs', () => {
  const getBrowser = sharedBrowser();

  it('a manual backup is listed and verifies', withPage(getBrowser, async ({ page }) => {
    await open(page, '/backups');
    await page.locator(SEL.backupNow).click();
    // Boosted forms swap the page in place: wait for the answer's flash, not a load event.
    await page.locator(SEL.flash, { hasText: 'written and checked in' }).waitFor();
    const manual = page.locator(SEL.rows).filter({ hasText: 'manual' });
    assert.equal(await manual.count(), 1, 'one manual backup row');
    assert.match(normalize(await manual.first().innerText()), /not yet/, 'not verified yet');

    await manual.first().getByRole('button', { name: 'Verify' }).click();
    await page.locator(SEL.flash, { hasText: 'is sound' }).waitFor();
    const row = page.locator(SEL.rows).filter({ hasText: 'manual' }).first();
    assert.match(normalize(await row.innerText()), /yes, \d{4}-\d\d-\d\d/, 'the list shows the verification');
  }, { login: true }));

  it('a restore needs the typed confirmation', withPage(getBrowser, async ({ page }) => {
    await open(page, '/backups');
    await page.locator(SEL.rows).filter({ hasText: 'manual' }).first().getByRole('link', { name: 'Restore…' }).click();
    await page.waitForURL(/\/restore$/);
    assert.match(normalize(await page.locator('main').innerText()), /Restoring replaces all current data/);
    await page.locator('input[name=confirm]').fill('restore');
    const [resp] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/restore')),
      page.getByRole('button', { name: 'Restore this backup' }).click(),
    ]);
    assert.equal(resp.status(), 400);
    // Shown in the page (htmx swaps 4xx answers too: see the htmx-config meta).
    await page.locator('.field.has-error', { hasText: 'Type RESTORE in capitals' }).waitFor();
  }, { login: true }));

  it('the jobs page runs the database policy now, and its backup appears', withPage(getBrowser, async ({ page }) => {
    await open(page, '/jobs');
    const row = page.locator(SEL.jobsRow('backup-database'));
    assert.match(normalize(await row.innerText()), /Backup: database.*watched.*0 \*\/4 \* \* \*/);
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/jobs/backup-database/run')),
      row.getByRole('button', { name: 'Run now' }).click(),
    ]);
    let text = '';
    await eventually(
      async () => {
        await open(page, '/jobs');
        text = normalize(await page.locator(SEL.jobsRow('backup-database')).innerText());
        return /run now by/.test(text) && /\bok\b/.test(text);
      },
      async () => `the job's row says: ${text}`,
    );
    await open(page, '/backups');
    assert.equal(await page.locator(SEL.rows).filter({ hasText: 'database' }).count() >= 1, true);
  }, { login: true }));
});
