// Issue 13 in the real window: the list never moves under the pointer. A real gateway
// (`lockdesk-cli gateway` on 127.0.0.1) feeds conversations on demand. With the real pointer
// (WebDriver actions) over a row, new conversations arrive: the row under the pointer is still the
// same conversation at the same place, and a polite "3 new conversations — Show" bar says they
// came; the pointer leaves and they are drawn at the top. A selected conversation near the
// bottom of the screen stays on screen when new ones push the list down. The feed's state is said
// in a status strip of fixed height: the gateway going away and coming back (the "Not receiving"
// alarm in it, then "Live") moves no row either.
// Screenshots in tests/output/e2e/7*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { By, el, endSession, freshDirs, launch, screenshot, startDriver } from './harness.mjs';
import { Feed, waitFeedLive } from './gateway.mjs';

const dirs = freshDirs();

let feed;
let driver;
let tauriDriver;
let pushed = 0;
/** conversation id → visitor id */
const visitors = new Map();

/** iAdvize pushes a conversation to an advisor, then the brand's token provider reports the
 * token the visitor presented (minted now, signed by the brand, encrypted to the desk). */
async function conversation() {
  pushed += 1;
  const { conversationId, visitorId } = await feed.gateway.push();
  visitors.set(conversationId, visitorId);
  await evidence(conversationId, 'brand', `cust-${2000 + pushed}`, String(pushed));
  return conversationId;
}

/** The brand's token provider reports a token presented in a conversation, signed with `signer`'s
 * key ('brand', or 'forger': a key the desk does not trust). */
async function evidence(conversationId, signer, userId, lastName) {
  await feed.evidence(
    { conversationId, visitorId: visitors.get(conversationId) },
    { signer, userId, visitorData: { firstName: 'Visitor', lastName }, device: 'laptop' },
  );
}

async function conversations(n) {
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(await conversation());
  return ids;
}

before(async () => {
  feed = await Feed.start(dirs, { signers: ['forger'] });
  await conversations(6);
  tauriDriver = await startDriver(dirs);
  driver = await launch();
  await waitFeedLive(driver, 6);
});

after(async () => {
  await endSession(driver, tauriDriver);
  feed?.end();
});

/** Waits until the list's title counts `n` conversations (its text content: WebKitWebDriver's
 * visible-text rules answer '' for an element scrolled out of <main>). */
const waitCount = (n) =>
  driver.wait(
    async () =>
      new RegExp(`^\\(${n} `).test(
        await driver.executeScript('return document.querySelector(\'[data-testid="conversation-count"]\')?.textContent ?? ""'),
      ),
    30_000,
    `the list counting ${n} conversations`,
  );

/** The list as drawn: keys top to bottom, the bar's text, whether the order is held. */
const drawn = () =>
  driver.executeScript(
    `const list = document.querySelector('[data-testid="conversation-list"]');
     const rows = [...list.querySelectorAll('[role="option"]')].sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
     const news = document.querySelector('[data-testid="list-news"]');
     return { keys: rows.map((r) => r.dataset.key), news: news.textContent.replace(/\\s+/g, ' ').trim(),
              live: news.getAttribute('aria-live'), held: list.closest('section').dataset.held ?? null };`,
  );

/** Where the window's parts are (for a failure's message). */
const layout = () =>
  driver.executeScript(
    `return [...document.querySelectorAll('header, [role="alert"], [role="status"], main, .list h2, [data-testid="list-news"], [data-testid="conversation-list"]')]
       .map((e) => (e.dataset.testid ?? e.tagName) + '@' + Math.round(e.getBoundingClientRect().top) + '+' + Math.round(e.getBoundingClientRect().height) + (e.scrollTop ? ' scrolled ' + e.scrollTop : '')).join(', ');`,
  );

/** Which row is at a point of the window, and where a row is. */
const rowAt = (x, y) =>
  driver.executeScript(
    'const e = document.elementFromPoint(arguments[0], arguments[1]); return e?.closest(\'[role="option"]\')?.dataset.key ?? null;',
    x,
    y,
  );
const rectOf = (key) =>
  driver.executeScript(
    `const r = document.querySelector('[role="option"][data-key="' + arguments[0] + '"]')?.getBoundingClientRect();
     const v = document.querySelector('[data-testid="conversation-list"]').getBoundingClientRect();
     return r ? { top: r.top, bottom: r.bottom, left: r.left, width: r.width, height: r.height, viewTop: v.top, viewBottom: v.bottom } : null;`,
    key,
  );

