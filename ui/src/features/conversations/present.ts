// How desk data is worded: state names, reasons, channels, alert kinds, field labels and
// relative times, in the UI's language. Pure functions of their inputs (and the `t` given).
import type { AlertKind, AuthStateName, ConversationRow, ReasonCode, VisitorSource } from '../../ipc';
import type { StringKey, Translate } from '../../i18n/strings';

const STATE_KEYS: Record<AuthStateName, StringKey> = {
  secured: 'stateSecured',
  anonymous: 'stateAnonymous',
  lapsed: 'stateLapsed',
  failed: 'stateFailed',
  mismatch: 'stateMismatch',
  unsupported: 'stateUnsupported',
  closed: 'stateClosed',
};

/** The state's name: the accessible name of its icon and the text beside alarms. */
export function stateName(state: AuthStateName, t: Translate): string {
  return t(STATE_KEYS[state]);
}

/** A state in the row's words: "Session lapsed"; a closed conversation says what it was
 * ("Closed · was secured"). */
export function stateWords(row: Pick<ConversationRow, 'state' | 'closedFrom'>, t: Translate, lang: string): string {
  if (row.state === 'lapsed') return t('rowLapsed');
  if (row.state === 'closed' && row.closedFrom && row.closedFrom !== 'closed') {
    const was = row.closedFrom === 'lapsed' ? t('rowLapsed') : stateName(row.closedFrom, t);
    return `${t('stateClosed')} · ${t('closedWas')} ${was.toLocaleLowerCase(lang)}`;
  }
  return stateName(row.state, t);
}

/** The words a stale row or detail adds: "as of 14:02", or "not current" when the feed was not
 * live since the window opened. */
export function staleWords(stale: { asOf: string | null }, t: Translate): string {
  return stale.asOf !== null ? `${t('staleAsOf')} ${stale.asOf}` : t('staleMark');
}

/** Failed and mismatch are alarms: never styled like anything else. */
export function isAlarm(state: AuthStateName): boolean {
  return state === 'failed' || state === 'mismatch';
}

// Typed over every reason the desk can send (generated from Rust): a reason without a label
// is a type error, in both languages (a missing French string is one too).
const REASON_KEYS: Record<ReasonCode, StringKey> = {
  malformed: 'reasonMalformed',
  too_large: 'reasonTooLarge',
  unsupported_algorithm: 'reasonUnsupportedAlgorithm',
  forbidden_header: 'reasonForbiddenHeader',
  duplicate_member: 'reasonDuplicateMember',
  encryption_required: 'reasonEncryptionRequired',
  decryption_failed: 'reasonDecryptionFailed',
  unknown_key: 'reasonUnknownKey',
  bad_signature: 'reasonBadSignature',
  untrusted_issuer: 'reasonUntrustedIssuer',
  expired: 'reasonExpired',
  not_yet_valid: 'reasonNotYetValid',
  lifetime_too_long: 'reasonLifetimeTooLong',
  invalid_claims: 'reasonInvalidClaims',
  invalid_user_id: 'reasonInvalidUserId',
  invalid_visitor_data: 'reasonInvalidVisitorData',
  token_user_id_differs: 'reasonTokenUserIdDiffers',
  platform_user_id_differs: 'reasonPlatformUserIdDiffers',
  unknown: 'reasonUnknown',
};

/** Every reason the desk can send, `unknown` included (for tests and pickers). */
export const REASON_CODES = Object.keys(REASON_KEYS) as ReasonCode[];

/** A reason in words. Anything else (a code from a newer or older desk that reached the window
 * despite the typing) gets the generic label: a raw code is never shown. */
export function reasonLabel(code: ReasonCode, t: Translate): string {
  const key = Object.hasOwn(REASON_KEYS, code) ? REASON_KEYS[code] : undefined;
  return t(key ?? 'reasonUnknown');
}

/** The reason's code as the timeline shows it beside its label, for support: `null` for a code
 * this build does not know (never shown raw). */
export function reasonCode(code: ReasonCode): string | null {
  return code !== 'unknown' && Object.hasOwn(REASON_KEYS, code) ? code : null;
}

const CHANNEL_KEYS: Record<string, StringKey> = {
  CHAT: 'channelChat',
  CALL: 'channelCall',
  VIDEO: 'channelVideo',
  MOBILE_APP: 'channelMobileApp',
  SMS: 'channelSms',
};
const CHANNEL_BRANDS: Record<string, string> = {
  WHATSAPP: 'WhatsApp',
  FACEBOOK: 'Facebook',
  FACEBOOK_BUSINESS_ON_MESSENGER: 'Messenger',
  INSTAGRAM: 'Instagram',
  TWITTER: 'Twitter',
  APPLE_BUSINESS_CHAT: 'Apple Messages for Business',
  GOOGLE_BUSINESS_MESSAGES: 'Google Business Messages',
};

