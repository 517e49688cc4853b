// Drives the real Lockdesk window: tauri-driver (which starts WebKitWebDriver) + selenium.
// Everything runs on 127.0.0.1; every Lockdesk folder is a fresh temp folder.
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Builder, By, until } from 'selenium-webdriver';
import { comm, descendants, exited, portOpen, running } from './proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '../..');
export const outputDir = resolve(root, 'tests/output/e2e');
mkdirSync(outputDir, { recursive: true });

// The debug build `scripts/test.sh` makes (honouring CARGO_TARGET_DIR), unless LOCKDESK_APP names one.
export const appPath =
  process.env.LOCKDESK_APP ?? resolve(root, process.env.CARGO_TARGET_DIR ?? 'target', 'debug/lockdesk');

const DRIVER_PORT = Number(process.env.TAURI_DRIVER_PORT ?? 4444);
const NATIVE_PORT = Number(process.env.TAURI_DRIVER_NATIVE_PORT ?? 4445);

/** Fresh config and data folders for one test (several launches share them). */
export function freshDirs() {
  const base = mkdtempSync(join(tmpdir(), 'lockdesk-e2e-'));
  const config = join(base, 'config');
  const data = join(base, 'data');
  mkdirSync(config);
  mkdirSync(data);
  return { base, config, data };
}

/** Starts tauri-driver with the given Lockdesk folders (and `extraEnv`) in its environment (the
 * app inherits it), once the app is built. A variable `extraEnv` sets to `undefined` is removed
 * (the DMA-BUF one included). */
export async function startDriver(dirs, extraEnv = {}) {
  assert.ok(existsSync(appPath), `the app binary ${appPath} must be built first`);
  const env = {
    ...process.env,
    WEBKIT_DISABLE_DMABUF_RENDERER: '1',
    ...extraEnv,
    LOCKDESK_CONFIG_DIR: dirs.config,
    LOCKDESK_DATA_DIR: dirs.data,
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  };
  for (const [k, v] of Object.entries(extraEnv)) if (v === undefined) delete env[k];
  const child = spawn(
    'tauri-driver',
    ['--port', String(DRIVER_PORT), '--native-port', String(NATIVE_PORT)],
    { env, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const deadline = Date.now() + 30_000;
  while (!(await portOpen(DRIVER_PORT))) {
    if (child.exitCode !== null) throw new Error(`tauri-driver exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('tauri-driver did not listen within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    /** The Lockdesk processes this driver's WebKitWebDriver started (running or not yet reaped). */
    apps() {
      return descendants(child.pid).filter((pid) => comm(pid) === 'lockdesk');
    },
    async stop() {
      // The apps WebKitWebDriver started: normally gone once the session was deleted, but one
      // left running (a quit that did not close its window) would take over the next test
      // file's launch (single instance) and hang it.
      const apps = descendants(child.pid).filter((pid) => comm(pid) === 'lockdesk');
      if (child.exitCode === null) {
        // SIGTERM, never SIGKILL: tauri-driver then stops WebKitWebDriver too.
        child.kill('SIGTERM');
        await exited(child, 10_000);
      }
      // An app still shutting down (its session was just deleted) gets a moment first.
      for (let i = 0; i < 50 && apps.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
      for (const pid of apps.filter(alive)) {
        console.error(`# the app (pid ${pid}) outlived its WebDriver session: stopping it`);
        const signal = (name) => {
          try {
            process.kill(pid, name);
          } catch {
            // exited meanwhile
          }
        };
        signal('SIGTERM');
        for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
        if (alive(pid)) signal('SIGKILL');
      }
    },
  };
}

/** Still running (an exited app whose parent is gone stays a zombie until reaped: not alive). */
export const alive = (pid) => running(pid, 'lockdesk');

/** Ends a test file's (or test's) app: its WebDriver session, if one was started (a failure to
 * quit is said, not thrown), then tauri-driver, if it was started. */
export async function endSession(driver, tauriDriver) {
  if (driver) await driver.quit().catch((e) => console.error(`# quitting the session failed: ${e.message}`));
  await tauriDriver?.stop();
}

/** Around a test file's tests (hooks run in the order they are registered): before them,
 * tauri-driver started on `dirs` (and `extraEnv`); after them, the WebDriver session `driver()`
 * names (if any) ended and tauri-driver stopped. */
export function appAroundTests(dirs, driver, extraEnv = {}) {
  let tauriDriver;
  before(async () => {
    tauriDriver = await startDriver(dirs, extraEnv);
  });
  after(() => endSession(driver(), tauriDriver));
}

/** Launches the app in a new WebDriver session. */
export async function launch() {
  const driver = await new Builder()
    .usingServer(`http://127.0.0.1:${DRIVER_PORT}/`)
    .withCapabilities({ browserName: 'wry', 'tauri:options': { application: appPath } })
    .build();
  await driver.manage().setTimeouts({ implicit: 0, pageLoad: 30_000, script: 30_000 });
  return driver;
}

/** WCAG relative luminance of a computed CSS colour `rgb(r, g, b)` / `rgba(...)`. */
export function luminance(css) {
  const m = /rgba?\((\d+),\s*(\d+),\s*(\d+)/.exec(css);
  assert.ok(m, `a colour: ${css}`);
  const lin = (v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(m[1]) + 0.7152 * lin(m[2]) + 0.0722 * lin(m[3]);
}

/** WCAG contrast ratio of two computed CSS colours (1 to 21). */
export function contrast(a, b) {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

export async function el(driver, css, timeout = 15_000) {
  return driver.wait(until.elementLocated(By.css(css)), timeout, `waiting for ${css}`);
}

export async function textOf(driver, css, timeout = 15_000) {
  const e = await el(driver, css, timeout);
  return e.getText();
}

export async function waitText(driver, css, predicate, timeout = 15_000) {
  let last = '';
  await driver.wait(
    async () => {
      try {
        last = await (await driver.findElement(By.css(css))).getText();
        return predicate(last);
      } catch {
        return false;
      }
    },
    timeout,
    `waiting for ${css} to match (last text: ${JSON.stringify(last)})`,
  );
  return last;
}

/**
 * Brings an element to the middle of its scrolling area first. The window's content scrolls
 * inside <main>, and WebKitWebDriver's own scroll-into-view can leave an element just below the
 * window's edge, where a click lands on nothing.
 */
export async function reveal(driver, css) {
  const e = await el(driver, css);
  await driver.executeScript('arguments[0].scrollIntoView({ block: "center" });', e);
  return e;
}

/** Clicks an element as a person would: visible first. */
export async function click(driver, css) {
  const e = await reveal(driver, css);
  await e.click();
  return e;
}

/** Replaces an input's value the way a person does: select all, type. */
export async function typeInto(driver, css, text) {
  const input = await reveal(driver, css);
  await input.clear();
  if (text) await input.sendKeys(text);
  return input;
}

/**
 * Saves a picture of the X display the window is on. (WebKitWebDriver's own screenshot command
 * hangs under Xvfb, so ImageMagick's `import` grabs the screen instead.) Waits two frames first
 * so the picture shows what the last action rendered.
 */
export async function screenshot(driver, name) {
  await driver.executeAsyncScript(
    'const done = arguments[arguments.length - 1]; requestAnimationFrame(() => requestAnimationFrame(() => done()));',
  );
  const path = join(outputDir, `${name}.png`);
  const r = spawnSync('import', ['-window', 'root', path], { timeout: 20_000 });
  if (r.status !== 0) {
    throw new Error(`screenshot failed: import exited with ${r.status}: ${r.stderr}`);
  }
  return path;
}

export { By, until };
