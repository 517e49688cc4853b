// Issue 12 §1 in the real window, fed through a real gateway (`lockdesk-cli gateway` on
// 127.0.0.1) with tokens the brand really signed (`lockdesk-cli token mint`): the genuine
// `cust-48151623`, then `сust-48151623` with a Cyrillic с (a look-alike, and its signed first name
// carries a zero-width space), then `cust-4815<U+200B>1623` (refused by the verifier). The
// look-alike's row carries a rendered, visible badge naming the identity it imitates, so it does
// not look like the genuine row; the identity card and the alert say it too; the zero-width space
// shows as its ⟨U+200B⟩ marker in the list and in the refused token's reason. Screenshots in
// tests/output/e2e/3*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { By, contrast, el, endSession, freshDirs, launch, screenshot, startDriver } from './harness.mjs';
import { Feed, waitFeedLive } from './gateway.mjs';

const dirs = freshDirs();

const GENUINE = 'cust-48151623';
const CYRILLIC = '\u0441ust-48151623';
const ZERO_WIDTH = 'cust-4815\u200B1623';

let feed;
/** The conversation ids of the three visitors. */
const ids = {};
let driver;
let tauriDriver;

before(async () => {
  feed = await Feed.start(dirs);
  // The genuine customer first, then the look-alike (the newer, mixed-script one is the
  // imitation), then the zero-width forgery.
  ids.genuine = await feed.conversation(GENUINE, { firstName: 'Alice', lastName: 'Martin' }, 'laptop');
  ids.cyrillic = await feed.conversation(CYRILLIC, { firstName: 'Ali\u200Bce', lastName: 'Martin' }, 'phone');
  ids.zeroWidth = await feed.conversation(ZERO_WIDTH, { firstName: 'Alice', lastName: 'Martin' }, 'tablet');
  tauriDriver = await startDriver(dirs);
  driver = await launch();
  await waitFeedLive(driver, 3);
});

after(async () => {
  await endSession(driver, tauriDriver);
  feed?.end();
});

/**
 * Scrolls the virtualized list from the top and returns every row rendered on the way, as
 * {key, user (the row's userId text), badge (the look-alike badge's text), imitates (the id the
 * badge names), chips (the ⟨U+XXXX⟩ markers in the row)}. (The page's CSP forbids building
 * functions from strings, so the collecting is spelled out here.)
 */
async function scanRows() {
  return driver.executeAsyncScript(`
    const done = arguments[arguments.length - 1];
    const list = document.querySelector('[data-testid="conversation-list"]');
    const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const seen = new Map();
    (async () => {
      if (!list) return done([]);
      for (let top = 0; top <= list.scrollHeight; top += Math.max(40, list.clientHeight / 2)) {
        list.scrollTop = top;
        await frame();
        for (const row of list.querySelectorAll('[role="option"]')) {
          const badge = row.querySelector('[data-testid="look-alike"]');
          seen.set(row.dataset.key, {
            key: row.dataset.key,
            user: row.querySelector('[data-testid="row-user-id"]')?.textContent ?? null,
            badge: badge?.textContent.replace(/\\s+/g, ' ').trim() ?? null,
            imitates: badge?.querySelector('bdi')?.textContent ?? null,
            mixed: row.querySelector('[data-testid="mixed-script"]')?.textContent ?? null,
            chips: [...row.querySelectorAll('.hazard')].map((c) => c.textContent),
          });
        }
      }
      done([...seen.values()]);
    })().catch(() => done([]));`);
}

