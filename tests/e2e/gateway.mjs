// A real gateway feeding the real window: `lockdesk-cli gateway` on 127.0.0.1, fed the way iAdvize
// (signed webhooks) and the brand's token provider (tokens the brand really signed with
// `lockdesk-cli token mint`, encrypted to the desk) feed it, and the desk's config.toml on its
// feed. Shared by the test files that need a gateway (lookalike, stale, list_stability); each
// keeps only what it tests.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { appPath, waitText } from './harness.mjs';

// The CLI next to the app (scripts/test.sh builds both), unless LOCKDESK_CLI names one.
export const cliPath = process.env.LOCKDESK_CLI ?? join(dirname(appPath), 'lockdesk-cli');
const ISSUER = 'https://brand.example';
const WEBHOOK_SECRET = 'e2e-webhook-secret-0123456789abcdef';
const PROVIDER = 'e2e-provider-credential-0123456789abcdef';
const SUBSCRIBER = 'e2e-subscriber-credential-0123456789abcdef';

/** Runs `lockdesk-cli` to its end and returns what it printed (trimmed); a failure fails the test. */
export function cli(args) {
  const r = spawnSync(cliPath, args, { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `lockdesk-cli ${args[0]} ${args[1] ?? ''}: ${r.stderr}`);
  return r.stdout.trim();
}

/** One gateway process at a time, its data (configuration and log) in `dir`/data: stopped and
 * started again, it serves the same log. */
export class Gateway {
  constructor(dir) {
    this.data = join(dir, 'data');
    /** The running (or last) `lockdesk-cli gateway` process. */
    this.process = null;
    /** Its base URL (http://127.0.0.1:port) once it listens. */
    this.url = null;
  }

  /** Writes its configuration: the iAdvize webhook, the brand's provider and, `withDesk`, the
   * desk's subscriber (a supervisor). */
  writeConfig(withDesk) {
    writeFileSync(
      join(this.data, 'gateway.toml'),
      `[[webhook]]\nname = "e2e"\nsecret = "${WEBHOOK_SECRET}"\n` +
        `[[provider]]\nname = "brand"\ncredential = "${PROVIDER}"\n` +
        (withDesk ? `[[subscriber]]\nname = "desk"\ncredential = "${SUBSCRIBER}"\nrole = "supervisor"\n` : ''),
      { mode: 0o600 },
    );
  }

  /** Starts it with the desk among its subscribers (on a free port unless `listen` names one) and
   * resolves to its base URL once it listens. */
  async start(listen = '127.0.0.1:0') {
    mkdirSync(this.data, { recursive: true });
    this.writeConfig(true);
    const child = spawn(cliPath, ['gateway', '--listen', listen, '--data', this.data], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, RUST_LOG: 'warn' },
    });
    this.process = child;
    const lines = createInterface({ input: child.stdout });
    this.url = await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error('the gateway did not listen within 30 s')), 30_000);
      child.once('exit', (code) => fail(new Error(`the gateway exited with ${code}`)));
      lines.on('line', (line) => {
        const m = /^listening on (\S+)$/.exec(line);
        if (m) {
          clearTimeout(timer);
          ok(`http://${m[1]}`);
        }
      });
    });
    return this.url;
  }

  /** Whether its process has ended. */
  get gone() {
    return !this.process || this.process.exitCode !== null || this.process.signalCode !== null;
  }

  /** Sends it a signal (SIGTERM: it stops; SIGHUP: it reads its configuration again). */
  kill(signal) {
    this.process.kill(signal);
  }

  /** Stops it and waits for its exit. */
  async stop() {
    if (this.gone) return;
    const exited = new Promise((r) => this.process.once('exit', r));
    this.kill('SIGTERM');
    await exited;
  }

  /** POSTs `body` as JSON to `path`, with the headers `headers(raw body)` gives; anything but a
   * 2xx fails the test. */
  async post(path, body, headers) {
    const raw = JSON.stringify(body);
    const res = await fetch(`${this.url}${path}`, { method: 'POST', body: raw, headers: { 'content-type': 'application/json', ...headers(raw) } });
    assert.ok(res.ok, `${path}: ${res.status} ${await res.text()}`);
  }

  /** iAdvize pushes a new conversation to an advisor (a signed webhook); resolves to its ids. */
  async push() {
    const conversationId = randomUUID();
    const visitorId = randomUUID();
    await this.post(
      '/webhooks/iadvize',
      { eventId: randomUUID(), eventType: 'v2.conversation.pushed', platform: 'ha', clientId: 1, projectId: 1,
        conversationId, operatorId: 101, channel: 'CHAT', visitorId, visitorExternalId: null,
        createdAt: new Date().toISOString(), sentAt: new Date().toISOString() },
      (raw) => ({ 'x-iadvize-signature': `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}` }),
    );
    return { conversationId, visitorId };
  }

  /** The brand's token provider reports the token a visitor presented. */
  async present({ conversationId, visitorId, token, device }) {
    await this.post(
      '/v1/evidence',
      { visitorId, conversationId, token, presentedAt: new Date().toISOString(), source: { domain: 'shop.example', device } },
      () => ({ authorization: `Bearer ${PROVIDER}` }),
    );
  }
}

