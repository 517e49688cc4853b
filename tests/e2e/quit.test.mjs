// Issue 14, "a clean shutdown on quit", in the real window: SIGTERM (a session logout, `kill`,
// `systemctl --user stop`) quits the way the tray's "Quit Lockdesk" does (both call exit(0);
// src-tauri/src/lib.rs, quit_on_signal): the desk stops cleanly (its feed client, the demo's
// gateway, the session's tasks) and the process ends, within the shutdown's bound. The window's
// size, changed just before, is remembered although the window got no close event.
// The evidence is what a person or IT would look at afterwards: the app's own log file says the
// desk stopped cleanly, and the demo gateway's SQLite store was closed (its write-ahead log, there
// while it ran, is folded back and removed only when its last connection closes: a killed
// process leaves it behind).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, el, endSession, freshDirs, launch, startDriver } from './harness.mjs';

test('SIGTERM quits like the tray: the desk stops cleanly, the demo gateway closes its store, the window is remembered, the app ends', async () => {
  const dirs = freshDirs();
  const tauriDriver = await startDriver(dirs);
  let driver;
  try {
    driver = await launch();
    // The embedded demo is running: its verified conversations are listed.
    await el(driver, '[role="option"] [data-testid="row-user-id"]', 60_000);
    const apps = tauriDriver.apps().filter(alive);
    assert.equal(apps.length, 1, `one Lockdesk process (found ${apps.length})`);
    const [pid] = apps;
    const gatewayWal = join(dirs.data, 'demo', 'gateway', 'gateway.sqlite3-wal');
    assert.ok(existsSync(gatewayWal), 'while the demo runs, its gateway store is open (its WAL exists)');

    // Resized (the default is 1200 x 780) and left open: quitting gives the window no close event.
    const windowFile = join(dirs.config, 'window.json');
    await driver.manage().window().setRect({ width: 900, height: 600 });
    const rect = await driver.manage().window().getRect();
    assert.ok(Math.abs(rect.width - 900) < 80 && Math.abs(rect.height - 600) < 80, JSON.stringify(rect));
    assert.ok(!existsSync(windowFile), 'the geometry is written on close or quit, not while it runs');

    process.kill(pid, 'SIGTERM');
    // The shutdown is bounded at 5 s (desk::SHUTDOWN_BOUND); 20 s leaves room on a busy machine.
    for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!alive(pid), 'the app ended after SIGTERM');

    const logDir = join(dirs.data, 'logs');
    const log = readdirSync(logDir)
      .filter((f) => f.startsWith('lockdesk'))
      .map((f) => readFileSync(join(logDir, f), 'utf8'))
      .join('');
    assert.match(log, /SIGTERM: quitting/, 'the log says why it quit');
    assert.match(log, /the desk stopped cleanly/, 'the log says the desk stopped cleanly');
    assert.doesNotMatch(log, /did not stop within/, 'the desk stopped within its bound');
    assert.ok(!existsSync(gatewayWal), "the demo gateway's store was closed (no WAL left behind)");
    // The size it was given, in logical pixels (the same as the screen's here), not the default.
    const saved = JSON.parse(readFileSync(windowFile, 'utf8'));
    assert.ok(Math.abs(saved.width - 900) < 80 && Math.abs(saved.height - 600) < 80, JSON.stringify(saved));
    assert.equal(typeof saved.x, 'number', JSON.stringify(saved));
    assert.equal(typeof saved.y, 'number', JSON.stringify(saved));
  } finally {
    // The app is gone: ending its WebDriver session may fail, which endSession says, not throws.
    await endSession(driver, tauriDriver);
  }
});