/** iAdvize's channel value in words; an unknown channel is shown as it is. */
export function channelLabel(channel: string, t: Translate): string {
  const key = Object.hasOwn(CHANNEL_KEYS, channel) ? CHANNEL_KEYS[channel] : undefined;
  if (key) return t(key);
  return Object.hasOwn(CHANNEL_BRANDS, channel) ? (CHANNEL_BRANDS[channel] ?? channel) : channel;
}

// Typed over every visitor source (generated from Rust): a new source without a label is a type
// error, not a visitor silently labelled "web".
const SOURCE_KEYS: Record<VisitorSource, StringKey> = {
  web: 'sourceWeb',
  app: 'sourceApp',
};

export function sourceLabel(source: VisitorSource, t: Translate): string {
  return t(Object.hasOwn(SOURCE_KEYS, source) ? SOURCE_KEYS[source] : 'sourceWeb');
}

const ALERT_KEYS: Record<AlertKind, StringKey> = {
  verification_failed: 'alertVerificationFailed',
  identity_switched: 'alertIdentitySwitched',
  shared_device: 'alertSharedDevice',
  reused_user_id: 'alertReusedUserId',
  session_lapsed: 'alertSessionLapsed',
  platform_mismatch: 'alertPlatformMismatch',
  lookalike_user_id: 'alertLookalikeUserId',
};

export function alertLabel(kind: AlertKind, t: Translate): string {
  return t(ALERT_KEYS[kind]);
}

const FIELD_KEYS: Record<string, StringKey> = {
  firstName: 'fieldFirstName',
  lastName: 'fieldLastName',
  email: 'fieldEmail',
  phoneNumber: 'fieldPhoneNumber',
  address: 'fieldAddress',
  city: 'fieldCity',
  zipCode: 'fieldZipCode',
  country: 'fieldCountry',
  externalUserId: 'fieldExternalUserId',
};

/** A visitorData / profile field's label; fields the documentation does not name keep their key. */
export function fieldLabel(key: string, t: Translate): string {
  return labelOr(FIELD_KEYS, key, t);
}

/** `key` in words when `labels` has it (an own property, not one of Object's), else as it is. */
export function labelOr(labels: Record<string, StringKey>, key: string, t: Translate): string {
  const k = Object.hasOwn(labels, key) ? labels[key] : undefined;
  return k ? t(k) : key;
}

/** What the row says instead of a userId when there is none. */
export function identityPlaceholder(row: ConversationRow, t: Translate): string {
  if (row.state === 'anonymous') return t('anonymousVisitor');
  // Said in words too (not only by the icon): authentication does not exist on this channel.
  if (row.state === 'unsupported') return t('stateUnsupported');
  return t('noVerifiedIdentity');
}

/** `cache`'s formatter for `lang`, made by `make` the first time (Intl objects are costly). */
function perLanguage<F>(cache: Map<string, F>, lang: string, make: (lang: string) => F): F {
  let f = cache.get(lang);
  if (!f) {
    f = make(lang);
    cache.set(lang, f);
  }
  return f;
}

const formatters = new Map<string, Intl.RelativeTimeFormat>();

/** "5 minutes ago" / "il y a 5 minutes", "in 3 minutes" for future times. */
export function relativeTime(atMs: number, nowMs: number, lang: string): string {
  const f = perLanguage(formatters, lang, (l) => new Intl.RelativeTimeFormat(l, { numeric: 'auto', style: 'long' }));
  const secs = Math.round((atMs - nowMs) / 1000);
  const abs = Math.abs(secs);
  if (abs < 10) return f.format(0, 'second'); // "now"
  if (abs < 45) return f.format(secs, 'second');
  if (abs < 45 * 60) return f.format(Math.round(secs / 60), 'minute');
  if (abs < 22 * 3600) return f.format(Math.round(secs / 3600), 'hour');
  return f.format(Math.round(secs / 86400), 'day');
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** A local date and time, short. */
export function dateTime(atMs: number, lang: string): string {
  const f = perLanguage(dateFormats, lang, (l) => new Intl.DateTimeFormat(l, { dateStyle: 'short', timeStyle: 'medium' }));
  return f.format(new Date(atMs));
}

const timeFormats = new Map<string, Intl.DateTimeFormat>();

/** "14:02": a time of day, in the UI's language (when the feed was last live). */
export function clockTime(atMs: number, lang: string): string {
  const f = perLanguage(timeFormats, lang, (l) => new Intl.DateTimeFormat(l, { hour: '2-digit', minute: '2-digit' }));
  return f.format(new Date(atMs));
}

const pluralRules = new Map<string, Intl.PluralRules>();
const numberFormats = new Map<string, Intl.NumberFormat>();

/** "1 alert" / "3 alerts", "0 alerte" / "2 alertes": the count in the language's digits and the
 * word agreed by the language's plural rule (French counts 0 and 1 as singular). */
export function countOf(n: number, one: string, other: string, lang: string): string {
  const rules = perLanguage(pluralRules, lang, (l) => new Intl.PluralRules(l));
  const digits = perLanguage(numberFormats, lang, (l) => new Intl.NumberFormat(l));
  return `${digits.format(n)} ${rules.select(n) === 'one' ? one : other}`;
}