/**
 * A brand and a desk around a real gateway: keys for the brand, the desk and each of `signers`
 * (keys the desk does not trust) generated under `dirs.base`, the gateway started (its data under
 * `dirs.base`/gw), and the desk's config.toml (in `dirs.config`) on the gateway's feed, trusting
 * the brand, decrypting with the desk's key.
 */
export class Feed {
  static async start(dirs, { signers = [] } = {}) {
    assert.ok(existsSync(appPath), `the app binary ${appPath} must be built first`);
    assert.ok(existsSync(cliPath), `the CLI ${cliPath} must be built first (cargo build -p lockdesk-cli)`);
    for (const who of ['brand', 'desk', ...signers]) cli(['keys', 'generate', '--out', join(dirs.base, who)]);
    const feed = new Feed(dirs);
    const url = await feed.gateway.start();
    writeFileSync(
      join(dirs.config, 'config.toml'),
      `[feed]\nurl = "${url.replace('http://', 'ws://')}/v1/feed"\ncredential = "${SUBSCRIBER}"\n\n` +
        `[[trust]]\nissuer = "${ISSUER}"\nkey = "${join(dirs.base, 'brand', 'public.pem')}"\n\n` +
        `[decryption]\nkeys = ["${join(dirs.base, 'desk', 'private.pem')}"]\n`,
      { mode: 0o600 },
    );
    return feed;
  }

  constructor(dirs) {
    this.dirs = dirs;
    this.gateway = new Gateway(join(dirs.base, 'gw'));
  }

  /** The token a visitor presents in a conversation: minted now by `signer` ('brand' or one of
   * the `signers`) for `userId` with the signed `visitorData`, encrypted to the desk, reported by
   * the brand's token provider. */
  async evidence({ conversationId, visitorId }, { signer = 'brand', userId, visitorData, device = 'laptop' }) {
    const token = cli(['token', 'mint', '--signing-key', join(this.dirs.base, signer, 'private.pem'),
      '--encrypt-to', join(this.dirs.base, 'desk', 'public.pem'), '--issuer', ISSUER, '--user-id', userId,
      '--visitor-data', JSON.stringify(visitorData), '--lifetime', '600']);
    await this.gateway.present({ conversationId, visitorId, token, device });
  }

  /** iAdvize pushes a conversation to an advisor, then the brand's token provider reports the
   * token the visitor presented (see `evidence`); resolves to the conversation's id. */
  async conversation(userId, visitorData, device) {
    const ids = await this.gateway.push();
    await this.evidence(ids, { userId, visitorData, device });
    return ids.conversationId;
  }

  /** Stops the gateway without waiting (the file's tests are over). */
  end() {
    if (!this.gateway.gone) this.gateway.kill('SIGTERM');
  }
}

/** Waits until the window says its feed is connected and its list counts `n` conversations. */
export async function waitFeedLive(driver, n) {
  await waitText(driver, '#feed-state', (t) => /Connected/.test(t), 60_000);
  await waitText(driver, '[data-testid="conversation-count"]', (t) => t.includes(`(${n} `), 60_000);
}
