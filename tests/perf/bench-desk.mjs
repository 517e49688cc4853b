// One launch of the real Lockdesk window for the desk benchmark (scripts/bench-desk.sh runs it
// under Xvfb): starts tauri-driver (which starts WebKitWebDriver, which starts the app), waits
// until the list shows the expected number of rows (or, with --rows 0, the empty list's
// message), then reads in the WebView: the list's first render (window.__lockdeskPerf, from
// performance marks), scrolling frame statistics, rows in the DOM; and from /proc: the PSS of
// the app and every process under it (the WebKit web and network processes); and from the app's
// log: launch to first paint. Prints one JSON line. Measures; asserts nothing about times.
//
//   node tests/perf/bench-desk.mjs --app PATH --config DIR --data DIR --rows N --dmabuf on|off
//        [--settle-ms 3000] [--scroll-ms 3000] [--port 4644]
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childrenMap, comm, portOpen } from '../e2e/proc.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// selenium-webdriver is installed once, for the end-to-end tests.
const require = createRequire(resolve(here, '../e2e/package.json'));
const { Builder, By, until } = require('selenium-webdriver');

function args() {
  const a = process.argv.slice(2);
  const o = { settleMs: 3000, scrollMs: 3000, port: 4644, timeoutMs: 180_000 };
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i]?.replace(/^--/, '');
    const v = a[i + 1];
    if (v === undefined) throw new Error(`--${k} needs a value`);
    const camel = k.replace(/-(.)/g, (_, c) => c.toUpperCase());
    o[camel] = ['rows', 'settleMs', 'scrollMs', 'port', 'timeoutMs'].includes(camel) ? Number(v) : v;
  }
  for (const need of ['app', 'config', 'data', 'rows', 'dmabuf']) {
    if (o[need] === undefined || Number.isNaN(o[need])) throw new Error(`missing --${need}`);
  }
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The app's pid: the `lockdesk` process under tauri-driver. */
function appPid(driverPid) {
  const children = childrenMap();
  const todo = [driverPid];
  while (todo.length) {
    const pid = todo.pop();
    if (pid !== driverPid && comm(pid) === 'lockdesk') return pid;
    todo.push(...(children.get(pid) ?? []));
  }
  return null;
}

/** PSS (KiB) of `root` and every process under it, with each process's share. */
function pssTree(root) {
  const children = childrenMap();
  const todo = [root];
  let totalKiB = 0;
  const parts = [];
  while (todo.length) {
    const pid = todo.pop();
    todo.push(...(children.get(pid) ?? []));
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      const m = /^Pss:\s+(\d+) kB/m.exec(rollup);
      const kib = m ? Number(m[1]) : 0;
      totalKiB += kib;
      parts.push({ pid, name: comm(pid), mib: Math.round(kib / 102.4) / 10 });
    } catch {
      // gone meanwhile, or not readable
    }
  }
  return { mib: Math.round(totalKiB / 102.4) / 10, parts };
}

function firstPaintMs(dataDir) {
  try {
    const logs = join(dataDir, 'logs');
    for (const f of readdirSync(logs)) {
      const m = /first_paint_ms=(\d+)/.exec(readFileSync(join(logs, f), 'utf8'));
      if (m) return Number(m[1]);
    }
  } catch {
    // no log yet
  }
  return null;
}

