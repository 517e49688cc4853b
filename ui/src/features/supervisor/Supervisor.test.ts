// The supervisor screen against Tauri's IPC mock (the Rust side of these commands, with the
// real aggregation and a real SQLite audit log, is tested in crates/lockdesk-api/src/supervisor.rs).
import { afterEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import Supervisor from './Supervisor.svelte';
import type {
  AuditStatus,
  ConversationDetail,
  ExportResult,
  SupervisorFilters,
  SupervisorOverview,
  SupervisorRow,
} from '../../ipc';
import { row as listRow, T0 } from '../conversations/fixtures';
import { emptyForm, percent, toFilters } from './model';

const rows: SupervisorRow[] = [
  { id: 'c-ok', state: 'secured', closedFrom: null, reasonCode: null, operatorId: 7, channel: 'CHAT', userId: 'user-42', openedAtMs: T0, closedAtMs: null, securedAtMs: T0 + 1000, noData: false },
  { id: 'c-bad', state: 'failed', closedFrom: null, reasonCode: 'expired', operatorId: 9, channel: 'CHAT', userId: null, openedAtMs: T0 - 1000, closedAtMs: null, securedAtMs: null, noData: false },
  { id: 'c-wa', state: 'unsupported', closedFrom: null, reasonCode: null, operatorId: null, channel: 'WHATSAPP', userId: null, openedAtMs: T0 - 2000, closedAtMs: null, securedAtMs: null, noData: false },
];
// Issue 13's cases: a closed conversation says what it was; back-filled days have no data.
const closedRow: SupervisorRow = { id: 'c-closed', state: 'closed', closedFrom: 'secured', reasonCode: null, operatorId: 7, channel: 'CHAT', userId: 'user-7', openedAtMs: T0 - 3000, closedAtMs: T0, securedAtMs: T0 - 2500, noData: false };
let extraRows: SupervisorRow[] = [];

// A stand-in for the shell that narrows by state only: enough to see the filter cross IPC.
function overviewFor(f: SupervisorFilters): SupervisorOverview {
  const all = [...rows, ...extraRows];
  const matching = all.filter((r) => f.state === null || r.state === f.state);
  return {
    total: all.length,
    matched: matching.length,
    secured: matching.filter((r) => r.securedAtMs !== null).length,
    failed: matching.filter((r) => r.state === 'failed').length,
    noData: 60,
    rows: matching,
    perDay: [
      { day: '2026-11-20', conversations: 60, secured: 0, noData: 60 },
      { day: '2026-11-21', conversations: 4, secured: 1, noData: 2 },
      { day: '2026-11-22', conversations: 3, secured: 1, noData: 0 },
    ],
    failuresByReason: [{ reason: 'expired', conversations: 1 }],
    perAdvisor: [{ operatorId: 7, conversations: 1, secured: 1, failed: 0, noData: 0 }],
    noAdvisor: { operatorId: null, conversations: 61, secured: 0, failed: 0, noData: 60 },
    choices: { states: ['secured', 'failed', 'unsupported'], reasons: ['expired'], operatorIds: [7, 9], channels: ['CHAT', 'WHATSAPP'] },
  };
}

const HASH = 'ab'.repeat(32);
let sent: SupervisorFilters[] = [];
let exports: { format: string; redact: boolean; confirmBroken: boolean }[] = [];
let verifications = 0;

/** The screen, rendered on `okAudit`, once it shows the row of conversation `id`. */
async function renderedRow(id: string): Promise<HTMLElement> {
  serve(okAudit);
  render(Supervisor);
  return waitFor(() => {
    const r = screen.getAllByTestId('sup-row').find((e) => e.getAttribute('data-id') === id);
    if (!r) throw new Error(`no row ${id} yet`);
    return r;
  });
}

function serve(audit: AuditStatus, opts: { refuseBroken?: number } = {}): void {
  sent = [];
  exports = [];
  verifications = 0;
  mockIPC((cmd, args) => {
    switch (cmd) {
      case 'supervisor_overview': {
        const f = (args as { filters: SupervisorFilters }).filters;
        sent.push(f);
        return overviewFor(f);
      }
      case 'audit_status':
        verifications += 1;
        return audit;
      case 'get_conversation': {
        const id = (args as { id: string }).id;
        const d: ConversationDetail = {
          row: listRow({ id }),
          identity: null,
          timeline: [{ atMs: T0, verdict: 'rejected', reasonCode: 'expired', reasonText: 'token expired', issuer: null, expiresAtMs: null, userId: null, beforeLogin: false }],
          alerts: [],
        };
        return d;
      }
      case 'export_audit': {
        const a = args as { format: string; redact: boolean; confirmBroken: boolean };
        exports.push(a);
        const brokenAt = audit.brokenAt ?? opts.refuseBroken ?? null;
        if (brokenAt !== null && !a.confirmBroken) {
          throw { code: 'audit_broken', message: `the audit log is broken at entry ${brokenAt}: the stored hash does not match its fields; nothing was exported` };
        }
        const r: ExportResult = { path: `/data/demo/exports/audit-2026-11-22T09-00-00Z${a.redact ? '-redacted' : ''}.${a.format}`, entries: 12, redacted: a.redact, headSeq: 12, headHash: HASH, brokenAt };
        return r;
      }
      default:
        throw { code: 'internal', message: `unexpected command ${cmd}` };
    }
  });
}

const okAudit: AuditStatus = { ok: true, entries: 12, headSeq: 12, headHash: HASH, brokenAt: null, problem: null, file: '/data/demo/desk.sqlite3', storeProblemCount: 0, storeProblems: [] };

const brokenAudit: AuditStatus = { ok: false, entries: 0, headSeq: 12, headHash: HASH, brokenAt: 3, problem: 'the stored hash does not match its fields', file: '/d/desk.sqlite3', storeProblemCount: 0, storeProblems: [] };

afterEach(() => {
  clearMocks();
  extraRows = [];
});

describe('Supervisor', () => {
  it('lists every conversation, and a filter narrows the table through the command', async () => {
    serve(okAudit);
    render(Supervisor);
    const table = await screen.findByTestId('sup-table');
    expect(within(table).getAllByTestId('sup-row')).toHaveLength(3);
    expect(sent[0]?.state).toBeNull();
    await fireEvent.change(screen.getByLabelText('State'), { target: { value: 'failed' } });
    await waitFor(() => expect(within(screen.getByTestId('sup-table')).getAllByTestId('sup-row')).toHaveLength(1));
    expect(sent.at(-1)?.state).toBe('failed');
    const only = screen.getByTestId('sup-row');
    expect(only).toHaveAttribute('data-id', 'c-bad');
    expect(only).toHaveTextContent('Verification failed');
    expect(screen.getByTestId('sup-summary')).toHaveTextContent('1 of 3 conversations match');
  });

  it("opens a conversation's timeline on selection", async () => {
    serve(okAudit);
    render(Supervisor);
    await fireEvent.click(await screen.findByRole('button', { name: 'c-bad' }));
    const detail = screen.getByTestId('sup-detail');
    const timeline = await within(detail).findByTestId('timeline');
    expect(within(timeline).getByTestId('presentation-reason')).toHaveTextContent('expired');
    expect(screen.getByRole('button', { name: 'c-bad' })).toHaveAttribute('aria-pressed', 'true');
  });

  it('gives every chart a text equivalent, and hides the drawn bars from screen readers', async () => {
    serve(okAudit);
    render(Supervisor);
    const daily = await screen.findByTestId('chart-daily-text');
    expect(daily).toHaveTextContent('2026-11-22');
    expect(daily).toHaveTextContent('33%');
    expect(daily).toHaveTextContent('1 secured of 3');
    expect(screen.getByTestId('chart-reasons')).toHaveTextContent('expired: 1');
    const advisors = screen.getByTestId('chart-advisors');
    expect(advisors).toHaveTextContent('#7: 1 conversation, 1 secured, 0 failed');
    for (const svg of screen.getByTestId('supervisor').querySelectorAll('svg')) {
      expect(svg).toHaveAttribute('aria-hidden', 'true');
    }
  });

  it('shows an intact log with its entry count and selectable head hash', async () => {
    serve(okAudit);
    render(Supervisor);
    const status = await screen.findByTestId('audit-status');
    await waitFor(() => expect(status).toHaveAttribute('data-ok', 'true'));
    expect(status).toHaveTextContent('Intact: 12 entries verified');
    expect(status).not.toHaveTextContent('BROKEN');
    expect(screen.getByTestId('audit-head-hash')).toHaveTextContent(HASH);
  });

  it('shows a broken log distinctly, naming the entry', async () => {
    serve({ ok: false, entries: 0, headSeq: 12, headHash: HASH, brokenAt: 3, problem: 'the stored hash does not match its fields', file: '/d/desk.sqlite3', storeProblemCount: 0, storeProblems: [] });
    render(Supervisor);
    const status = await screen.findByTestId('audit-status');
    await waitFor(() => expect(status).toHaveAttribute('data-ok', 'false'));
    expect(status).toHaveTextContent('BROKEN at entry 3: the stored hash does not match its fields');
    expect(status).not.toHaveTextContent('Intact');
    expect(screen.getByTestId('audit-broken-at')).toHaveTextContent('3');
  });

  it('names the rows of a store that disagrees with an intact chain', async () => {
    serve({
      ok: false, entries: 12, headSeq: 12, headHash: HASH, brokenAt: null, problem: null, file: '/d/desk.sqlite3',
      storeProblemCount: 1, storeProblems: ['conversation c-9 shows secured/user-42 but the audit log says failed (entry #7)'],
    });
    render(Supervisor);
    const status = await screen.findByTestId('audit-status');
    await waitFor(() => expect(status).toHaveAttribute('data-ok', 'false'));
    expect(screen.getByTestId('audit-store-disagrees')).toHaveTextContent('The store disagrees with the audit log');
    expect(status).toHaveTextContent('conversation c-9 shows secured/user-42 but the audit log says failed (entry #7)');
    expect(status).not.toHaveTextContent('Intact:');
  });

  it('exports redacted by default and shows where the file was written', async () => {
    serve(okAudit);
    render(Supervisor);
    await fireEvent.click(screen.getByTestId('export-button'));
    const path = await screen.findByTestId('export-path');
    expect(path).toHaveTextContent('/data/demo/exports/audit-2026-11-22T09-00-00Z-redacted.csv');
    expect(screen.getByTestId('export-result')).toHaveTextContent('12 entries written to');
    expect(exports).toEqual([{ format: 'csv', redact: true, confirmBroken: false }]);

    await fireEvent.change(screen.getByTestId('export-format'), { target: { value: 'jsonl' } });
    await fireEvent.click(screen.getByTestId('export-redact'));
    await fireEvent.click(screen.getByTestId('export-button'));
    await waitFor(() => expect(screen.getByTestId('export-path')).toHaveTextContent('audit-2026-11-22T09-00-00Z.jsonl'));
    expect(exports.at(-1)).toEqual({ format: 'jsonl', redact: false, confirmBroken: false });
    expect(screen.queryByTestId('export-broken')).toBeNull();
    expect(screen.getByText('Not redacted: this file holds personal data.')).toBeInTheDocument();
  });

  it('reads the overview again when the desk moves on, once per burst', async () => {
    serve(okAudit);
    const view = render(Supervisor, { revision: 1, refreshDelayMs: 10 });
    await screen.findByTestId('sup-table');
    await waitFor(() => expect(sent).toHaveLength(1));
    await view.rerender({ revision: 2, refreshDelayMs: 10 });
    await view.rerender({ revision: 3, refreshDelayMs: 10 });
    await waitFor(() => expect(sent).toHaveLength(2));
    await new Promise((r) => setTimeout(r, 50));
    expect(sent).toHaveLength(2);
  });

  it('says what a closed conversation was, one value per cell with its full text in the title', async () => {
    extraRows = [closedRow];
    const row = await renderedRow('c-closed');
    const state = row.querySelector('[data-col="state"]');
    expect(state).toHaveTextContent('Closed · was secured');
    expect(state?.textContent).not.toMatch(/\(|Closed\(/);
    expect(state).toHaveAttribute('title', 'Closed · was secured');
    expect(row.querySelector('[data-col="user"]')).toHaveAttribute('title', 'user-7');
    expect(row.querySelector('[data-col="id"]')).toHaveAttribute('title', 'c-closed');
    // Fixed columns: one <col> per header cell.
    const table = screen.getByTestId('sup-table');
    expect(table.querySelectorAll('col')).toHaveLength(table.querySelectorAll('thead th').length);
  });

  it('says a back-filled conversation has no verification data, never that it was anonymous', async () => {
    extraRows = [{ ...closedRow, id: 'c-old', closedFrom: 'anonymous', operatorId: null, userId: null, securedAtMs: null, noData: true }];
    const row = await renderedRow('c-old');
    const state = row.querySelector('[data-col="state"]');
    expect(state).toHaveTextContent('Closed · no verification data');
    expect(state?.textContent).not.toMatch(/anonymous/i);
  });

  it('gives the timeline a heading only once a conversation is selected, naming it', async () => {
    serve(okAudit);
    render(Supervisor);
    const detail = await screen.findByTestId('sup-detail');
    expect(within(detail).queryByRole('heading')).toBeNull();
    expect(detail).not.toHaveTextContent('Timeline of');
    expect(detail).toHaveAttribute('aria-label', 'Timeline');
    await fireEvent.click(await screen.findByRole('button', { name: 'c-bad' }));
    expect(within(detail).getByRole('heading')).toHaveTextContent('Timeline of c-bad');
  });

  it('shows a back-filled day as no data, never 0%, and keeps conversations without advisor apart', async () => {
    serve(okAudit);
    render(Supervisor);
    const daily = await screen.findByTestId('chart-daily-text');
    const day = (d: string) => daily.querySelector(`[data-day="${d}"]`);
    expect(day('2026-11-20')).toHaveAttribute('data-share', 'none');
    expect(day('2026-11-20')).toHaveTextContent('no data');
    expect(day('2026-11-20')).not.toHaveTextContent('0%');
    // 1 secured of the 2 with data: 50%, not 25%.
    expect(day('2026-11-21')).toHaveTextContent('50%');
    expect(day('2026-11-21')).toHaveTextContent('1 secured of 2 · 2 without verification data');
    // The drawing: no green column for the no-data day, a dashed outline instead.
    const svg = screen.getByTestId('chart-daily').querySelector('svg');
    expect(svg?.querySelector('.sup-col[data-day="2026-11-20"]')).toBeNull();
    expect(svg?.querySelector('.sup-col-none[data-day="2026-11-20"]')).not.toBeNull();
    const advisors = screen.getByTestId('chart-advisors');
    expect(advisors.querySelectorAll('li')).toHaveLength(1);
    expect(advisors.querySelector('ul')).not.toHaveTextContent('advisor');
    expect(screen.getByTestId('chart-unassigned')).toHaveTextContent(
      'Not assigned to an advisor: 61 conversations (60 back-filled without verification data), 0 secured, 0 failed; not counted in any advisor’s figures.',
    );
    expect(screen.getByTestId('sup-summary-no-data')).toHaveTextContent('60 back-filled without verification data');
  });

  it('puts a broken log first in the view, as an alarm', async () => {
    serve(brokenAudit);
    render(Supervisor);
    const alarm = await screen.findByTestId('audit-alarm');
    expect(alarm).toHaveAttribute('role', 'alert');
    expect(alarm).toHaveTextContent('The audit log is BROKEN at entry 3.');
    const view = screen.getByTestId('supervisor');
    expect(view.firstElementChild).toBe(alarm);
    // Before the title and the table (document order).
    expect(alarm.compareDocumentPosition(screen.getByRole('heading', { name: 'Supervisor' })) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
  });

  it('has no alarm while the log is intact', async () => {
    serve(okAudit);
    render(Supervisor);
    await waitFor(() => expect(screen.getByTestId('audit-status')).toHaveAttribute('data-ok', 'true'));
    expect(screen.queryByTestId('audit-alarm')).toBeNull();
  });

  it('asks before exporting a broken log, and the result says the file records the break', async () => {
    serve(brokenAudit);
    render(Supervisor);
    await screen.findByTestId('audit-alarm');
    await fireEvent.click(screen.getByTestId('export-button'));
    const ask = await screen.findByTestId('export-confirm');
    expect(ask).toHaveAttribute('role', 'alertdialog');
    expect(ask).toHaveTextContent('BROKEN at entry 3');
    await waitFor(() => expect(screen.getByTestId('export-confirm-no')).toHaveFocus());
    expect(exports).toHaveLength(0);
    await fireEvent.click(screen.getByTestId('export-confirm-no'));
    expect(screen.queryByTestId('export-confirm')).toBeNull();
    expect(exports).toHaveLength(0);

    await fireEvent.click(screen.getByTestId('export-button'));
    await fireEvent.click(await screen.findByTestId('export-confirm-yes'));
    await screen.findByTestId('export-path');
    expect(exports).toEqual([{ format: 'csv', redact: true, confirmBroken: true }]);
    expect(screen.getByTestId('export-broken')).toHaveTextContent('The file states that the chain is broken at entry 3.');
  });

  it('asks when the shell finds the log broken since the last verification, and verifies again', async () => {
    serve(okAudit, { refuseBroken: 5 });
    render(Supervisor);
    await waitFor(() => expect(screen.getByTestId('audit-status')).toHaveAttribute('data-ok', 'true'));
    const before = verifications;
    await fireEvent.click(screen.getByTestId('export-button'));
    const ask = await screen.findByTestId('export-confirm');
    expect(ask).toHaveTextContent('the audit log is broken at entry 5');
    expect(screen.queryByTestId('export-path')).toBeNull();
    await waitFor(() => expect(verifications).toBe(before + 1));
    await fireEvent.click(screen.getByTestId('export-confirm-yes'));
    await screen.findByTestId('export-path');
    expect(exports.map((e) => e.confirmBroken)).toEqual([false, true]);
  });

  it('shows an export error as text', async () => {
    serve(okAudit);
    mockIPC((cmd) => {
      if (cmd === 'export_audit') throw { code: 'internal', message: 'no desk store at /x/desk.sqlite3' };
      if (cmd === 'audit_status') return okAudit;
      if (cmd === 'supervisor_overview') return overviewFor({ ...toFilters(emptyForm()) });
      throw { code: 'internal', message: cmd };
    });
    render(Supervisor);
    await fireEvent.click(screen.getByTestId('export-button'));
    expect(await screen.findByTestId('export-error')).toHaveTextContent('no desk store at /x/desk.sqlite3');
  });
});

describe('filters form', () => {
  it('turns dates into the local day bounds and empty fields into no filter', () => {
    const f = toFilters({ ...emptyForm(), from: '2026-03-01', to: '2026-03-02', operatorId: '9' });
    expect(f.fromMs).toBe(new Date(2026, 2, 1).getTime());
    expect(f.toMs).toBe(new Date(2026, 2, 3).getTime() - 1);
    expect(f.operatorId).toBe(9);
    expect(f.state).toBeNull();
    expect(toFilters({ ...emptyForm(), from: 'garbage' }).fromMs).toBeNull();
    expect(percent(1, 3)).toBe(33);
    expect(percent(0, 0)).toBe(0);
  });
});
