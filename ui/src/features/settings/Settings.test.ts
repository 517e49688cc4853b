// The Settings screen rendered in jsdom, with Tauri's IPC replaced by @tauri-apps/api's own mock
// (the Rust side of these commands is tested in crates/lockdesk-api and src-tauri).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import Settings from './Settings.svelte';
import type { SettingsForm, SettingsView, SaveOutcome, FieldError } from '../../ipc';

const baseForm: SettingsForm = {
  feedUrl: '', credential: null, trust: [], decryptionKeys: [], leewaySecs: '60',
  sessionLifetimeMins: '60', maxTokenLifetimeSecs: '3600', requireEncryption: false, language: 'en',
};
const view = (form: SettingsForm): SettingsView => ({
  form, credentialSaved: false, configPath: '/tmp/x/config.toml', loadError: null,
});

let saved: SettingsForm | null;
let calls: string[];

beforeEach(() => {
  saved = null;
  calls = [];
  mockIPC((cmd, args) => {
    calls.push(cmd);
    const form = (args as { form?: SettingsForm } | undefined)?.form;
    const check = (f: SettingsForm): FieldError[] =>
      /^\d+$/.test(f.leewaySecs) ? [] : [{ field: 'verification.leeway_secs', message: 'expected a whole number of seconds' }];
    switch (cmd) {
      case 'get_settings':
        return view(saved ?? baseForm);
      case 'validate_settings':
        return check(form!);
      case 'save_settings': {
        const errors = check(form!);
        if (errors.length === 0) saved = { ...form!, credential: null };
        const outcome: SaveOutcome = { saved: errors.length === 0, errors, keptUnreadableCopy: null, settings: view(saved ?? baseForm) };
        return outcome;
      }
      default:
        throw { code: 'internal', message: `unexpected command ${cmd}` };
    }
  });
});
afterEach(() => clearMocks());

// Renders the screen, checks the leeway field as it first stands and types a value that is not a
// whole number of seconds into it.
async function renderWithInvalidLeeway(): Promise<HTMLElement> {
  render(Settings);
  const leeway = await screen.findByLabelText('Clock-skew leeway (seconds)');
  // Neither the browser's autofill nor its spelling marks on codes, ids and addresses; valid
  // until an error says otherwise.
  expect(leeway).toHaveAttribute('autocomplete', 'off');
  expect(leeway).toHaveAttribute('spellcheck', 'false');
  expect(leeway).toHaveAttribute('aria-invalid', 'false');
  expect(leeway).not.toHaveAttribute('aria-describedby');
  await fireEvent.input(leeway, { target: { value: 'abc' } });
  return leeway;
}

