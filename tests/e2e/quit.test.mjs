// Issue 14, "a clean shutdown on quit", in the real window: SIGTERM (a session logout, `kill`,
// `systemctl --user stop`) quits the way the tray's "Quit Lockdesk" does (both call exit(0);
// src-tauri/src/lib.rs, quit_on_signal): the desk stops cleanly (its feed client, the demo's
// gateway, the session's tasks) and the process ends, within the shutdown's bound.
// The evidence is what a person or IT would look at afterwards: the app's own log file says the
// desk stopped cleanly, and the demo gateway's SQLite store was closed (its write-ahead log, there
// while it ran, is folded back and removed only when its last connection closes: a killed
// process leaves it behind).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { alive, el, endSession, freshDirs, launch, startDriver } from './harness.mjs';

test('SIGTERM quits like the tray: the desk stops cleanly, the demo gateway closes its store, the app ends', async () => {
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
  } finally {
    // The app is gone: ending its WebDriver session may fail, which endSession says, not throws.
    await endSession(driver, tauriDriver);
  }
});