test('the row under the pointer stays the same conversation at the same place while new ones arrive', async () => {
  const before = await drawn();
  assert.equal(before.keys.length, 6);
  assert.equal(before.news, '');
  assert.equal(before.live, 'polite');
  const target = before.keys[2];
  const row = await el(driver, `[role="option"][data-key="${target}"]`);
  // The real pointer, over the middle of the third row.
  await driver.actions().move({ origin: row }).perform();
  const r0 = await rectOf(target);
  const x = Math.round(r0.left + r0.width / 2);
  const y = Math.round(r0.top + r0.height / 2);
  assert.equal(await rowAt(x, y), target);
  await driver.wait(async () => (await drawn()).held === 'true', 10_000, 'the order held under the pointer');

  const fresh = await conversations(3);
  await waitCount(9);
  let now;
  await driver.wait(async () => /3 new conversations/.test((now = await drawn()).news), 15_000, 'the bar saying 3 new conversations');
  assert.match(now.news, /^3 new conversations\s*Show$/);
  assert.deepEqual(now.keys, before.keys, 'the rows drawn are the ones that were there, in their order');
  const r1 = await rectOf(target);
  assert.equal(r1.top, r0.top, `at the same place: before ${JSON.stringify(r0)}, now ${JSON.stringify(r1)}; ${await layout()}`);
  assert.equal(await rowAt(x, y), target, 'the same conversation under the pointer');
  for (const id of fresh) assert.ok(!now.keys.includes(id), `${id} held back`);
  await screenshot(driver, '70-list-held-under-pointer');

  // The pointer leaves the list (over the details pane): the new conversations are drawn on top.
  await driver.actions().move({ origin: await el(driver, '#detail-title') }).perform();
  await driver.wait(async () => (now = await drawn()).news === '', 15_000, 'the bar gone once the pointer left');
  assert.equal(now.held, null);
  assert.deepEqual(new Set(now.keys.slice(0, 3)), new Set(fresh), 'the new conversations at the top');
  assert.deepEqual(now.keys.slice(3), before.keys);
  await screenshot(driver, '71-list-released');
});

test('the selected conversation stays on screen when new conversations push the list down', async () => {
  const { keys } = await drawn();
  // The lowest row wholly on screen.
  const onScreen = [];
  for (const k of keys) {
    const r = await rectOf(k);
    if (r && r.top >= r.viewTop - 1 && r.bottom <= r.viewBottom + 1) onScreen.push(k);
  }
  const target = onScreen[onScreen.length - 1];
  const row = await el(driver, `[role="option"][data-key="${target}"]`);
  await driver.actions().move({ origin: row }).click().perform();
  await driver.wait(
    async () => (await driver.findElement(By.css('[data-testid="detail"]')).getAttribute('data-id')) === target,
    15_000,
    'the detail of the clicked conversation',
  );
  // Away from the list: the pointer over the details' title, a click there takes the focus
  // out of the list, so its order is no longer held.
  await driver.actions().move({ origin: await el(driver, '#detail-title') }).click().perform();
  await driver.wait(async () => (await drawn()).held === null, 10_000, 'the list no longer held');

  const more = Math.max(4, onScreen.length);
  await conversations(more);
  await waitCount(keys.length + more);
  let now;
  await driver.wait(async () => (now = await drawn()).keys.includes(target) && now.keys.length >= onScreen.length, 15_000);
  const r = await rectOf(target);
  assert.ok(r, 'the selected row is drawn');
  assert.ok(r.top >= r.viewTop - 1 && r.bottom <= r.viewBottom + 1, `the selected row on screen: ${JSON.stringify(r)}`);
  assert.equal(
    await driver.executeScript(`return document.querySelector('[role="option"][data-key="${target}"]').getAttribute('aria-selected');`),
    'true',
  );
  assert.equal(now.news, '');
  await screenshot(driver, '72-list-selection-kept');
});

test('a held row shows its padlock turning red at once, in place; leaving the list draws the live order', async () => {
  await driver.executeScript('document.querySelector(\'[data-testid="conversation-list"]\').scrollTop = 0;');
  let now;
  await driver.wait(async () => (now = await drawn()).held === null && (await rectOf(now.keys[0]))?.top >= (await rectOf(now.keys[0]))?.viewTop - 1, 10_000);
  const before = now;
  const target = before.keys[1];
  await driver.actions().move({ origin: await el(driver, `[role="option"][data-key="${target}"]`) }).perform();
  await driver.wait(async () => (await drawn()).held === 'true', 10_000, 'the order held under the pointer');
  const r0 = await rectOf(target);

  // A token signed by a key the desk does not trust: the conversation's padlock turns red.
  await evidence(target, 'forger', 'cust-9999', 'Forged');
  const state = () =>
    driver.executeScript(
      `const b = document.querySelector('[role="option"][data-key="' + arguments[0] + '"] [data-testid="conversation-row-body"]');
       return b ? b.dataset.shownState : null;`,
      target,
    );
  await driver.wait(async () => (await state()) === 'failed', 30_000, 'the held row drawn failed');
  now = await drawn();
  assert.deepEqual(now.keys, before.keys, 'the order held');
  assert.equal((await rectOf(target)).top, r0.top, 'the red row where it was');
  assert.match(now.news, /^Order held while you use the list\s*Newest first$/);
  await screenshot(driver, '73-list-held-row-turned-red');

  await driver.actions().move({ origin: await el(driver, '#detail-title') }).perform();
  // The pointer leaves: the live order is drawn (the row goes where its update puts it).
  await driver.wait(async () => (now = await drawn()).held === null, 15_000, 'the order no longer held');
  assert.equal(now.news, '');
  assert.notDeepEqual(now.keys, before.keys, 'the live order drawn');
});