describe('Settings', () => {
  it('shows a field error beside the field and saves nothing', async () => {
    const leeway = await renderWithInvalidLeeway();
    await fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    const error = await screen.findByText('expected a whole number of seconds');
    expect(error.id).toBe('error-verification-leeway-secs');
    expect(leeway).toHaveAttribute('aria-invalid', 'true');
    expect(leeway).toHaveAttribute('aria-describedby', 'error-verification-leeway-secs');
    expect(saved).toBeNull();
    expect(screen.getByRole('status')).toHaveTextContent('nothing was saved');
  });

  it('does not move the button being pressed: errors of the field just left wait for the release', async () => {
    const leeway = await renderWithInvalidLeeway();
    const save = screen.getByRole('button', { name: 'Save' });
    await fireEvent.mouseDown(save);
    await fireEvent.blur(leeway);
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.queryByText('expected a whole number of seconds')).toBeNull();
    await fireEvent.mouseUp(save);
    await screen.findByText('expected a whole number of seconds');
  });

  it('saves valid values and says so', async () => {
    render(Settings);
    const leeway = await screen.findByLabelText('Clock-skew leeway (seconds)');
    await fireEvent.input(leeway, { target: { value: '30' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(screen.getByRole('status')).toHaveTextContent('Settings saved.'));
    expect(saved?.leewaySecs).toBe('30');
    expect(calls).toContain('save_settings');
  });

  it('renders the configuration path as text, never as markup', async () => {
    mockIPC((cmd) => (cmd === 'get_settings' ? { ...view(baseForm), configPath: '<img src=x onerror=alert(1)>' } : []));
    const { container } = render(Settings);
    await screen.findByText('<img src=x onerror=alert(1)>');
    expect(container.querySelector('img')).toBeNull();
  });

  it('mutes a notification kind and saves the choice', async () => {
    const all = { secured: true, verificationFailed: true, identityMismatch: true, sharedDevice: true, reusedUserId: true, sessionLapsed: true, lookalikeUserId: true };
    mockIPC((cmd, args) => {
      calls.push(cmd);
      const form = (args as { form?: SettingsForm } | undefined)?.form;
      switch (cmd) {
        case 'get_settings':
          return view(saved ?? { ...baseForm, notifications: all });
        case 'validate_settings':
          return [];
        case 'save_settings':
          saved = form!;
          return { saved: true, errors: [], keptUnreadableCopy: null, settings: view(form!) } satisfies SaveOutcome;
        default:
          throw { code: 'internal', message: `unexpected command ${cmd}` };
      }
    });
    render(Settings);
    const box = await screen.findByLabelText('A conversation became secured');
    expect(box).toBeChecked();
    expect(screen.getByLabelText('Verification failed')).toBeChecked();
    await fireEvent.click(box);
    expect(box).not.toBeChecked();
    await fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(saved).not.toBeNull());
    expect(saved!.notifications).toEqual({ ...all, secured: false });
  });

  it('takes several gateway addresses, one per line, and shows the error of the line that is wrong', async () => {
    let sent: SettingsForm | null = null;
    const error: FieldError = {
      field: 'feed.url',
      message: 'line 2: use wss:// for a remote gateway (ws:// is only allowed on this machine)',
    };
    mockIPC((cmd, args) => {
      const form = (args as { form?: SettingsForm } | undefined)?.form;
      switch (cmd) {
        case 'get_settings':
          return view(baseForm);
        case 'validate_settings':
          return form!.feedUrl.includes('ws://gw-b') ? [error] : [];
        case 'save_settings': {
          sent = form!;
          const errors = form!.feedUrl.includes('ws://gw-b') ? [error] : [];
          return { saved: errors.length === 0, errors, keptUnreadableCopy: null, settings: view(form!) } satisfies SaveOutcome;
        }
        default:
          throw { code: 'internal', message: `unexpected command ${cmd}` };
      }
    });
    render(Settings);
    const box = await screen.findByLabelText('Feed URL');
    expect(box.tagName).toBe('TEXTAREA');
    expect(box).toHaveAttribute('autocomplete', 'off');
    expect(box).toHaveAttribute('spellcheck', 'false');
    // One address: no failover note.
    await fireEvent.input(box, { target: { value: 'wss://gw-a.example.com/v1/feed' } });
    expect(document.querySelector('[data-note="feed.url"]')).toBeNull();
    await fireEvent.input(box, { target: { value: 'wss://gw-a.example.com/v1/feed\nws://gw-b.example.com/v1/feed' } });
    expect(await screen.findByText(/^2 addresses: the desk uses the first that answers/)).toBeInTheDocument();
    await fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    const shown = await screen.findByText(error.message);
    expect(shown.id).toBe('error-feed-url');
    expect(box).toHaveAttribute('aria-invalid', 'true');
    // The text travels as typed, one address per line.
    expect(sent!.feedUrl).toBe('wss://gw-a.example.com/v1/feed\nws://gw-b.example.com/v1/feed');
    await fireEvent.input(box, { target: { value: 'wss://gw-a.example.com/v1/feed\nwss://gw-b.example.com/v1/feed' } });
    await fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(screen.getByRole('status')).toHaveTextContent('Settings saved'));
    expect(sent!.feedUrl).toBe('wss://gw-a.example.com/v1/feed\nwss://gw-b.example.com/v1/feed');
  });

  it('Save with errors focuses the first invalid field in document order, not the first reported', async () => {
    // The Rust side reports the leeway (lower on the form) before the feed address.
    const errors: FieldError[] = [
      { field: 'verification.leeway_secs', message: 'expected a whole number of seconds' },
      { field: 'feed.url', message: 'expected a ws:// or wss:// address' },
    ];
    mockIPC((cmd) => {
      switch (cmd) {
        case 'get_settings':
          return view(baseForm);
        case 'validate_settings':
          return errors;
        case 'save_settings':
          return { saved: false, errors, keptUnreadableCopy: null, settings: view(baseForm) } satisfies SaveOutcome;
        default:
          throw { code: 'internal', message: `unexpected command ${cmd}` };
      }
    });
    render(Settings);
    await fireEvent.click(await screen.findByRole('button', { name: 'Save' }));
    await screen.findByText('expected a ws:// or wss:// address');
    await waitFor(() => expect(document.activeElement?.id).toBe('field-feed-url'));
  });
});
