// The supervisor screen's commands (Rust: src-tauri/src/supervisor.rs, bodies in
// crates/lockdesk-api/src/supervisor.rs). All async, errors as IpcError `{code, message}`.
//
//   supervisor_overview({ filters }) -> SupervisorOverview
//     Every conversation of the local store under the filters: the table's rows (at most 2,000,
//     newest first), per-day share secured, failures by reason, per advisor, and the values each
//     filter can take.
//   audit_status() -> AuditStatus
//     Runs the audit chain's full verification (`lockdesk-cli audit verify`): ok with the entry
//     count and head hash, or the first broken entry and what is wrong with it.
//   export_audit({ format, redact, confirmBroken }) -> ExportResult
//     Writes the whole audit log to a new file in the desk's data folder, `exports/`, and says
//     where (there is no file dialog). The chain is verified first: a broken one is refused
//     (code `audit_broken`, nothing written) unless `confirmBroken`; the file then states the
//     break and the result carries `brokenAt`.
import { call } from './call';
import type {
  AuditStatus,
  ExportFormat,
  ExportResult,
  SupervisorFilters,
  SupervisorOverview,
} from './bindings';

export const supervisorOverview = (filters: SupervisorFilters): Promise<SupervisorOverview> =>
  call('supervisor_overview', { filters });
export const auditStatus = (): Promise<AuditStatus> => call('audit_status');
export const exportAudit = (format: ExportFormat, redact: boolean, confirmBroken = false): Promise<ExportResult> =>
  call('export_audit', { format, redact, confirmBroken });
