// The desk end to end, in the real window on the embedded demo (a real in-process gateway and
// the simulator, keys generated at first start): the padlock and verified userId of a secured
// conversation, the forged token's "Verification failed" with its reason, WhatsApp's "Not
// available on this channel", the multi-device person's history with its three devices, the
// platform mismatch with its reason in words (never its code), a
// desktop notification in dunst's history, and hostile signed visitorData shown as literal text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { By, appAroundTests, el, freshDirs, launch, screenshot, waitText } from './harness.mjs';

const dirs = freshDirs();
let driver;
appAroundTests(dirs, () => driver);

/**
 * Scrolls the virtualized list from the top until a rendered row matches `want`, brings it to the
 * middle and returns its key, or null. `want`: {state, shown, user (a verified userId shown),
 * ordinary (no look-alike badge: the demo's look-alike scenario has ids like сust-… with a
 * Cyrillic с), reason (a regular expression source the row's reason must match), skip (keys to
 * pass over)}.
 * (The page's CSP forbids building functions from strings, so the matching is spelled out here.)
 */
async function findRow(want) {
  return driver.executeAsyncScript(
    `const done = arguments[arguments.length - 1];
     const want = arguments[0];
     const match = (row) => {
       const body = row.querySelector('[data-testid="conversation-row-body"]');
       if (!body) return false;
       if (want.state && body.dataset.state !== want.state) return false;
       if (want.shown && body.dataset.shownState !== want.shown) return false;
       if (want.user && !row.querySelector('[data-testid="row-user-id"]')) return false;
       if (want.ordinary && row.querySelector('[data-testid="look-alike"]')) return false;
       if (want.reason) {
         const r = row.querySelector('[data-testid="row-reason"]');
         if (!r || !new RegExp(want.reason, 'i').test(r.textContent)) return false;
       }
       return !(want.skip || []).includes(row.dataset.key);
     };
     const list = document.querySelector('[data-testid="conversation-list"]');
     const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
     (async () => {
       if (!list) return done(null);
       // The list holds its order while the pointer or the focus is in it (after a click): a
       // person looking for a new row uses the bar's Show, as here.
       document.querySelector('[data-testid="held-show"]')?.click();
       await frame();
       for (let top = 0; top <= list.scrollHeight; top += Math.max(40, list.clientHeight / 2)) {
         list.scrollTop = top;
         await frame();
         const hit = [...list.querySelectorAll('[role="option"]')].find(match);
         if (hit) {
           hit.scrollIntoView({ block: 'center' });
           await frame();
           return done(hit.dataset.key);
         }
       }
       done(null);
     })().catch((e) => done(null));`,
    want,
  );
}

/** Waits until a row matching `predicate` exists (the demo plays in real time). */
async function waitRow(predicate, what, timeout = 90_000) {
  let key = null;
  await driver.wait(async () => (key = await findRow(predicate)) !== null, timeout, `waiting for ${what}`);
  return key;
}

async function openRow(key) {
  const row = await el(driver, `[role="option"][data-key="${key}"]`);
  await row.click();
  await el(driver, '[data-testid="detail"]');
  await driver.wait(
    async () => (await driver.findElement(By.css('[data-testid="detail"]')).getAttribute('data-id')) === key,
    15_000,
    `the detail of ${key}`,
  );
}

/** An element's text content (rows of the virtualized list are positioned in a way that makes
 * WebKitWebDriver's visible-text rules answer ''; the DOM's text is what a screen reader reads). */
const textAt = (css) =>
  driver.executeScript('const e = document.querySelector(arguments[0]); return e ? e.textContent : null;', css);
const rowText = (key) => textAt(`[role="option"][data-key="${key}"]`);

