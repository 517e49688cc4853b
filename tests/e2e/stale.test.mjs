// Issue 13 in the real window: a lost feed does not look like a healthy one. A real gateway
// (`lockdesk-cli gateway` on 127.0.0.1) feeds one secured conversation; the row says "Secured" in
// words with a solid padlock and no banner. Then the gateway goes away: a banner under the header
// says the desk is not receiving and that the padlocks show the state when the feed was last live
// (its time), the padlock is drawn stale (greyed) and the row says "as of" that time. Then the
// gateway's log grows by a large backlog while the desk cannot reach it (the same log served on
// another port), and the gateway comes back where the desk looks for it: the desk catches up, and
// the header says how many changes are to go ("Catching up with the gateway: 10,000 changes to
// go"), until it is live again. Last, the gateway revokes the desk's credential (SIGHUP with its
// subscriber removed): the banner says the credential was refused, and one "Not receiving"
// desktop notification says so (read from dunst's history, under the private session bus
// scripts/test.sh starts). Screenshots in tests/output/e2e/4*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { el, endSession, freshDirs, launch, screenshot, startDriver, waitText } from './harness.mjs';
import { Feed, waitFeedLive } from './gateway.mjs';

const dirs = freshDirs();

let feed;
let conversationId;
let driver;
let tauriDriver;

before(async () => {
  feed = await Feed.start(dirs);
  conversationId = await feed.conversation('cust-1001', { firstName: 'Alice', lastName: 'Martin' }, 'laptop');
  tauriDriver = await startDriver(dirs);
  driver = await launch();
  await waitFeedLive(driver, 1);
});

after(async () => {
  await endSession(driver, tauriDriver);
  feed?.end();
});

/** The row's state words, its icon's spoken name, whether it is drawn stale, its computed filter. */
async function rowLook() {
  return driver.executeScript(
    `const row = document.querySelector('[role="option"][data-key="' + arguments[0] + '"]');
     if (!row) return null;
     const icon = row.querySelector('svg[role="img"]');
     return { words: row.querySelector('[data-testid="row-state"]')?.textContent ?? null, name: icon.getAttribute('aria-label'),
              stale: icon.dataset.stale ?? null, filter: getComputedStyle(icon).filter,
              solid: !!icon.querySelector('rect[fill="currentColor"]') };`,
    conversationId,
  );
}

const banner = () =>
  driver.executeScript(
    `const b = document.querySelector('[data-testid="not-receiving-banner"]');
     if (!b) return null;
     const r = b.getBoundingClientRect(); const h = document.querySelector('header').getBoundingClientRect();
     return { text: b.textContent.replace(/\\s+/g, ' ').trim(), role: b.getAttribute('role'), height: r.height, below: r.top >= h.bottom - 1,
              visibility: getComputedStyle(b).visibility };`,
  );

test('live: the row says its state in words, a solid padlock, no banner', async () => {
  await el(driver, `[role="option"][data-key="${conversationId}"] [data-testid="row-state"]`, 30_000);
  const look = await rowLook();
  assert.equal(look.words, 'Secured');
  assert.equal(look.name, 'Secured');
  assert.equal(look.stale, null);
  assert.equal(look.solid, true);
  assert.equal(await banner(), null);
  await screenshot(driver, '40-live');
});

test('the gateway gone: a banner says so, and the padlock is drawn stale with its time', async () => {
  feed.gateway.kill('SIGTERM');
  await el(driver, '[data-testid="not-receiving-banner"]', 60_000);
  const b = await banner();
  assert.equal(b.role, 'alert');
  assert.equal(b.visibility, 'visible');
  assert.ok(b.below, 'under the header');
  assert.ok(b.height > 16, `a banner of its own: ${JSON.stringify(b)}`);
  const m = /^Not receiving: (.+)\. Padlocks show the state when the feed was last live \((\d{1,2}:\d{2}(?: [AP]M)?)\)\.$/.exec(b.text);
  assert.ok(m, `the banner's words: ${b.text}`);
  assert.match(m[1], /gateway|connection|feed/);
  let look;
  await driver.wait(async () => (look = await rowLook())?.stale === 'true', 15_000, 'the padlock drawn stale');
  assert.equal(look.words, `Secured · as of ${m[2]}`);
  assert.equal(look.name, 'Secured, stale: the feed is not live');
  assert.equal(look.solid, false, 'the padlock only outlined');
  assert.match(look.filter, /grayscale\(1\)/);
  await screenshot(driver, '41-not-receiving');
});