/** Brings a row to the middle of the list and measures how its look-alike badge is drawn. */
async function measureBadge(key) {
  return driver.executeAsyncScript(
    `const done = arguments[arguments.length - 1];
     const key = arguments[0];
     const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
     (async () => {
       const list = document.querySelector('[data-testid="conversation-list"]');
       const row = [...list.querySelectorAll('[role="option"]')].find((r) => r.dataset.key === key);
       if (!row) return done(null);
       row.scrollIntoView({ block: 'center' });
       await frame();
       const body = row.querySelector('[data-testid="conversation-row-body"]');
       const badge = row.querySelector('[data-testid="look-alike"]');
       const mixed = row.querySelector('[data-testid="mixed-script"]');
       const icon = row.querySelector('svg[role="img"]');
       const box = (e) => { const b = e.getBoundingClientRect(); return { left: b.left, right: b.right, top: b.top, bottom: b.bottom, width: b.width, height: b.height }; };
       const style = (e) => { const c = getComputedStyle(e); return { visibility: c.visibility, display: c.display, opacity: c.opacity, color: c.color, background: c.backgroundColor, borderLeft: c.borderLeftStyle + ' ' + c.borderLeftColor }; };
       // Text cut by the ellipsis: an inline box wider than its container's content box.
       const cut = (outer, inner) => {
         if (!outer || !inner) return null;
         const c = getComputedStyle(outer);
         return inner.getBoundingClientRect().right > outer.getBoundingClientRect().right - parseFloat(c.paddingRight) - parseFloat(c.borderRightWidth) + 0.5;
       };
       const user = row.querySelector('[data-testid="row-user-id"]');
       const out = { row: box(row), list: box(list), body: style(body), icon: icon.getAttribute('aria-label'),
         userCut: cut(user, user?.querySelector('bdi')) };
       if (badge) {
         const b = box(badge);
         const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
         Object.assign(out, { badge: b, badgeStyle: style(badge), badgeText: badge.textContent.replace(/\\s+/g, ' ').trim(),
           onTop: badge.contains(hit), clipped: badge.scrollWidth > badge.clientWidth || cut(badge, badge.querySelector('.mono')) });
       }
       if (mixed) {
         const b = box(mixed);
         const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
         Object.assign(out, { mixed: b, mixedStyle: style(mixed), mixedText: mixed.textContent.trim(),
           mixedOnTop: mixed.contains(hit), mixedClipped: mixed.scrollWidth > mixed.clientWidth });
       }
       done(out);
     })().catch((e) => done({ error: String(e) }));`,
    key,
  );
}

const textAt = (css) =>
  driver.executeScript('const e = document.querySelector(arguments[0]); return e ? e.textContent : null;', css);

async function openRow(key) {
  const row = await el(driver, `[role="option"][data-key="${key}"]`);
  await driver.executeScript('arguments[0].scrollIntoView({ block: "center" });', row);
  await row.click();
  await driver.wait(
    async () => (await driver.findElement(By.css('[data-testid="detail"]')).getAttribute('data-id')) === key,
    15_000,
    `the detail of ${key}`,
  );
}

test("the look-alike's row shows a visible badge naming the identity it imitates, unlike the genuine row", async () => {
  let rows = [];
  await driver.wait(
    async () => {
      rows = await scanRows();
      return rows.some((r) => r.key === ids.cyrillic && r.badge) && rows.some((r) => r.key === ids.genuine);
    },
    30_000,
    'the look-alike row with its badge, and the genuine one',
  );
  const imitator = rows.find((r) => r.key === ids.cyrillic);
  const genuine = rows.find((r) => r.key === ids.genuine);
  assert.equal(imitator.user, CYRILLIC);
  assert.equal(genuine.user, GENUINE);
  assert.match(imitator.badge, new RegExp(`^⚠ ?Look-alike of ${GENUINE}$`));
  assert.equal(imitator.mixed, 'Mixed scripts');
  assert.equal(imitator.imitates, GENUINE);

  const m = await measureBadge(ids.cyrillic);
  assert.ok(m && m.badge, `the badge is in the row: ${JSON.stringify(m)}`);
  // Rendered: a box of its own, drawn, not covered, not cut, inside its row and the list.
  assert.ok(m.badge.width > 40 && m.badge.height > 8, `badge box ${JSON.stringify(m.badge)}`);
  assert.equal(m.badgeStyle.visibility, 'visible');
  assert.notEqual(m.badgeStyle.display, 'none');
  assert.equal(m.badgeStyle.opacity, '1');
  assert.equal(m.onTop, true, 'nothing covers the badge');
  assert.equal(m.clipped, false, 'the badge text (the imitated id) is not cut off');
  assert.equal(m.userCut, false, "the look-alike's userId is not cut off");
  assert.ok(m.badge.left >= m.row.left - 1 && m.badge.right <= m.row.right + 1, 'inside its row, across');
  assert.ok(m.badge.top >= m.row.top - 1 && m.badge.bottom <= m.row.bottom + 1, 'inside its row, down');
  assert.ok(m.badge.top >= m.list.top && m.badge.bottom <= m.list.bottom, 'inside the visible list');
  assert.ok(contrast(m.badgeStyle.color, m.badgeStyle.background) >= 4.5, `badge contrast (${m.badgeStyle.color} on ${m.badgeStyle.background})`);
  // "Mixed scripts" beside the userId: drawn, uncovered, uncut, inside the row.
  assert.ok(m.mixed && m.mixed.width > 30 && m.mixed.height > 8, `mixed-scripts tag ${JSON.stringify(m.mixed)}`);
  assert.equal(m.mixedStyle.visibility, 'visible');
  assert.equal(m.mixedOnTop, true, 'nothing covers the mixed-scripts tag');
  assert.equal(m.mixedClipped, false, 'the mixed-scripts tag is not cut off');
  assert.ok(m.mixed.left >= m.row.left - 1 && m.mixed.right <= m.row.right + 1, 'the tag is inside its row');
  // The padlock's spoken name says it too.
  assert.equal(m.icon, `Secured (Look-alike of ${GENUINE})`);
  await screenshot(driver, '30-lookalike-row');

  // The genuine row does not look like it: the desk marks it as having a look-alike (its badge
  // names the Cyrillic one, which reads the same), but only the imitation carries the
  // "Mixed scripts" tag.
  const g = await measureBadge(ids.genuine);
  assert.ok(g, 'the genuine row');
  assert.equal(g.mixed, undefined, 'no mixed-scripts tag on the genuine row');
  assert.equal(g.userCut, false, "the genuine userId is not cut off");
  assert.equal(genuine.mixed, null);
});

