// Generated from the Rust types in crates/lockdesk-api by
// `UPDATE_BINDINGS=1 cargo test -p lockdesk-api bindings`. Do not edit by hand.

export type IpcErrorCode = "config_unreadable" | "config_write_failed" | "audit_broken" | "internal";

export type IpcError = { code: IpcErrorCode, message: string, };

export type FieldError = { field: string, message: string, };

export type TrustForm = { issuer: string, 
/**
 * Key file path or `https://` JWKS address.
 */
key: string, };

export type NotificationsForm = { secured: boolean, verificationFailed: boolean, identityMismatch: boolean, sharedDevice: boolean, reusedUserId: boolean, sessionLapsed: boolean, lookalikeUserId: boolean, };

export type SettingsForm = { 
/**
 * The gateway's feed addresses, one per line (several: instances of one gateway, tried in
 * order with failover); blank lines are ignored. An error about one of several addresses
 * is reported on `feed.url` as `line N: ...` (N counts the text's lines from 1).
 */
feedUrl: string, 
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

export type CatchingUp = { 
/**
 * Log entries still to apply: the gateway's log end as last known (`hello`'s `lastSeq`)
 * minus the desk's cursor. (An advisor's stream skips other advisors' entries: the count
 * reaches 0 at the next heartbeat.)
 */
toGo: number, 
/**
 * Behind for longer than the catch-up limit (2 min).
 */
stale: boolean, };

export type FeedStatus = { "state": "not_configured" } | { "state": "disconnected", reason: string, } | { "state": "connecting", url: string, } | { "state": "connected", url: string, 
/**
 * While the desk has not yet applied the gateway's log to its end (absent when it has).
 */
catchingUp?: CatchingUp, } | { "state": "config_unreadable", reason: string, };

export type AuthStateName = "anonymous" | "secured" | "lapsed" | "failed" | "mismatch" | "unsupported" | "closed";

export type ReasonCode = "malformed" | "too_large" | "unsupported_algorithm" | "forbidden_header" | "duplicate_member" | "encryption_required" | "decryption_failed" | "unknown_key" | "bad_signature" | "untrusted_issuer" | "expired" | "not_yet_valid" | "lifetime_too_long" | "invalid_claims" | "invalid_user_id" | "invalid_visitor_data" | "token_user_id_differs" | "platform_user_id_differs" | "unknown";

export type VisitorSource = "web" | "app";

export type OperatorId = number;

export type LookAlike = { 
/**
 * The other identity the desk knows whose userId looks the same (equal UTS #39 skeleton,
 * different string); `erased` when that identity was erased; `null` when there is none
 * (the userId only mixes scripts).
 */
imitates: string | null, 
/**
 * The userId mixes scripts (`сust-48151623` with a Cyrillic `с`).
 */
mixedScript: boolean, };

export type ConversationRow = { 
/**
 * iAdvize's conversation id.
 */
id: string, 
/**
 * iAdvize's visitor id (one per device/browser).
 */
visitorId: string, state: AuthStateName, 
/**
 * For `closed`: the state it was in when it closed. `null` otherwise.
 */
closedFrom: AuthStateName | null, 
/**
 * The verified userId (from a valid token), when there is one. Never the platform's claim.
 */
userId: string | null, 
/**
 * A name from the signed visitorData (e.g. "firstName lastName"), when there is one.
 */
displayName: string | null, 
/**
 * iAdvize's channel as received (`CHAT`, `CALL`, `VIDEO`, `MOBILE_APP`, `WHATSAPP`, ...).
 */
channel: string, source: VisitorSource, 
/**
 * A human label for the device (browser and OS, or app and OS), when known.
 */
device: string | null, 
/**
 * The site's domain (web only), when known.
 */
domain: string | null, 
/**
 * When the last valid token was verified.
 */
lastVerifiedAtMs: number | null, 
/**
 * For `failed` and `mismatch` (and a `closed` that was either): why.
 */
reasonCode: ReasonCode | null, 
/**
 * Alerts raised in this conversation so far.
 */
alertCount: number, 
/**
 * When anything in this row last changed (the list's default order is newest first).
 */
updatedAtMs: number, 
/**
 * The verified userId looks like another identity the desk knows, or mixes scripts
 * (alert `lookalike_user_id`); `null` when neither.
 */
lookAlike: LookAlike | null, };

export type SignedField = { key: string, value: string, };

export type PlatformField = { 
/**
 * Named like the visitorData field it corresponds to (`email`, ...) or `externalUserId`.
 */
key: string, value: string, 
/**
 * True when the signed data (or the verified userId, for `externalUserId`) says otherwise.
 */
differs: boolean, };

export type IdentityCard = { 
/**
 * The verified userId.
 */
userId: string, 
/**
 * The signed visitorData of the last valid token, field by field, in token order.
 */
signedVisitorData: Array<SignedField>, 
/**
 * The platform's profile of the visitor (unverified), when fetched.
 */
platformProfile: Array<PlatformField>, 
/**
 * The token's `iss`.
 */
issuer: string, 
/**
 * RFC 7638 thumbprint of the brand key that verified the signature.
 */
keyThumbprint: string, 
/**
 * When the authenticated session lapses without a new valid token (`null` once lapsed or
 * closed).
 */
sessionLapsesAtMs: number | null, 
/**
 * The userId looks like another identity the desk knows, or mixes scripts.
 */
lookAlike: LookAlike | null, };

export type PresentationVerdict = "verified" | "rejected";

export type Presentation = { atMs: number, verdict: PresentationVerdict, 
/**
 * For `rejected`: the verifier's reason (`bad_signature`, ...).
 */
reasonCode: ReasonCode | null, 
/**
 * For `rejected`: the verifier's sentence (untrusted parts already escaped and cut).
 */
reasonText: string | null, 
/**
 * The token's `iss` when it could be read.
 */
issuer: string | null, 
/**
 * The token's `exp` (valid tokens).
 */
expiresAtMs: number | null, 
/**
 * The userId a valid token proved.
 */
userId: string | null, 
/**
 * True when it came before the first valid token of this conversation (what happened while
 * the visitor was not yet logged in).
 */
beforeLogin: boolean, };

export type AlertKind = "verification_failed" | "identity_switched" | "shared_device" | "reused_user_id" | "session_lapsed" | "platform_mismatch" | "lookalike_user_id";

export type EvidenceItem = { label: string, value: string, };

export type DeskAlert = { 
/**
 * Stable id (unique across the desk's store).
 */
id: string, conversationId: string, kind: AlertKind, atMs: number, evidence: Array<EvidenceItem>, };

export type ConversationDetail = { row: ConversationRow, 
/**
 * `null` until a valid token proved someone in this conversation.
 */
identity: IdentityCard | null, 
/**
 * Every presentation, oldest first.
 */
timeline: Array<Presentation>, 
/**
 * Alerts of this conversation, oldest first.
 */
alerts: Array<DeskAlert>, };

export type HistoryConversation = { id: string, openedAtMs: number, closedAtMs: number | null, state: AuthStateName, 
/**
 * Part of it was secured (a valid token for this person was presented in it).
 */
securedPart: boolean, 
/**
 * Part of it happened before the login (anonymous, then secured).
 */
beforeLoginPart: boolean, };

export type HistoryGroup = { 
/**
 * iAdvize's visitor id of the device.
 */
visitorId: string, 
/**
 * Its human label (falls back to the visitor id when nothing better is known).
 */
device: string, channel: string, source: VisitorSource, domain: string | null, 
/**
 * Newest first.
 */
conversations: Array<HistoryConversation>, };

export type History = { userId: string, groups: Array<HistoryGroup>, };

export type DeskStatus = { feed: FeedStatus, 
/**
 * True when the app runs its in-process demo (simulated conversations, generated keys).
 */
demo: boolean, 
/**
 * The last feed sequence number whose effects are stored, when any.
 */
lastSeq: number | null, 
/**
 * The gateway's log end as last known (`hello`'s `lastSeq`, or past it what the desk
 * applied), kept while disconnected; absent before the first connection.
 */
headSeq?: number, };

export type StoreIntegrity = { 
/**
 * The chain verified and every row agrees with it.
 */
ok: boolean, 
/**
 * Problems found (the chain broken counts as one).
 */
problemCount: number, 
/**
 * The first problems, as sentences ("conversation X shows secured/cust-1 but the audit log
 * says failed (entry #N)"), at most [`StoreIntegrity::SHOWN`].
 */
problems: Array<string>, 
/**
 * Conversations whose rows cannot be trusted: the list shows them as unverifiable (no
 * padlock). Every conversation when the chain itself is broken is not listed here: see
 * `chain_broken`.
 */
conversationIds: Array<string>, 
/**
 * The chain itself is broken (then no row can be checked).
 */
chainBroken: boolean, 
/**
 * When the check ended (Unix ms).
 */
checkedAtMs: number, };

export type DeskSnapshot = { status: DeskStatus, 
/**
 * Every conversation, newest `updatedAtMs` first.
 */
conversations: Array<ConversationRow>, 
/**
 * The revision this snapshot reflects; the UI drops [`DeskEvent`]s with a revision at or
 * below it (it subscribes before asking, so nothing falls between the two).
 */
revision: number, 
/**
 * The store checked against the audit log (at desk start and at each "Verify again"):
 * `null` until the first check ends.
 */
integrity: StoreIntegrity | null, };

export type DeskEvent = { "kind": "row", revision: number, row: ConversationRow, } | { "kind": "alert", revision: number, alert: DeskAlert, } | { "kind": "status", status: DeskStatus, } | { "kind": "reset", revision: number, };

export type FocusConversation = { conversationId: string, };

export type SupervisorFilters = { 
/**
 * The conversation's state; a closed conversation also matches the state it kept.
 */
state: AuthStateName | null, 
/**
 * The conversation's reason (e.g. `expired`; `unknown` matches every code this build does
 * not know).
 */
reason: ReasonCode | null, 
/**
 * The advisor (iAdvize operator id).
 */
operatorId: OperatorId | null, 
/**
 * iAdvize's channel (`CHAT`, `CALL`, `WHATSAPP`, ...).
 */
channel: string | null, 
/**
 * Opened at or after this instant (ms since the epoch).
 */
fromMs: number | null, 
/**
 * Opened at or before this instant (ms since the epoch).
 */
toMs: number | null, 
/**
 * The viewer's offset from UTC in minutes (east positive): days are the viewer's days.
 */
tzOffsetMinutes: number, };

export type SupervisorRow = { id: string, state: AuthStateName, 
/**
 * For a closed conversation, the state it kept.
 */
closedFrom: AuthStateName | null, reasonCode: ReasonCode | null, operatorId: OperatorId | null, channel: string, userId: string | null, openedAtMs: number | null, closedAtMs: number | null, 
/**
 * The first valid token in the conversation (`null`: never secured).
 */
securedAtMs: number | null, 
/**
 * Back-filled from the platform and never seen by this desk with a token: what it was is
 * unknown (not "anonymous"), the same rule as the overview's `no_data` count.
 */
noData: boolean, };

export type DayShare = { 
/**
 * `YYYY-MM-DD` in the viewer's time zone.
 */
day: string, conversations: number, secured: number, 
/**
 * Of `conversations`, those without verification data (known only from the backfill):
 * the day's share is `secured / (conversations - no_data)`, and a day with nothing else
 * has no share at all ("no data", never 0%).
 */
noData: number, };

export type ReasonCount = { 
/**
 * `null`: failed without a recorded reason code.
 */
reason: ReasonCode | null, conversations: number, };

export type AdvisorCount = { 
/**
 * `null`: not (yet) assigned to an advisor (only in [`SupervisorOverview::no_advisor`]).
 */
operatorId: OperatorId | null, conversations: number, secured: number, failed: number, 
/**
 * Of `conversations`, those without verification data (known only from the backfill).
 */
noData: number, };

export type FilterChoices = { states: Array<AuthStateName>, reasons: Array<ReasonCode>, operatorIds: Array<OperatorId>, channels: Array<string>, };

export type SupervisorOverview = { 
/**
 * Conversations in the store.
 */
total: number, 
/**
 * Conversations matching the filters (the aggregates cover all of them).
 */
matched: number, 
/**
 * Matching conversations secured at least once.
 */
secured: number, 
/**
 * Matching conversations whose (kept) state is `failed`.
 */
failed: number, 
/**
 * Matching conversations without verification data: known to the desk only from the
 * backfill (no advisor, no token presented, never secured). Days and rates leave them out.
 */
noData: number, 
/**
 * The matching rows, most recently opened first, at most [`ROW_LIMIT`].
 */
rows: Array<SupervisorRow>, 
/**
 * Oldest day first.
 */
perDay: Array<DayShare>, 
/**
 * Most conversations first.
 */
failuresByReason: Array<ReasonCount>, 
/**
 * The advisors (never `operator_id: null`), most conversations first.
 */
perAdvisor: Array<AdvisorCount>, 
/**
 * Matching conversations not assigned to any advisor: their own bucket, not an advisor's
 * rate (`null` when there are none).
 */
noAdvisor: AdvisorCount | null, choices: FilterChoices, };

export type AuditStatus = { 
/**
 * The whole chain verified.
 */
ok: boolean, 
/**
 * Entries checked (0 when broken: the count stops at the bad entry).
 */
entries: number, headSeq: number | null, 
/**
 * The head hash (64 hex digits), to be written down elsewhere.
 */
headHash: string | null, 
/**
 * The first bad entry's seq.
 */
brokenAt: number | null, 
/**
 * What is wrong with it.
 */
problem: string | null, 
/**
 * The SQLite file checked.
 */
file: string, 
/**
 * Places where the desk's tables disagree with the (intact) chain: a row edited offline
 * shows what the audit log does not say. Counted in full; `store_problems` holds the
 * first sentences.
 */
storeProblemCount: number, storeProblems: Array<string>, };

export type ExportFormat = "csv" | "jsonl";

export type ExportResult = { path: string, entries: number, redacted: boolean, headSeq: number | null, headHash: string | null, 
/**
 * The chain was broken at this entry when the export was taken (the user confirmed; the
 * file itself says so). `null`: the whole chain verified.
 */
brokenAt: number | null, };
