// Measures the conversation list in a real WebKitGTK (the engine of Lockdesk's window on Linux):
// builds bench/ (the real App with a mocked IPC serving N conversations), serves it on
// 127.0.0.1, drives MiniBrowser through WebKitWebDriver, and prints what
// window.__lockdeskPerf recorded. Figures only: nothing here passes or fails on a time.
//
//   xvfb-run -a node bench/run.mjs [rows=10000] [scrollMs=3000]
//
// Optional: BENCH_SHOTS=<dir> saves screenshots of the list and of an opened conversation;
// BENCH_SETUP=<js> runs in the page after the first render (e.g. a 200% text size);
// BENCH_PRE=<js> runs before the frame sampling. `idle` is the frame rate with nothing
// happening: when it is far below 60 the machine is busy and the scroll figures say little.
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';

const rows = Number(process.argv[2] ?? 10000);
const scrollMs = Number(process.argv[3] ?? 3000);
const out = '/tmp/lockdesk-ui-bench';
const build = spawnSync('npx', ['vite', 'build', '--config', 'bench/vite.config.ts', '--logLevel', 'error'], {
  stdio: 'inherit',
  env: { ...process.env, BENCH_OUT: out },
});
if (build.status !== 0) process.exit(1);

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
const server = createServer(async (req, res) => {
  const path = normalize(new URL(req.url, 'http://x').pathname).replace(/^(\.\.[/\\])+/, '');
  try {
    const body = await readFile(join(out, path === '/' ? 'index.html' : path));
    res.writeHead(200, { 'content-type': types[extname(path)] ?? 'text/html' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const pagePort = server.address().port;

const driverPort = 20000 + Math.floor(Math.random() * 20000);
const driver = spawn('WebKitWebDriver', [`--port=${driverPort}`], { stdio: 'ignore' });
const log = (m) => process.stderr.write(`bench: ${m}\n`);
const wd = async (method, path, body) => {
  const r = await fetch(`http://127.0.0.1:${driverPort}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const j = await r.json();
  if (!r.ok) throw new Error(`${method} ${path}: ${JSON.stringify(j.value)}`);
  return j.value;
};
let session;
try {
  for (let i = 0; ; i++) {
    try {
      session = await wd('POST', '/session', {
        capabilities: {
          alwaysMatch: {
            'webkitgtk:browserOptions': {
              binary: '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser',
              args: ['--automation', '--geometry=1280x900'],
            },
          },
        },
      });
      break;
    } catch (e) {
      if (i > 50) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const s = `/session/${session.sessionId}`;
  log('session started');
  await wd('POST', `${s}/url`, { url: `http://127.0.0.1:${pagePort}/?rows=${rows}` });
  const exec = (script, args = []) => wd('POST', `${s}/execute/async`, { script, args });
  await wd('POST', `${s}/timeouts`, { script: scrollMs + 30000 });
  const shot = async (name) => {
    if (!process.env.BENCH_SHOTS) return;
    const png = await wd('GET', `${s}/screenshot`);
    const { writeFile, mkdir } = await import('node:fs/promises');
    await mkdir(process.env.BENCH_SHOTS, { recursive: true });
    await writeFile(join(process.env.BENCH_SHOTS, `${name}.png`), Buffer.from(png, 'base64'));
  };
  const first = await exec(`const done = arguments[arguments.length - 1];
    const t0 = Date.now();
    const t = setInterval(() => { const p = window.__lockdeskPerf;
      if (Date.now() - t0 > 20000) { clearInterval(t); done({ timeout: true, perf: !!p, text: document.body.innerText.slice(0, 400) }); return; }
      if (p && p.firstRender) { clearInterval(t); done({ first: p.firstRender, rendered: p.renderedRows(), vh: innerHeight, marks: performance.getEntriesByType('mark').map((m) => [m.name, Math.round(m.startTime)]) }); } }, 20);`);
  log(`first render: ${JSON.stringify(first)}`);
  if (process.env.BENCH_SETUP) await exec(`const done = arguments[arguments.length - 1]; ${process.env.BENCH_SETUP}; setTimeout(done, 300);`);
  await shot('list');
  if (process.env.BENCH_SHOTS) {
    // Open the fourth conversation (a failed one) with the keyboard, for a detail screenshot.
    await exec(`const done = arguments[arguments.length - 1]; const l = document.querySelector('[role=listbox]'); l.focus();
      for (const key of ['ArrowDown', 'ArrowDown', 'ArrowDown', 'Enter']) l.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true }));
      setTimeout(done, 500);`);
    await shot('detail');
  }
  if (process.env.BENCH_PRE) await exec(`const done = arguments[arguments.length - 1]; ${process.env.BENCH_PRE}; setTimeout(done, 100);`);
  log('sampling');
  const idle = await exec(`const done = arguments[arguments.length - 1];
    window.__lockdeskPerf.sampleScroll(1000, 0).then(done);`);
  const scroll = await exec(`const done = arguments[arguments.length - 1];
    window.__lockdeskPerf.sampleScroll(${scrollMs}, 40).then((r) => done({ ...r, rendered: window.__lockdeskPerf.renderedRows() }));`);
  // The list's own share of a scroll step (scroll event, Svelte update, style and layout; not
  // paint), which does not depend on how fast this machine rasterizes.
  const steps = await exec(`const done = arguments[arguments.length - 1];
    (async () => {
      const el = document.querySelector('[role=listbox]');
      el.scrollTop = 0;
      const times = [];
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        el.scrollTop += 40;
        el.dispatchEvent(new Event('scroll'));
        await Promise.resolve(); await Promise.resolve();
        void document.body.offsetHeight;
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      done({ steps: times.length, medianMs: times[100], p95Ms: times[190], maxMs: times[199] });
    })();`);
  console.log(JSON.stringify({ rows, firstRender: first, idle: { fps: idle.fps, p95FrameMs: idle.p95FrameMs }, scroll, scrollStepJsLayout: steps }, null, 2));
} finally {
  if (session) await wd('DELETE', `/session/${session.sessionId}`).catch(() => undefined);
  driver.kill('SIGTERM');
  server.close();
}
