// Generated from the Rust types in crates/lockdesk-api by
// `UPDATE_BINDINGS=1 cargo test -p lockdesk-api bindings`. Do not edit by hand.

export type IpcErrorCode = "config_unreadable" | "config_write_failed" | "internal";

export type IpcError = { code: IpcErrorCode, message: string, };

export type FieldError = { field: string, message: string, };

export type TrustForm = { issuer: string, 
/**
 * Key file path or `https://` JWKS address.
 */
key: string, };

export type NotificationsForm = { secured: boolean, verificationFailed: boolean, identityMismatch: boolean, sharedDevice: boolean, reusedUserId: boolean, sessionLapsed: boolean, };

export type SettingsForm = { feedUrl: string, 
/**
 * `null`: keep the saved credential. A string: replace it (empty clears it).
 */
credential: string | null, trust: Array<TrustForm>, decryptionKeys: Array<string>, leewaySecs: string, sessionLifetimeMins: string, maxTokenLifetimeSecs: string, requireEncryption: boolean, 
/**
 * `en` or `fr`.
 */
language: string, 
/**
 * Which notifications are shown; `null` keeps the saved choice.
 */
notifications?: NotificationsForm | null, };

export type SettingsView = { form: SettingsForm, 
/**
 * A credential is saved (its value is never sent to the UI).
 */
credentialSaved: boolean, configPath: string, 
/**
 * Set when the file on disk could not be read: the form then shows defaults, and saving
 * keeps a copy of the unreadable file.
 */
loadError: string | null, };

export type SaveOutcome = { 
/**
 * False when any field is invalid: nothing was written.
 */
saved: boolean, errors: Array<FieldError>, 
/**
 * Where the previous, unreadable file was kept, if it was.
 */
keptUnreadableCopy: string | null, settings: SettingsView, };

export type AppInfo = { version: string, configPath: string, dataDir: string, logDir: string, 
/**
 * True when no feed is configured.
 */
feedConfigured: boolean, };

export type FeedStatus = { "state": "not_configured" } | { "state": "disconnected", reason: string, } | { "state": "connecting", url: string, } | { "state": "connected", url: string, };