test('the desk opens on the demo and says so', async () => {
  driver = await launch();
  const banner = await waitText(driver, '[data-testid="demo-banner"]', (t) => t.length > 0, 60_000);
  assert.match(banner, /DEMO/);
  await waitText(driver, '#feed-state', (t) => /Connected/.test(t), 60_000);
  await waitText(driver, '[data-testid="conversation-count"]', (t) => /\(([1-9]\d*)/.test(t), 60_000);
  await screenshot(driver, '10-desk-demo-list');
});

test('a secured conversation shows the padlock and its verified userId', async () => {
  const key = await waitRow({ state: 'secured', user: true, ordinary: true }, 'a secured row');
  const icon = await driver.findElement(By.css(`[role="option"][data-key="${key}"] svg[role="img"]`));
  assert.equal(await icon.getAttribute('aria-label'), 'Secured');
  const userId = (await textAt(`[role="option"][data-key="${key}"] [data-testid="row-user-id"]`)).trim();
  assert.match(userId, /^cust-\d{8}$/);
  await openRow(key);
  await el(driver, '[data-testid="identity-user-id"]');
  assert.match(await textAt('[data-testid="identity-user-id"]'), new RegExp(`\\b${userId}\\b`));
  assert.match(await textAt('[data-testid="identity-thumbprint"]'), /\S{20,}/);
  await screenshot(driver, '11-desk-secured-detail');
});

test("the forged token's conversation shows Verification failed with its reason", async () => {
  const key = await waitRow({ shown: 'failed', reason: 'signature' }, 'the forged token row');
  const text = await rowText(key);
  assert.match(text, /Verification failed/);
  assert.doesNotMatch(text, /Anonymous/);
  await openRow(key);
  await el(driver, '[data-testid="timeline"]');
  const timeline = await textAt('[data-testid="timeline"]');
  assert.match(timeline, /signature/i);
  await screenshot(driver, '12-desk-forged-detail');
});

test('the WhatsApp conversation shows Not available on this channel', async () => {
  const key = await waitRow({ shown: 'unsupported' }, 'the WhatsApp row');
  const icon = await driver.findElement(By.css(`[role="option"][data-key="${key}"] svg[role="img"]`));
  // Open: "Not available on this channel"; closed: "Closed (was Not available on this channel)".
  assert.match(await icon.getAttribute('aria-label'), /Not available on this channel/);
  assert.match(await rowText(key), /WhatsApp/);
});

test("the multi-device person's history lists all three devices, and hostile visitorData stays text", async () => {
  // Visit the verified people until the one on three devices and the one whose signed profile
  // carries markup have both been seen (the demo creates both in its first 20 seconds).
  let multi = null;
  let hostile = null;
  const seen = new Set();
  await driver.wait(
    async () => {
      const key = await findRow({ user: true, skip: [...seen] });
      if (key === null) {
        seen.clear();
        return false;
      }
      seen.add(key);
      await openRow(key);
      // The detail loads its identity card, then the history: give both a moment.
      await driver.sleep(700);
      const detail = (await textAt('[data-testid="detail"]')) ?? '';
      if (!hostile && detail.includes('<script>window.__lockdeskPwned=2</script>Paris')) hostile = key;
      const count = await textAt('[data-testid="history-device-count"]');
      if (!multi && count !== null && count.trim() === '3') multi = key;
      return multi !== null && hostile !== null;
    },
    120_000,
    'the multi-device person and the hostile profile',
  );

  await openRow(multi);
  await driver.wait(
    async () => (await textAt('[data-testid="history-device-count"]'))?.trim() === '3',
    15_000,
    'the history of three devices',
  );
  const groups = await driver.findElements(By.css('[data-testid="history-group"]'));
  const visitors = new Set();
  const channels = new Set();
  for (const g of groups) {
    visitors.add(await g.getAttribute('data-visitor-id'));
    channels.add(await g.getAttribute('data-channel'));
  }
  assert.equal(visitors.size, 3);
  assert.ok(channels.has('MOBILE_APP') && channels.has('CHAT'), [...channels].join(','));
  await screenshot(driver, '13-desk-multi-device-history');

  await openRow(hostile);
  await el(driver, '[data-testid="signed-fields"]');
  const fields = await textAt('[data-testid="signed-fields"]');
  assert.ok(fields.includes('<img src=x onerror="window.__lockdeskPwned=1"><b>12 rue</b>'), fields);
  assert.ok(fields.includes('<script>window.__lockdeskPwned=2</script>Paris'), fields);
  const ran = await driver.executeScript(
    `return [window.__lockdeskPwned,
             document.querySelectorAll('[data-testid="detail"] img, [data-testid="detail"] script, [data-testid="detail"] b').length];`,
  );
  assert.deepEqual(ran, [null, 0]);
  await screenshot(driver, '14-desk-hostile-visitor-data');
});

test("a platform mismatch's reason is worded, never shown as its code", async () => {
  // The demo's iAdvize stand-in names another userId than the verified one for one closed
  // conversation; the backfill (asking iAdvize's live GraphQL fields only, validated by the
  // stand-in against iAdvize's schema) brings it in once the simulator closes it.
  const key = await waitRow({ shown: 'mismatch', reason: 'names another userId' }, 'the platform mismatch row', 240_000);
  const text = await rowText(key);
  assert.match(text, /iAdvize’s profile names another userId/);
  assert.doesNotMatch(text, /_differs|user_id/);
  await openRow(key);
  await el(driver, '[data-testid="detail-reason"]');
  const reason = await textAt('[data-testid="detail-reason"]');
  assert.match(reason, /iAdvize’s profile names another userId/);
  assert.doesNotMatch(reason, /_differs/);
  await screenshot(driver, '17-desk-platform-mismatch');
});

test('a desktop notification was shown (dunst history)', async () => {
  let history = '';
  await driver.wait(
    async () => {
      // dunst's history holds the notifications no longer on screen; critical ones stay on
      // screen until closed, so close what is displayed first.
      spawnSync('dunstctl', ['close-all'], { timeout: 10_000 });
      const r = spawnSync('dunstctl', ['history'], { encoding: 'utf8', timeout: 10_000 });
      history = r.stdout ?? '';
      return history.includes('Verification failed') && history.includes('Lockdesk');
    },
    30_000,
    'a Lockdesk notification in dunst (history so far: ' + history.slice(0, 300) + ')',
  );
  assert.match(history, /Conversation secured|Verification failed/);
  // Untrusted text reaches the notification server escaped, never as markup.
  assert.doesNotMatch(history, /<script>/);
});

test('the supervisor screen shows the intact audit log, its head hash, and exports a redacted report', async () => {
  const { readFileSync } = await import('node:fs');
  await (await el(driver, '#nav-supervisor')).click();
  await el(driver, '[data-testid="supervisor"]');
  await driver.wait(
    async () => (await driver.findElements(By.css('[data-testid="sup-row"]'))).length > 0,
    30_000,
    'the supervisor table',
  );
  await driver.wait(
    async () => {
      const s = await driver.findElements(By.css('[data-testid="audit-status"][data-ok]'));
      return s.length > 0;
    },
    30_000,
    'the audit status',
  );
  const ok = await driver.findElement(By.css('[data-testid="audit-status"]')).getAttribute('data-ok');
  assert.equal(ok, 'true', await textAt('[data-testid="audit-status"]'));
  assert.match(await textAt('[data-testid="audit-head-hash"]'), /[0-9a-f]{64}/);
  await screenshot(driver, '15-supervisor');

  await (await el(driver, '[data-testid="export-button"]')).click();
  await el(driver, '[data-testid="export-path"]', 30_000);
  const path = (await textAt('[data-testid="export-path"]')).trim();
  assert.ok(path.startsWith(dirs.data), `${path} is in the data folder`);
  const report = readFileSync(path, 'utf8');
  assert.ok(report.split('\n').length > 5, report.slice(0, 200));
  // Redacted: no verified userId (cust-NNNNNNNN) and no signed e-mail address in the report.
  assert.doesNotMatch(report, /cust-\d{8}/);
  assert.doesNotMatch(report, /@mail\.example/);
  await screenshot(driver, '16-supervisor-export');
});
