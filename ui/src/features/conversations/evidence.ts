// Evidence items are stable English keys from the desk (`userId`, `imitates`, ...) with text
// values: the keys the advisor reads are worded in the UI's language; others are shown as they are.
import type { AlertKind, DeskAlert, ReasonCode } from '../../ipc';
import type { StringKey, Translate } from '../../i18n/strings';
import { dateTime, fieldLabel, labelOr, reasonLabel } from './present';

const LABEL_KEYS: Record<string, StringKey> = {
  userId: 'evidenceUserId',
  user_id: 'evidenceUserId',
  verified_user_id: 'evidenceVerifiedUserId',
  other_user_id: 'evidenceOtherUserId',
  previousUserId: 'evidencePreviousUserId',
  externalUserId: 'evidenceExternalUserId',
  source: 'evidenceSource',
  reason: 'evidenceReason',
  at: 'evidenceAt',
  differs: 'evidenceDiffers',
  imitator: 'evidenceImitator',
  imitates: 'evidenceImitates',
  mixedScript: 'evidenceMixedScript',
  scripts: 'evidenceScripts',
};

/** An evidence label in words, or the label as it is. */
export function evidenceLabel(label: string, t: Translate): string {
  return labelOr(LABEL_KEYS, label, t);
}

/** An evidence value in words where the desk wrote a flag (`true`/`false`) or a list of scripts. */
export function evidenceValue(label: string, value: string, t: Translate): string {
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

/** How an alert weighs: `alarm` (someone may be impersonating a customer), `warning` (check
 * before trusting), `notice` (routine: a session that lapsed, a token that was only late). */
export type Severity = 'alarm' | 'warning' | 'notice';

// A token refused for its age is routine (the page kept an old token, or a clock is off);
// refused for its form is an integration fault; anything else (a bad signature, an unknown key
// or issuer, a userId that differs, a reason this build does not know) may be a forgery.
const ROUTINE_REASONS = new Set<string>(['expired', 'not_yet_valid']);
const FAULT_REASONS = new Set<string>([
  'malformed',
  'too_large',
  'lifetime_too_long',
  'invalid_claims',
  'invalid_visitor_data',
  'encryption_required',
]);
const KIND_SEVERITY: Record<AlertKind, Severity> = {
  verification_failed: 'alarm',
  identity_switched: 'alarm',
  platform_mismatch: 'alarm',
  reused_user_id: 'alarm',
  lookalike_user_id: 'alarm',
  shared_device: 'warning',
  session_lapsed: 'notice',
};

/** The reason code a verification-failed alert carries, when it carries one. */
export function alertReason(alert: Pick<DeskAlert, 'evidence'>): ReasonCode | null {
  const r = alert.evidence.find((e) => e.label === 'reason')?.value;
  return r ? (r as ReasonCode) : null;
}

export function alertSeverity(alert: Pick<DeskAlert, 'kind' | 'evidence'>): Severity {
  if (alert.kind === 'verification_failed') {
    const r = alertReason(alert);
    if (r && ROUTINE_REASONS.has(r)) return 'notice';
    if (r && FAULT_REASONS.has(r)) return 'warning';
    return 'alarm';
  }
  return Object.hasOwn(KIND_SEVERITY, alert.kind) ? KIND_SEVERITY[alert.kind] : 'alarm';
}

/** One line of evidence as the advisor reads it. */
export interface EvidenceLine {
  label: string;
  value: string;
}

/** Latest plausible Unix time in seconds (year 9999): beyond it, a value is not a date. */
const MAX_SECS = 253_402_300_799;

/** An alert's evidence split in two: what the advisor reads (in words, in the UI's language,
 * one line per fact: `userId` and `user_id` with the same value are one), and the technical
 * rest (hashes, sequence numbers, internal codes, keys this build does not word) for a
 * disclosure. The kind's code (`alert`) is the headline's words already: not repeated. */
export function splitEvidence(
  alert: Pick<DeskAlert, 'evidence'>,
  t: Translate,
  lang: string,
): { advisor: EvidenceLine[]; technical: EvidenceLine[] } {
  const advisor: EvidenceLine[] = [];
  const technical: EvidenceLine[] = [];
  const seen = new Set<string>();
  for (const { label, value } of alert.evidence) {
    if (label === 'alert') continue;
    const worded = wordedValue(label, value, t, lang);
    if (worded === null) {
      technical.push({ label, value });
      continue;
    }
    const line = { label: evidenceLabel(label, t), value: worded };
    const key = `${line.label}\u0000${line.value}`;
    if (seen.has(key)) continue;
    seen.add(key);
    advisor.push(line);
  }
  return { advisor, technical };
}

/** A value in the advisor's words, or `null` when the label is technical (or the value is not
 * what its label promises: then it is shown raw, among the details). */
function wordedValue(label: string, value: string, t: Translate, lang: string): string | null {
  switch (label) {
    case 'reason':
      return reasonLabel(value as ReasonCode, t);
    case 'at': {
      const secs = Number(value);
      return /^\d{1,12}$/.test(value) && secs <= MAX_SECS ? dateTime(secs * 1000, lang) : null;
    }
    case 'source':
      return value === 'token' ? t('sourceToken') : value === 'platform' ? t('sourcePlatform') : null;
    case 'differs': {
      try {
        const v: unknown = JSON.parse(value);
        if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.map((k) => fieldLabel(k, t)).join(', ');
      } catch {
        // not a list
      }
      return null;
    }
    default:
      return Object.hasOwn(LABEL_KEYS, label) ? evidenceValue(label, value, t) : null;
  }
}
