// Evidence items are stable English keys from the desk (`userId`, `imitates`, ...) with text
// values: the keys the advisor reads are worded in the UI's language; others are shown as they are.
import type { StringKey } from '../../i18n/strings';

type T = (key: StringKey) => string;

const LABEL_KEYS: Record<string, StringKey> = {
  imitator: 'evidenceImitator',
  imitates: 'evidenceImitates',
  mixedScript: 'evidenceMixedScript',
  scripts: 'evidenceScripts',
};

/** An evidence label in words, or the label as it is. */
export function evidenceLabel(label: string, t: T): string {
  const key = Object.hasOwn(LABEL_KEYS, label) ? LABEL_KEYS[label] : undefined;
  return key ? t(key) : label;
}

/** An evidence value in words where the desk wrote a flag (`true`/`false`) or a list of scripts. */
export function evidenceValue(label: string, value: string, t: T): string {
  if (label === 'mixedScript' && (value === 'true' || value === 'false')) return t(value === 'true' ? 'yes' : 'no');
  if (label === 'scripts') {
    try {
      const v: unknown = JSON.parse(value);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.join(', ');
    } catch {
      // not a list: shown as it is
    }
  }
  return value;
}
