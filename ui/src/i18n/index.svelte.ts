// The UI language, as a rune so every component re-renders when Settings changes it.
import { en, fr, type StringKey } from './strings';

export type Lang = 'en' | 'fr';

const dictionaries: Record<Lang, Record<StringKey, string>> = { en, fr };

const state = $state<{ lang: Lang }>({ lang: 'en' });

export function setLanguage(lang: string): void {
  state.lang = lang === 'fr' ? 'fr' : 'en';
  if (typeof document !== 'undefined') document.documentElement.lang = state.lang;
}

export function language(): Lang {
  return state.lang;
}

export function t(key: StringKey): string {
  return dictionaries[state.lang][key];
}

/**
 * `one` or `other` for a count, by the language's plural rules (Intl.PluralRules): "1 device",
 * "2 devices"; in French 0 and 1 are singular ("1 appareil").
 */
export function plural(n: number, one: StringKey, other: StringKey): string {
  return new Intl.PluralRules(state.lang).select(n) === 'one' ? t(one) : t(other);
}