test('a zero-width space shows as its marker: in the signed name on the list, and in the refused id', async () => {
  const rows = await scanRows();
  const imitator = rows.find((r) => r.key === ids.cyrillic);
  assert.deepEqual(imitator.chips, ['⟨U+200B⟩'], 'the signed first name Ali<U+200B>ce');
  const chip = await driver.executeScript(
    `const row = document.querySelector('[role="option"][data-key="' + arguments[0] + '"]');
     const c = row.querySelector('.conv-name .hazard'); if (!c) return null;
     const b = c.getBoundingClientRect(); const s = getComputedStyle(c);
     return { width: b.width, height: b.height, label: c.getAttribute('aria-label'), name: row.querySelector('.conv-name').textContent,
              border: s.borderTopStyle, visibility: s.visibility };`,
    ids.cyrillic,
  );
  assert.ok(chip, 'the marker is in the name');
  assert.equal(chip.name, 'Ali⟨U+200B⟩ce Martin');
  assert.equal(chip.label, 'Invisible character U+200B');
  assert.ok(chip.width > 10 && chip.height > 5, `the marker has a box: ${JSON.stringify(chip)}`);
  assert.equal(chip.border, 'solid');
  assert.equal(chip.visibility, 'visible');

  // The verifier refused the zero-width userId: its row is a failure with no verified id, and its
  // timeline names the character.
  const forged = rows.find((r) => r.key === ids.zeroWidth);
  assert.ok(forged, 'the zero-width forgery has a row');
  assert.equal(forged.user, null, 'no verified userId is shown for it');
  await openRow(ids.zeroWidth);
  await el(driver, '[data-testid="presentation-reason"]', 15_000);
  const reason = await textAt('[data-testid="presentation-reason"]');
  assert.match(reason, /invalid userId/);
  assert.match(reason, /⟨U\+200B⟩/);
  assert.doesNotMatch(reason, /\u200B/);
  await screenshot(driver, '31-zero-width-refused');
});

test('the identity card and the alert name the imitated identity, in words', async () => {
  await openRow(ids.cyrillic);
  await el(driver, '[data-testid="identity-user-id"] [data-testid="look-alike"]', 15_000);
  assert.match(await textAt('[data-testid="identity-user-id"] [data-testid="look-alike"]'), new RegExp(`Look-alike of ${GENUINE}`));
  assert.match(await textAt('[data-testid="signed-fields"]'), /Ali⟨U\+200B⟩ce/);
  await el(driver, '[data-testid="alert"][data-kind="lookalike_user_id"] [data-testid="alert-summary"]', 15_000);
  assert.equal(
    (await textAt('[data-testid="alert"][data-kind="lookalike_user_id"] [data-testid="alert-summary"]')).replace(/\s+/g, ' ').trim(),
    `${CYRILLIC} looks like ${GENUINE}, an identity this desk already knows.`,
  );
  await screenshot(driver, '32-lookalike-detail');
});
