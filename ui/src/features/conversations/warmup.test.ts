// The warm-up lays rows out off screen and leaves the document as it found it.
import { describe, expect, it } from 'vitest';
import { warmUp } from './warmup';

describe('warm-up', () => {
  it('leaves nothing behind in the document, and nothing announced', () => {
    document.body.innerHTML = '<div id="app"><p>before</p></div>';
    const before = document.body.innerHTML;
    const added: Node[] = [];
    const observer = new MutationObserver((records) => records.forEach((r) => added.push(...r.addedNodes)));
    observer.observe(document.body, { childList: true, subtree: true });
    warmUp();
    observer.takeRecords().forEach((r) => added.push(...r.addedNodes));
    observer.disconnect();
    // It did lay something out (the hidden container, with rows in it)...
    const box = added.find((n): n is HTMLElement => n instanceof HTMLElement && n.classList.contains('warmup'));
    expect(box).toBeDefined();
    expect(box?.getAttribute('aria-hidden')).toBe('true');
    const rows = added.filter((n) => n instanceof HTMLElement && n.dataset.testid === 'conversation-row-body');
    expect(rows.map((r) => (r as HTMLElement).dataset.state)).toEqual(['secured', 'failed', 'anonymous']);
    // ...and removed it.
    expect(document.body.innerHTML).toBe(before);
    expect(document.querySelector('.warmup')).toBeNull();
  });
});