/** What the status strip under the header says: its kind, and the banner in it (if any). */
const strip = () =>
  driver.executeScript(
    `const s = document.querySelector('[data-testid="status-strip"]');
     const b = document.querySelector('[data-testid="not-receiving-banner"]');
     return { kind: s?.dataset.kind ?? null, height: s?.getBoundingClientRect().height ?? null,
              alarm: b?.getAttribute('role') ?? null, text: (b ?? s)?.textContent.replace(/\\s+/g, ' ').trim() ?? null };`,
  );

test('the gateway going away and coming back moves no row: the status strip keeps its height', async () => {
  await driver.executeScript('document.querySelector(\'[data-testid="conversation-list"]\').scrollTop = 0;');
  await driver.wait(async () => (await strip()).kind === 'live', 60_000, 'the strip saying "Live"');
  const live = await strip();
  assert.equal(live.text, 'Live');
  await screenshot(driver, '74-strip-live');
  const { keys } = await drawn();
  const target = keys[1];
  await driver.actions().move({ origin: await el(driver, `[role="option"][data-key="${target}"]`) }).perform();
  await driver.wait(async () => (await drawn()).held === 'true', 10_000, 'the order held under the pointer');
  const r0 = await rectOf(target);
  const x = Math.round(r0.left + r0.width / 2);
  const y = Math.round(r0.top + r0.height / 2);
  assert.equal(await rowAt(x, y), target);
  const detail0 = await driver.executeScript('return document.querySelector("section.detail").getBoundingClientRect().top');
  // The page records, at every frame from now on, the row at the pointer, the target row's top,
  // the detail pane's top and the strip's kind: a shift however brief is seen, not only the
  // states a poll would catch.
  await driver.executeScript(
    `const [key, x, y] = arguments;
     window.__frames = [];
     const look = () => {
       const row = document.querySelector('[role="option"][data-key="' + key + '"]');
       const s = { at: document.elementFromPoint(x, y)?.closest('[role="option"]')?.dataset.key ?? null,
                   top: row ? row.getBoundingClientRect().top : null,
                   detail: document.querySelector('section.detail')?.getBoundingClientRect().top ?? null,
                   kind: document.querySelector('[data-testid="status-strip"]')?.dataset.kind ?? null };
       const last = window.__frames[window.__frames.length - 1];
       if (!last || JSON.stringify(last) !== JSON.stringify(s)) window.__frames.push(s);
       if (!window.__stopFrames) requestAnimationFrame(look);
     };
     look();`,
    target,
    x,
    y,
  );

  const port = new URL(feed.gateway.url).port;
  await feed.gateway.stop();
  await el(driver, '[data-testid="not-receiving-banner"]', 60_000);
  const down = await strip();
  assert.equal(down.kind, 'not-receiving');
  assert.equal(down.alarm, 'alert', `the alarm: ${JSON.stringify(down)}`);
  assert.match(down.text, /^Not receiving: /);
  assert.equal(down.height, live.height, 'the strip as tall as when live');
  assert.equal((await rectOf(target)).top, r0.top, `the row where it was; ${await layout()}`);
  assert.equal(await rowAt(x, y), target, 'the same conversation under the pointer');
  await screenshot(driver, '75-strip-not-receiving');

  // Back where the desk looks for it (the desk retries with its backoff: up to a minute).
  await feed.gateway.start(`127.0.0.1:${port}`);
  await driver.wait(async () => (await strip()).kind === 'live', 150_000, 'the strip saying "Live" again');
  assert.equal((await strip()).height, live.height);
  await screenshot(driver, '76-strip-live-again');
  // (The page records at its next frame: wait for it to have seen "Live" too.)
  await driver.wait(async () => (await driver.executeScript('return window.__frames.at(-1).kind')) === 'live', 10_000);
  const frames = await driver.executeScript('window.__stopFrames = true; return window.__frames;');
  const kinds = frames.map((f) => f.kind).filter((k, i, all) => k !== all[i - 1]);
  assert.ok(kinds.includes('not-receiving') && kinds.at(-1) === 'live', `the strip's states: ${kinds}`);
  for (const f of frames) {
    assert.equal(f.at, target, `the same conversation under the pointer at every frame: ${JSON.stringify(frames)}`);
    assert.equal(f.top, r0.top, `the row at the same y at every frame: ${JSON.stringify(frames)}`);
    assert.equal(f.detail, detail0, `the detail pane at the same y at every frame: ${JSON.stringify(frames)}`);
  }
  assert.equal(await rowAt(x, y), target);
  console.log(`# strip states seen: ${kinds.join(' → ')} (${frames.length} distinct frames)`);
});