async function main() {
  const o = args();
  const env = {
    ...process.env,
    LOCKDESK_CONFIG_DIR: o.config,
    LOCKDESK_DATA_DIR: o.data,
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  };
  if (o.dmabuf === 'off') env.WEBKIT_DISABLE_DMABUF_RENDERER = '1';
  else delete env.WEBKIT_DISABLE_DMABUF_RENDERER;
  const nativePort = o.port + 1;
  const tauriDriver = spawn('tauri-driver', ['--port', String(o.port), '--native-port', String(nativePort)], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let driver;
  const out = { rows: o.rows, dmabuf: o.dmabuf };
  try {
    const deadline = Date.now() + 30_000;
    while (!(await portOpen(o.port))) {
      if (tauriDriver.exitCode !== null) throw new Error(`tauri-driver exited with ${tauriDriver.exitCode}`);
      if (Date.now() > deadline) throw new Error('tauri-driver did not listen within 30 s');
      await sleep(100);
    }
    driver = await new Builder()
      .usingServer(`http://127.0.0.1:${o.port}/`)
      .withCapabilities({ browserName: 'wry', 'tauri:options': { application: o.app } })
      .build();
    await driver.manage().setTimeouts({ implicit: 0, pageLoad: 60_000, script: 60_000 });

    const started = Date.now();
    if (o.rows > 0) {
      await driver.wait(
        until.elementLocated(By.css(`[data-testid="conversation-list"][data-count="${o.rows}"]`)),
        o.timeoutMs,
        `waiting for the list to show ${o.rows} rows`,
      );
      out.listShownAfterSessionMs = Date.now() - started;
      await driver.wait(
        async () => (await driver.executeScript('return window.__lockdeskPerf?.firstRender ?? null')) !== null,
        30_000,
        'waiting for __lockdeskPerf.firstRender',
      );
      out.firstRender = await driver.executeScript('return window.__lockdeskPerf.firstRender');
      // When (ms since the page's navigation start) the list's data was in, and painted: the
      // gap before the first includes the IPC call that brings the rows.
      out.marks = await driver.executeScript(`const at = (n) => performance.getEntriesByName(n)[0];
        const data = at('lockdesk:list-data'), paint = at('lockdesk:list-paint');
        const all = {};
        for (const m of performance.getEntriesByType('mark')) if (m.name.startsWith('lockdesk:')) all[m.name] = Math.round(m.startTime);
        return { dataAtMs: data ? data.startTime : null,
                 paintedAtMs: paint ? paint.startTime + paint.duration : null, all };`);
    } else {
      // Connected and empty: the title alone (before the feed connects, a hint follows it).
      const emptyConnected = `const e = document.querySelector('#conversations-empty');
        return e && !e.querySelector('p.muted') ? e.querySelector('.empty-title').textContent : null;`;
      await driver.wait(
        async () => (await driver.executeScript(emptyConnected)) !== null,
        o.timeoutMs,
        'waiting for the connected, empty list',
      );
      out.listShownAfterSessionMs = Date.now() - started;
      out.emptyText = await driver.executeScript(emptyConnected);
    }
    await sleep(o.settleMs);
    const pid = appPid(tauriDriver.pid);
    if (pid === null) throw new Error('no lockdesk process under tauri-driver');
    out.pss = pssTree(pid);
    out.renderedRows = await driver.executeScript('return window.__lockdeskPerf?.renderedRows() ?? null');
    if (o.rows > 0) {
      const sample = (px) =>
        driver.executeAsyncScript(
          'const done = arguments[arguments.length - 1]; window.__lockdeskPerf.sampleScroll(arguments[0], arguments[1]).then(done, (e) => done({ error: String(e) }));',
          o.scrollMs,
          px,
        );
      // The control: animation frames with nothing scrolling, what this WebView on this
      // display can do at all (under Xvfb the frames are painted in software).
      out.idle = await driver.executeAsyncScript(`const done = arguments[arguments.length - 1];
        const ms = arguments[0], stamps = [];
        const step = (ts) => { stamps.push(ts); if (ts - stamps[0] < ms) requestAnimationFrame(step); else {
          const gaps = stamps.slice(1).map((t, i) => t - stamps[i]).sort((a, b) => a - b);
          const dur = stamps[stamps.length - 1] - stamps[0];
          done({ frames: gaps.length, fps: gaps.length * 1000 / dur,
                 p95FrameMs: gaps[Math.min(gaps.length - 1, Math.floor(gaps.length * 0.95))] }); } };
        requestAnimationFrame(step);`, o.scrollMs);
      // A steady scroll (40 px a frame, about half a row) and a fast fling (400 px, ~5 rows).
      out.scroll40 = await sample(40);
      out.scroll400 = await sample(400);
      out.renderedRowsAfterScroll = await driver.executeScript('return window.__lockdeskPerf.renderedRows()');
      out.pssAfterScroll = pssTree(pid).mib;
    }
    out.firstPaintMs = firstPaintMs(o.data);
  } finally {
    if (driver) await driver.quit().catch(() => undefined);
    if (tauriDriver.exitCode === null) {
      // SIGTERM, never SIGKILL: tauri-driver then stops WebKitWebDriver too.
      tauriDriver.kill('SIGTERM');
      await new Promise((r) => {
        const timer = setTimeout(r, 10_000);
        tauriDriver.once('exit', () => {
          clearTimeout(timer);
          r();
        });
      });
    }
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(`bench-desk: ${e?.message ?? e}`);
  process.exit(1);
});
