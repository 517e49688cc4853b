// How the desk looks and is used, in the real window on the demo: it follows the OS dark theme
// (GTK_THEME=Adwaita:dark), works from the keyboard alone, and stays readable at 200% zoom
// (Ctrl + = five times, Tauri's zoom hotkeys), and switches to French from Settings. Screenshots
// of each in tests/output/e2e/2*.png.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Key } from 'selenium-webdriver';
import { By, appAroundTests, contrast, el, freshDirs, launch, luminance, screenshot, waitText } from './harness.mjs';

const dirs = freshDirs();
let driver;
appAroundTests(dirs, () => driver, { GTK_THEME: 'Adwaita:dark' });

before(async () => {
  driver = await launch();
  await waitText(driver, '[data-testid="conversation-count"]', (t) => /\(([3-9]|\d\d+)/.test(t), 90_000);
});

test('follows the OS dark theme, with readable text and alarms', async () => {
  const c = await driver.executeScript(`
    const css = (e, p) => e ? getComputedStyle(e).getPropertyValue(p) : null;
    const row = document.querySelector('[role="option"] .conv-user');
    return {
      dark: matchMedia('(prefers-color-scheme: dark)').matches,
      bg: css(document.body, 'background-color'),
      text: css(document.body, 'color'),
      rowText: css(row, 'color'),
    };`);
  assert.equal(c.dark, true, 'the WebView reports the OS dark preference');
  assert.ok(luminance(c.bg) < 0.1, `a dark background: ${c.bg}`);
  assert.ok(contrast(c.bg, c.text) >= 7, `body text contrast ${contrast(c.bg, c.text).toFixed(1)} (${c.text} on ${c.bg})`);
  assert.ok(contrast(c.bg, c.rowText) >= 4.5, `row text contrast (${c.rowText} on ${c.bg})`);
  await screenshot(driver, '20-dark-theme');
});

test('works from the keyboard alone: Tab to the list, arrows, Home/End, Enter opens', async () => {
  const active = () => driver.executeScript('return document.activeElement?.getAttribute("role") ?? document.activeElement?.tagName');
  await driver.executeScript('document.activeElement?.blur(); window.scrollTo(0, 0);');
  let role = null;
  for (let i = 0; i < 20 && role !== 'listbox'; i++) {
    await driver.actions().sendKeys(Key.TAB).perform();
    role = await active();
  }
  assert.equal(role, 'listbox', 'Tab reaches the conversation list');
  const activeRow = () =>
    driver.executeScript(`const l = document.querySelector('[role="listbox"]');
      const id = l.getAttribute('aria-activedescendant'); const r = id && document.getElementById(id);
      return r ? { id, key: r.dataset.key, visible: r.getBoundingClientRect().bottom <= l.getBoundingClientRect().bottom + 1 } : null;`);
  // Focusing the list made the first row active.
  assert.equal((await activeRow())?.id, 'conv-0');
  // The demo keeps changing the list (rows are ordered by their last change), which moves rows
  // under the keys: an attempt counts only if the list's revision did not move during it.
  const revision = () => driver.executeScript('return document.querySelector("section.list").dataset.revision');
  let seen = null;
  for (let attempt = 0; attempt < 8 && seen === null; attempt++) {
    const before = await revision();
    await driver.actions().sendKeys(Key.HOME).perform();
    const home = await activeRow();
    await driver.actions().sendKeys(Key.ARROW_DOWN, Key.ARROW_DOWN).perform();
    const down2 = await activeRow();
    await driver.actions().sendKeys(Key.END).perform();
    const end = await activeRow();
    const count = Number(await driver.executeScript('return document.querySelector("[role=listbox]").dataset.count'));
    await driver.actions().sendKeys(Key.HOME, Key.ARROW_DOWN).perform();
    const second = await activeRow();
    if ((await revision()) === before) seen = { home, down2, end, count, second };
  }
  assert.ok(seen !== null, 'the list never stayed still for a whole attempt');
  assert.equal(seen.home?.id, 'conv-0');
  assert.equal(seen.down2?.id, 'conv-2');
  assert.equal(seen.end?.id, `conv-${seen.count - 1}`);
  assert.equal(seen.end?.visible, true, 'End scrolled the last row into view');
  assert.equal(seen.second?.id, 'conv-1');
  const second = await activeRow();
  await driver.actions().sendKeys(Key.ENTER).perform();
  await driver.wait(
    async () => (await driver.executeScript('return document.querySelector(\'[data-testid="detail"]\')?.dataset.id ?? null')) === second.key,
    15_000,
    'Enter opens the active conversation',
  );
  await screenshot(driver, '21-keyboard');
});

test('stays readable at 200% zoom (Ctrl + = five times)', async () => {
  const measure = () =>
    driver.executeScript(`
      const list = document.querySelector('[role="listbox"]');
      const rows = [...list.querySelectorAll('[role="option"]')];
      const clipped = [];
      for (const r of rows) {
        const box = r.getBoundingClientRect();
        for (const line of r.querySelectorAll('.conv-line')) {
          const b = line.getBoundingClientRect();
          // Each line fits its row (the row's overflow is hidden: a line below it is cut off).
          if (b.bottom > box.bottom + 1 || line.scrollHeight > line.clientHeight + 1) clipped.push(r.dataset.key);
        }
      }
      const icon = list.querySelector('svg[role="img"]').getBoundingClientRect();
      // The list's pane and the detail's pane never overlap, and the list stays inside its pane.
      const [pane, detail] = ['section.list', 'section.detail'].map((c) => document.querySelector(c).getBoundingClientRect());
      const lb = list.getBoundingClientRect();
      const overlap = Math.min(pane.right, detail.right) - Math.max(pane.left, detail.left) > 1 &&
        Math.min(pane.bottom, detail.bottom) - Math.max(pane.top, detail.top) > 1;
      const escapes = lb.bottom > pane.bottom + 1 || lb.right > pane.right + 1;
      const nav = [...document.querySelectorAll('header button, header a, header [role="status"], #feed-state')]
        .filter((e) => e.getBoundingClientRect().right > innerWidth + 1).map((e) => e.id || e.textContent.trim());
      return { innerWidth, icon: icon.width, font: parseFloat(getComputedStyle(document.documentElement).fontSize),
               rows: rows.length, clipped, offscreen: nav, overlap, escapes, overflowX: document.documentElement.scrollWidth - innerWidth };`);
  const before = await measure();
  for (let i = 0; i < 5; i++) {
    await driver.actions().keyDown(Key.CONTROL).sendKeys('=').keyUp(Key.CONTROL).perform();
  }
  // The page zoom halves the page's width in CSS pixels; rows and icons keep their CSS size,
  // so on screen they are twice as large.
  let after = before;
  await driver.wait(
    async () => {
      after = await measure();
      return Math.abs(after.innerWidth * 2 - before.innerWidth) <= 2;
    },
    10_000,
    `the page zoomed to 200% (width ${before.innerWidth} → ${after.innerWidth} CSS px)`,
  );
  assert.equal(after.icon, before.icon, 'icons scale with the page (same CSS size, twice the pixels)');
  assert.ok(after.icon >= 24, `state icons are ${after.icon} CSS px`);
  assert.ok(after.rows > 0, 'rows are rendered');
  assert.equal(after.overlap, false, 'the list and the detail do not overlap');
  assert.equal(after.escapes, false, 'the list stays inside its pane');
  assert.deepEqual(after.clipped, [], 'no row text is cut off');
  assert.deepEqual(after.offscreen, [], 'the header stays inside the window');
  assert.ok(after.overflowX <= 1, `no horizontal scrolling (${after.overflowX} px too wide)`);
  await screenshot(driver, '22-zoom-200');
  await driver.actions().keyDown(Key.CONTROL).sendKeys('0').keyUp(Key.CONTROL).perform();
  await driver.wait(async () => (await measure()).innerWidth === before.innerWidth, 10_000, 'Ctrl + 0 resets the zoom');
});

test('switches to French from Settings: state names, counts and the demo banner', async () => {
  await driver.findElement(By.css('#nav-settings')).click();
  const language = await el(driver, '#field-ui-language');
  await language.findElement(By.css('option[value="fr"]')).click();
  await driver.findElement(By.css('#save-settings')).click();
  await waitText(driver, '#settings-status', (t) => t.length > 0, 15_000);
  await driver.findElement(By.css('#nav-conversations')).click();
  // Saving restarts the desk (the demo starts afresh): wait for rows again.
  await driver.wait(
    async () => (await driver.findElements(By.css('[role="option"] svg[role="img"]'))).length > 0,
    60_000,
    'rows after the restart',
  );
  const french = ['Sécurisée', 'Anonyme', 'Expirée', 'Échec de la vérification', "Incohérence d'identité", 'Non disponible sur ce canal', 'Fermée'];
  const labels = await driver.executeScript(
    `return [...document.querySelectorAll('[role="option"] svg[role="img"]')].map((e) => e.getAttribute('aria-label'));`,
  );
  for (const label of labels) {
    assert.ok(french.some((f) => label.startsWith(f)), `a French state name: ${label}`);
  }
  assert.equal(await driver.executeScript('return document.documentElement.lang'), 'fr');
  // "(1 conversation)", "(2 conversations)": the word agrees with the number (French: 0 and 1
  // are singular).
  const count = await driver.executeScript('return document.querySelector(\'[data-testid="conversation-count"]\')?.textContent ?? ""');
  const m = /\((\d[\d\s]*) (conversations?)\)/.exec(count);
  assert.ok(m, count);
  assert.equal(m[2], Number(m[1].replace(/\s/g, '')) <= 1 ? 'conversation' : 'conversations', count);
  const banner = await driver.executeScript('return document.querySelector(\'[data-testid="demo-banner"]\')?.textContent ?? ""');
  assert.match(banner, /Démo/);
  assert.match(banner, /simulateur intégré/);
  await screenshot(driver, '23-french');
});
