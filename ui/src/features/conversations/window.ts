// The virtual list's arithmetic: which rows are on screen, and where to scroll so a row is.
// Pure, so it is tested without a layout engine.

export interface RowWindow {
  /** First rendered index (inclusive). */
  start: number;
  /** Last rendered index (exclusive). */
  end: number;
}

/** Rows intersecting [scrollTop, scrollTop + viewport), plus `overscan` on each side. */
export function visibleWindow(
  count: number,
  rowPx: number,
  scrollTop: number,
  viewportPx: number,
  overscan: number,
): RowWindow {
  if (count <= 0 || rowPx <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowPx);
  const last = Math.ceil((Math.max(0, scrollTop) + Math.max(viewportPx, rowPx)) / rowPx);
  return {
    start: Math.max(0, Math.min(count - 1, first - overscan)),
    end: Math.min(count, last + overscan),
  };
}

/** The scrollTop that brings row `index` fully into view with the least movement. */
export function scrollToShow(index: number, rowPx: number, scrollTop: number, viewportPx: number): number {
  const top = index * rowPx;
  const bottom = top + rowPx;
  if (top < scrollTop) return top;
  if (bottom > scrollTop + viewportPx) return Math.max(0, bottom - viewportPx);
  return scrollTop;
}

/** The index a navigation key moves to, or null when the key is not a navigation key. */
export function navigate(key: string, index: number, count: number, pageRows: number): number | null {
  if (count === 0) return null;
  const clamp = (i: number) => Math.max(0, Math.min(count - 1, i));
  switch (key) {
    case 'ArrowDown':
      return clamp(index < 0 ? 0 : index + 1);
    case 'ArrowUp':
      return clamp(index < 0 ? 0 : index - 1);
    case 'PageDown':
      return clamp(index + Math.max(1, pageRows - 1));
    case 'PageUp':
      return clamp(index - Math.max(1, pageRows - 1));
    case 'Home':
      return 0;
    case 'End':
      return count - 1;
    default:
      return null;
  }
}
