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
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { appPath, el, freshDirs, launch, screenshot, startDriver, waitText } from './harness.mjs';

const cliPath = process.env.LOCKDESK_CLI ?? join(dirname(appPath), 'lockdesk-cli');
const dirs = freshDirs();
const ISSUER = 'https://brand.example';
const WEBHOOK_SECRET = 'e2e-webhook-secret-0123456789abcdef';
const PROVIDER = 'e2e-provider-credential-0123456789abcdef';
const SUBSCRIBER = 'e2e-subscriber-credential-0123456789abcdef';

let gateway;
let gatewayUrl;
let conversationId;
let driver;
let tauriDriver;

function cli(args) {
  const r = spawnSync(cliPath, args, { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `lockdesk-cli ${args[0]} ${args[1] ?? ''}: ${r.stderr}`);
  return r.stdout.trim();
}

/** The gateway's configuration, with or without the desk's subscriber. */
function writeGatewayConfig(dir, withDesk) {
  writeFileSync(
    join(dir, 'data', 'gateway.toml'),
    `[[webhook]]\nname = "e2e"\nsecret = "${WEBHOOK_SECRET}"\n` +
      `[[provider]]\nname = "brand"\ncredential = "${PROVIDER}"\n` +
      (withDesk ? `[[subscriber]]\nname = "desk"\ncredential = "${SUBSCRIBER}"\nrole = "supervisor"\n` : ''),
    { mode: 0o600 },
  );
}

/** Starts the gateway (on a free port unless `listen` names one) and resolves to its base URL
 * once it listens. */
async function startGateway(dir, listen = '127.0.0.1:0') {
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeGatewayConfig(dir, true);
  gateway = spawn(cliPath, ['gateway', '--listen', listen, '--data', join(dir, 'data')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: 'warn' },
  });
  const lines = createInterface({ input: gateway.stdout });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the gateway did not listen within 30 s')), 30_000);
    gateway.once('exit', (code) => fail(new Error(`the gateway exited with ${code}`)));
    lines.on('line', (line) => {
      const m = /^listening on (\S+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        ok(`http://${m[1]}`);
      }
    });
  });
}

async function post(path, body, headers, base = gatewayUrl) {
  const raw = JSON.stringify(body);
  const res = await fetch(`${base}${path}`, { method: 'POST', body: raw, headers: { 'content-type': 'application/json', ...headers(raw) } });
  assert.ok(res.ok, `${path}: ${res.status} ${await res.text()}`);
}

/** iAdvize pushes a conversation to an advisor, then the brand's token provider reports the
 * token the visitor presented (minted now, signed by the brand, encrypted to the desk). */
async function conversation(userId, visitorData, device) {
  const conversationId = randomUUID();
  const visitorId = randomUUID();
  await post(
    '/webhooks/iadvize',
    { eventId: randomUUID(), eventType: 'v2.conversation.pushed', platform: 'ha', clientId: 1, projectId: 1,
      conversationId, operatorId: 101, channel: 'CHAT', visitorId, visitorExternalId: null,
      createdAt: new Date().toISOString(), sentAt: new Date().toISOString() },
    (raw) => ({ 'x-iadvize-signature': `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}` }),
  );
  const token = cli(['token', 'mint', '--signing-key', join(dirs.base, 'brand', 'private.pem'),
    '--encrypt-to', join(dirs.base, 'desk', 'public.pem'), '--issuer', ISSUER, '--user-id', userId,
    '--visitor-data', JSON.stringify(visitorData), '--lifetime', '600']);
  await post(
    '/v1/evidence',
    { visitorId, conversationId, token, presentedAt: new Date().toISOString(), source: { domain: 'shop.example', device } },
    () => ({ authorization: `Bearer ${PROVIDER}` }),
  );
  return conversationId;
}

before(async () => {
  assert.ok(existsSync(appPath), `the app binary ${appPath} must be built first`);
  assert.ok(existsSync(cliPath), `the CLI ${cliPath} must be built first (cargo build -p lockdesk-cli)`);
  cli(['keys', 'generate', '--out', join(dirs.base, 'brand')]);
  cli(['keys', 'generate', '--out', join(dirs.base, 'desk')]);
  gatewayUrl = await startGateway(join(dirs.base, 'gw'));
  writeFileSync(
    join(dirs.config, 'config.toml'),
    `[feed]\nurl = "${gatewayUrl.replace('http://', 'ws://')}/v1/feed"\ncredential = "${SUBSCRIBER}"\n\n` +
      `[[trust]]\nissuer = "${ISSUER}"\nkey = "${join(dirs.base, 'brand', 'public.pem')}"\n\n` +
      `[decryption]\nkeys = ["${join(dirs.base, 'desk', 'private.pem')}"]\n`,
    { mode: 0o600 },
  );
  conversationId = await conversation('cust-1001', { firstName: 'Alice', lastName: 'Martin' }, 'laptop');
  tauriDriver = await startDriver(dirs);
  driver = await launch();
  await waitText(driver, '#feed-state', (t) => /Connected/.test(t), 60_000);
  await waitText(driver, '[data-testid="conversation-count"]', (t) => /\(1 /.test(t), 60_000);
});

after(async () => {
  if (driver) await driver.quit().catch((e) => console.error(`# quitting the session failed: ${e.message}`));
  await tauriDriver?.stop();
  if (gateway && gateway.exitCode === null) gateway.kill('SIGTERM');
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
  gateway.kill('SIGTERM');
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

/** Stops the running gateway and waits for its exit. */
async function stopGateway() {
  if (gateway.exitCode !== null) return;
  const exited = new Promise((r) => gateway.once('exit', r));
  gateway.kill('SIGTERM');
  await exited;
}

/** `n` conversations pushed to advisors through the gateway at `base`, 32 at a time. */
async function backlog(base, n) {
  const sign = (raw) => ({ 'x-iadvize-signature': `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}` });
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next += 1;
      await post(
        '/webhooks/iadvize',
        { eventId: randomUUID(), eventType: 'v2.conversation.pushed', platform: 'ha', clientId: 1, projectId: 1,
          conversationId: randomUUID(), operatorId: 101, channel: 'CHAT', visitorId: randomUUID(), visitorExternalId: null,
          createdAt: new Date().toISOString(), sentAt: new Date().toISOString() },
        sign,
        base,
      );
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

test('behind a large backlog: the header says how many changes are to go, until live', async () => {
  // (The list shows the newest 20,000: the first conversation stays in it.)
  const BACKLOG = 10_000;
  const port = new URL(gatewayUrl).port;
  // The log grows while the desk cannot reach it: the same gateway data, served on another port.
  await stopGateway();
  const elsewhere = await startGateway(join(dirs.base, 'gw'));
  await backlog(elsewhere, BACKLOG);
  await stopGateway();
  // Every text the catch-up note shows, recorded by the page as it is drawn (a fast catch-up
  // shows it for a second or two).
  await driver.executeScript(
    `window.__catchingUp = [];
     const seen = () => { const b = document.querySelector('[data-testid="catching-up-banner"]');
       if (b) window.__catchingUp.push({ text: b.textContent.replace(/\\s+/g, ' ').trim(), role: b.getAttribute('role') }); };
     new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });`,
  );
  // Back where the desk looks for it (the desk retries with its backoff: up to a minute).
  gatewayUrl = await startGateway(join(dirs.base, 'gw'), `127.0.0.1:${port}`);
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
  writeGatewayConfig(join(dirs.base, 'gw'), false);
  gateway.kill('SIGHUP');
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
