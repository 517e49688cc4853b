import { describe, expect, it } from 'vitest';
import { cloneForm, errorId, errorsByField, feedAddresses, fieldId, removeRow, visibleErrors } from './form';
import type { SettingsForm } from '../../ipc';

describe('settings form helpers', () => {
  it('keeps the first message per field', () => {
    expect(
      errorsByField([
        { field: 'feed.url', message: 'a' },
        { field: 'feed.url', message: 'b' },
        { field: 'trust.0.key', message: 'c' },
      ]),
    ).toEqual({ 'feed.url': 'a', 'trust.0.key': 'c' });
  });

  it('shows only touched fields until a save shows all', () => {
    const all = { 'feed.url': 'a', 'verification.leeway_secs': 'b' };
    expect(visibleErrors(all, new Set(['feed.url']), false)).toEqual({ 'feed.url': 'a' });
    expect(visibleErrors(all, new Set(), true)).toEqual(all);
  });

  it('turns field paths into stable ids', () => {
    expect(fieldId('trust.0.key')).toBe('field-trust-0-key');
    expect(errorId('verification.leeway_secs')).toBe('error-verification-leeway-secs');
  });

  it('renumbers touched rows after a removal', () => {
    const touched = new Set(['trust.0.key', 'trust.1.issuer', 'trust.2.key', 'feed.url']);
    expect([...removeRow(touched, 'trust', 1)].sort()).toEqual(['feed.url', 'trust.0.key', 'trust.1.key']);
    expect([...removeRow(new Set(['decryption.keys.3']), 'decryption.keys', 0)]).toEqual(['decryption.keys.2']);
  });

  it('reads the feed addresses one per line, as the Rust side does', () => {
    expect(feedAddresses('')).toEqual([]);
    expect(feedAddresses('wss://a/v1/feed')).toEqual(['wss://a/v1/feed']);
    expect(feedAddresses('  wss://a/v1/feed \r\n\n\twss://b/v1/feed\n  \n')).toEqual(['wss://a/v1/feed', 'wss://b/v1/feed']);
    // A comma is not a separator (a URL may hold one): the Rust side names such a line.
    expect(feedAddresses('wss://a/v1/feed,wss://b/v1/feed')).toEqual(['wss://a/v1/feed,wss://b/v1/feed']);
  });

  it('clones deeply', () => {
    const form: SettingsForm = {
      feedUrl: '', credential: null, trust: [{ issuer: 'a', key: 'b' }], decryptionKeys: ['k'],
      leewaySecs: '60', sessionLifetimeMins: '60', maxTokenLifetimeSecs: '3600', requireEncryption: false,
      language: 'en',
    };
    const copy = cloneForm(form);
    copy.trust[0]!.issuer = 'changed';
    copy.decryptionKeys.push('x');
    expect(form.trust[0]!.issuer).toBe('a');
    expect(form.decryptionKeys).toEqual(['k']);
  });
});