/** `n` conversations pushed to advisors through the running gateway, 32 at a time. */
async function backlog(n) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next += 1;
      await feed.gateway.push();
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

test('behind a large backlog: the header says how many changes are to go, until live', async () => {
  // (The list shows the newest 20,000: the first conversation stays in it.)
  const BACKLOG = 10_000;
  const port = new URL(feed.gateway.url).port;
  // The log grows while the desk cannot reach it: the same gateway data, served on another port.
  await feed.gateway.stop();
  await feed.gateway.start();
  await backlog(BACKLOG);
  await feed.gateway.stop();
  // Every text the catch-up note shows, recorded by the page as it is drawn (a fast catch-up
  // shows it for a second or two).
  await driver.executeScript(
    `window.__catchingUp = [];
     const seen = () => { const b = document.querySelector('[data-testid="catching-up-banner"]');
       if (b) window.__catchingUp.push({ text: b.textContent.replace(/\\s+/g, ' ').trim(), role: b.getAttribute('role') }); };
     new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });`,
  );
  // Back where the desk looks for it (the desk retries with its backoff: up to a minute).
  await feed.gateway.start(`127.0.0.1:${port}`);
  let seen = [];
  await driver.wait(async () => (seen = await driver.executeScript('return window.__catchingUp')).length > 0, 150_000,
    'the catch-up note');
  await screenshot(driver, '42-catching-up');
  const first = seen[0];
  assert.equal(first.role, 'status');
  const m = /^Catching up with the gateway: ([\d,]+) changes? to go\.$/.exec(first.text);
  assert.ok(m, `the note's words: ${first.text}`);
  const toGo = Number(m[1].replaceAll(',', ''));
  assert.ok(toGo > 0 && toGo <= BACKLOG, `${toGo} to go, of a ${BACKLOG}-entry backlog`);
  // Caught up: no note, no banner, live padlocks.
  await driver.wait(async () => (await driver.executeScript(
    `return !document.querySelector('[data-testid="catching-up-banner"]') && !document.querySelector('[data-testid="not-receiving-banner"]')`)),
  120_000, 'live again');
  await waitText(driver, '#feed-state', (t) => /Connected/.test(t), 30_000);
  let look;
  await driver.wait(async () => (look = await rowLook())?.stale === null, 15_000, 'the padlock live again');
  assert.equal(look.words, 'Secured');
  console.log(`# catch-up notes: ${JSON.stringify(seen.slice(0, 5))} … (${seen.length})`);
});

/** dunst's history: Lockdesk's "Not receiving" notifications, as {summary, body, timeout}. */
function notReceivingNotices() {
  spawnSync('dunstctl', ['close-all'], { timeout: 10_000 });
  const r = spawnSync('dunstctl', ['history'], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `dunstctl history: ${r.stderr}`);
  return (JSON.parse(r.stdout).data?.[0] ?? [])
    .filter((n) => n.appname?.data === 'Lockdesk' && n.summary?.data === 'Not receiving')
    .map((n) => ({ body: n.body?.data ?? '', timeout: n.timeout?.data ?? null }));
}

test('the credential revoked: the banner says so, and one notification', async () => {
  assert.ok(process.env.DBUS_SESSION_BUS_ADDRESS, 'a private session bus with dunst (scripts/test.sh)');
  const before = notReceivingNotices().length;
  feed.gateway.writeConfig(false);
  feed.gateway.kill('SIGHUP');
  await driver.wait(async () => (await banner())?.text?.includes('refused this desk’s credential'), 30_000,
    'the banner naming the refused credential');
  assert.equal((await banner()).role, 'alert');
  let notices = [];
  await driver.wait(async () => (notices = notReceivingNotices()).length > before, 30_000, 'the notification');
  // Said once (the desk stopped for good: no retry, no second notice).
  await new Promise((r) => setTimeout(r, 5_000));
  notices = notReceivingNotices();
  assert.equal(notices.length, before + 1, JSON.stringify(notices));
  const n = notices[0];
  assert.match(n.body, /^The gateway no longer accepts this desk’s credential: conversations and padlocks are no longer updated\./);
  assert.equal(Number(n.timeout), 0, 'an alarm: until dismissed');
  await screenshot(driver, '43-revoked');
});
