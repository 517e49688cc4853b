// Foundation end-to-end test, in the real window: Settings validate beside the field, save to
// the real config file, and survive a quit and relaunch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  By,
  appAroundTests,
  appPath,
  click,
  el,
  freshDirs,
  launch,
  screenshot,
  textOf,
  typeInto,
  waitText,
} from './harness.mjs';

const dirs = freshDirs();
let driver;
appAroundTests(dirs, () => driver);

// A real RSA public key, so the test holds whatever content check the key field applies.
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const brandKey = join(dirs.base, 'brand-public.pem');
const deskKey = join(dirs.base, 'desk-private.pem');
writeFileSync(brandKey, publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(deskKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
const notAKey = join(dirs.base, 'notes.txt');
writeFileSync(notAKey, 'these are not the keys you are looking for\n');

test('with no feed configured, the main window opens on the demo and says so', async () => {
  driver = await launch();
  const banner = await waitText(driver, '[data-testid="demo-banner"]', (t) => t.length > 0, 60_000);
  assert.match(banner, /DEMO/);
  assert.match(banner, /Settings/);
  await screenshot(driver, '01-main-demo');
});

test('the content security policy refuses inline script and remote content', async () => {
  const result = await driver.executeAsyncScript(`
    const done = arguments[arguments.length - 1];
    const violations = [];
    document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective));
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true;';
    document.head.appendChild(s);
    const img = document.createElement('img');
    img.src = 'https://example.com/pixel.png';
    document.body.appendChild(img);
    setTimeout(() => { img.remove(); done({ ran: window.__inlineRan === true, violations }); }, 500);
  `);
  assert.equal(result.ran, false, 'an injected inline script must not run');
  assert.ok(result.violations.some((d) => d.startsWith('script-src')), JSON.stringify(result));
  assert.ok(result.violations.some((d) => d.startsWith('img-src')), JSON.stringify(result));
});

test('an invalid value shows its error beside the field and nothing is saved', async () => {
  await click(driver, '#nav-settings');
  await typeInto(driver, '#field-verification-leeway-secs', 'abc');
  await typeInto(driver, '#field-feed-url', 'http://gateway.example.com/v1/feed');
  await click(driver, '#add-issuer');
  await typeInto(driver, '#field-trust-0-issuer', 'https://brand.example');
  await typeInto(driver, '#field-trust-0-key', notAKey);
  await click(driver, '#save-settings');
  const leewayError = await waitText(driver, '#error-verification-leeway-secs', (t) => t.length > 0);
  assert.match(leewayError, /expected a whole number of seconds/);
  const urlError = await textOf(driver, '#error-feed-url');
  assert.match(urlError, /expected a ws:\/\/ or wss:\/\/ address/);
  // The key file is read by the real key parser.
  const keyError = await textOf(driver, '#error-trust-0-key');
  assert.ok(keyError.startsWith(notAKey), keyError);
  const leeway = await el(driver, '#field-verification-leeway-secs');
  assert.equal(await leeway.getAttribute('aria-invalid'), 'true');
  assert.match(await textOf(driver, '#settings-status'), /nothing was saved/);
  assert.ok(!existsSync(join(dirs.config, 'config.toml')), 'an invalid form writes nothing');
  await screenshot(driver, '02-settings-field-errors');
});

test('valid values save to the configuration file', async () => {
  await typeInto(driver, '#field-feed-url', 'ws://127.0.0.1:9/v1/feed');
  await typeInto(driver, '#field-feed-credential', 'e2e-desk-credential');
  await typeInto(driver, '#field-verification-leeway-secs', '30');
  await typeInto(driver, '#field-verification-session-lifetime-mins', '45');
  await typeInto(driver, '#field-trust-0-key', brandKey);
  await click(driver, '#add-decryption-key');
  await typeInto(driver, '#field-decryption-keys-0', deskKey);
  const language = await el(driver, '#field-ui-language');
  await language.findElement(By.css('option[value="fr"]')).click();
  await click(driver, '#save-settings');
  // Saved in French: the language applies at once.
  await waitText(driver, '#settings-status', (t) => t.includes('Paramètres enregistrés.'));
  assert.equal(await driver.findElements(By.css('.field-error')).then((e) => e.length), 0);

  const file = readFileSync(join(dirs.config, 'config.toml'), 'utf8');
  assert.match(file, /url = "ws:\/\/127\.0\.0\.1:9\/v1\/feed"/);
  assert.match(file, /leeway_secs = 30/);
  assert.match(file, /session_lifetime_mins = 45/);
  assert.match(file, /issuer = "https:\/\/brand\.example"/);
  assert.match(file, /language = "fr"/);
  await screenshot(driver, '03-settings-saved');
});

test('after quitting and relaunching, the values are still there', async () => {
  await driver.quit();
  driver = undefined;
  driver = await launch();
  // French from the first frame, and the feed is now configured.
  await waitText(driver, '#feed-state', (t) => t.includes('Non connecté'));
  await click(driver, '#nav-settings');
  const value = async (css) => (await el(driver, css)).getAttribute('value');
  await driver.wait(async () => (await value('#field-verification-leeway-secs')) === '30', 15_000);
  assert.equal(await value('#field-feed-url'), 'ws://127.0.0.1:9/v1/feed');
  assert.equal(await value('#field-verification-session-lifetime-mins'), '45');
  assert.equal(await value('#field-trust-0-issuer'), 'https://brand.example');
  assert.equal(await value('#field-trust-0-key'), brandKey);
  assert.equal(await value('#field-decryption-keys-0'), deskKey);
  assert.equal(await value('#field-ui-language'), 'fr');
  // The credential is saved but never sent back to the page.
  assert.equal(await value('#field-feed-credential'), '');
  assert.match(await textOf(driver, '.settings'), /Un identifiant est enregistré/);
  await screenshot(driver, '04-settings-after-relaunch');
});

test('a second launch hands over to the running window and exits', async () => {
  const second = spawnSync(appPath, [], {
    env: { ...process.env, LOCKDESK_CONFIG_DIR: dirs.config, LOCKDESK_DATA_DIR: dirs.data },
    timeout: 30_000,
  });
  assert.equal(second.error, undefined, `the second instance did not exit: ${second.error}`);
  assert.equal(second.status, 0);
  // The first one was told, and is still there and responsive.
  const logs = join(dirs.data, 'logs');
  const told = async () => {
    for (let i = 0; i < 50; i++) {
      const text = readdirSync(logs).map((f) => readFileSync(join(logs, f), 'utf8')).join('');
      if (text.includes('second launch: focusing the running instance')) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };
  assert.ok(await told(), 'the running instance logs the hand-over');
  assert.match(await textOf(driver, '#feed-state'), /Flux/);
});

test('logs go to the data folder and say how long the first paint took', async () => {
  const logs = join(dirs.data, 'logs');
  const files = readdirSync(logs).filter((f) => f.startsWith('lockdesk'));
  assert.ok(files.length > 0, 'a rolling log file exists');
  const text = files.map((f) => readFileSync(join(logs, f), 'utf8')).join('');
  const paints = [...text.matchAll(/first_paint_ms=(\d+)/g)].map((m) => Number(m[1]));
  assert.ok(paints.length >= 2, `one first-paint line per launch, got ${paints.length}`);
  assert.ok(!text.includes('e2e-desk-credential'), 'the credential never reaches the log');
  console.log(`launch to first paint (ms): ${paints.join(', ')}`);
});
