// Pure helpers for the Settings form: no Svelte, no Tauri, unit-tested.
import type { FieldError, NotificationsForm, SettingsForm } from '../../ipc';
import type { StringKey } from '../../i18n/strings';

/** Each notification kind Settings can mute, with its label, in the order shown. */
export const NOTIFICATION_KINDS: readonly { key: keyof NotificationsForm; label: StringKey }[] = [
  { key: 'secured', label: 'notifySecured' },
  { key: 'verificationFailed', label: 'notifyVerificationFailed' },
  { key: 'identityMismatch', label: 'notifyIdentityMismatch' },
  { key: 'sharedDevice', label: 'notifySharedDevice' },
  { key: 'reusedUserId', label: 'notifyReusedUserId' },
  { key: 'sessionLapsed', label: 'notifySessionLapsed' },
  { key: 'lookalikeUserId', label: 'notifyLookalikeUserId' },
];

/**
 * The gateway addresses of the feed field's text, as the Rust side reads them: one per line,
 * trimmed, blank lines ignored (commas are not separators: a URL may hold one).
 */
export function feedAddresses(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
}

/** Field path -> message, first message wins (the Rust side reports one problem per field). */
export function errorsByField(errors: readonly FieldError[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of errors) {
    if (!(e.field in out)) out[e.field] = e.message;
  }
  return out;
}

/** The errors to show: only for fields the user has touched, unless everything is shown. */
export function visibleErrors(
  all: Record<string, string>,
  touched: ReadonlySet<string>,
  showAll: boolean,
): Record<string, string> {
  if (showAll) return all;
  const out: Record<string, string> = {};
  for (const [field, message] of Object.entries(all)) {
    if (touched.has(field)) out[field] = message;
  }
  return out;
}

/** A DOM id for a field path (`trust.0.key` -> `field-trust-0-key`). */
export function fieldId(field: string): string {
  return 'field-' + field.replace(/[^A-Za-z0-9]+/g, '-');
}

/**
 * The input of the first field with an error, in document order (the order the user reads the
 * form, not the order the Rust side reports the errors in); null when none is on the page.
 */
export function firstInvalidInput(root: ParentNode, errors: readonly FieldError[]): HTMLElement | null {
  const ids = new Set(errors.map((e) => fieldId(e.field)));
  for (const el of root.querySelectorAll<HTMLElement>('[id^="field-"]')) {
    if (ids.has(el.id)) return el;
  }
  return null;
}

export function errorId(field: string): string {
  return 'error-' + field.replace(/[^A-Za-z0-9]+/g, '-');
}

/** A deep copy, so edits never alias the last saved view. */
export function cloneForm(form: SettingsForm): SettingsForm {
  return {
    ...form,
    trust: form.trust.map((t) => ({ ...t })),
    decryptionKeys: [...form.decryptionKeys],
    notifications: form.notifications ? { ...form.notifications } : null,
  };
}

/**
 * Removing row `index` of a list renumbers the rows after it, so their `touched` marks move too.
 */
export function removeRow(
  touched: ReadonlySet<string>,
  prefix: string,
  index: number,
): Set<string> {
  const out = new Set<string>();
  const re = new RegExp('^' + prefix.replace(/\./g, '\\.') + '\\.(\\d+)(.*)$');
  for (const field of touched) {
    const m = re.exec(field);
    if (!m) {
      out.add(field);
      continue;
    }
    const i = Number(m[1]);
    if (i < index) out.add(field);
    else if (i > index) out.add(`${prefix}.${i - 1}${m[2] ?? ''}`);
  }
  return out;
}
