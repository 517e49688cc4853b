// Issue 13, "First impressions": a list row has a fixed height, so a userId, name or reason too
// long for its line is cut with an ellipsis; the row then still gives its full value, as a
// tooltip (isolated: FSI … PDI, hazardous characters named as on screen), and the detail pane
// shows the userId and the reason whole (it wraps them: tested in the real window,
// tests/e2e/first_screen.test.mjs).
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, render, screen } from '@testing-library/svelte';
import ConversationRow from './ConversationRow.svelte';
import { row, T0 } from './fixtures';

afterEach(() => cleanup());

const FSI = '\u2068';
const PDI = '\u2069';

describe('a row’s ids, names and reasons', () => {
  it('carry their full value as a tooltip', () => {
    const userId = 'customer-0123456789-0123456789-0123456789-0123456789-very-long@brand.example';
    const displayName = 'Maximilian Alexander Konstantin von Habsburg-Lothringen-Bourbon';
    render(ConversationRow, { props: { row: row({ userId, displayName, state: 'failed', reasonCode: 'bad_signature' }), now: T0 } });
    expect(screen.getByTestId('row-user-id')).toHaveAttribute('title', `${FSI}${userId}${PDI}`);
    expect(screen.getByText(displayName).closest('.conv-name')).toHaveAttribute('title', `${FSI}${displayName}${PDI}`);
    const reason = screen.getByTestId('row-reason');
    expect(reason.getAttribute('title')).toBe(`${FSI}${reason.textContent?.trim()}${PDI}`);
    expect(reason.textContent).toMatch(/signature/);
  });

  it('name a hidden character in the tooltip as on screen, never pass it through', () => {
    render(ConversationRow, { props: { row: row({ userId: 'admin\u200b@brand.example' }), now: T0 } });
    const title = screen.getByTestId('row-user-id').getAttribute('title') ?? '';
    expect(title).not.toContain('\u200b');
    expect(title).toContain('U+200B');
  });
});
