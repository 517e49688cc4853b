// Performance hooks the end-to-end test and the desktop benchmark read in the real WebView:
// `window.__lockdeskPerf`. Figures come from performance marks; nothing here asserts a time.
//
//   __lockdeskPerf.firstRender        {rows, domMs, paintMs} of the list's first render with data
//                                     (also performance measures "lockdesk:list-dom" and
//                                     "lockdesk:list-paint")
//   __lockdeskPerf.renderedRows()     how many row elements are in the DOM now
//   __lockdeskPerf.sampleScroll(ms, pxPerFrame?)  scrolls the list for `ms` milliseconds, one step
//                                     per animation frame, and resolves to the frame statistics

export interface FirstRender {
  rows: number;
  domMs: number;
  paintMs: number;
}

export interface ScrollStats {
  frames: number;
  durationMs: number;
  fps: number;
  meanFrameMs: number;
  p95FrameMs: number;
  maxFrameMs: number;
  /** Frames that took longer than 1.5 × 16.7 ms (a 60 Hz frame missed). */
  longFrames: number;
}

export interface LockdeskPerf {
  firstRender: FirstRender | null;
  renderedRows: () => number;
  sampleScroll: (ms?: number, pxPerFrame?: number) => Promise<ScrollStats>;
}

declare global {
  interface Window {
    __lockdeskPerf?: LockdeskPerf;
  }
}

/** Frame statistics from the timestamps of consecutive animation frames. */
export function frameStats(stamps: readonly number[]): ScrollStats {
  const gaps: number[] = [];
  for (let i = 1; i < stamps.length; i++) gaps.push((stamps[i] ?? 0) - (stamps[i - 1] ?? 0));
  const durationMs = stamps.length > 1 ? (stamps[stamps.length - 1] ?? 0) - (stamps[0] ?? 0) : 0;
  const sorted = [...gaps].sort((a, b) => a - b);
  const mean = gaps.length ? durationMs / gaps.length : 0;
  return {
    frames: gaps.length,
    durationMs,
    fps: durationMs > 0 ? (gaps.length * 1000) / durationMs : 0,
    meanFrameMs: mean,
    p95FrameMs: sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))] ?? 0) : 0,
    maxFrameMs: sorted.length ? (sorted[sorted.length - 1] ?? 0) : 0,
    longFrames: gaps.filter((g) => g > 25).length,
  };
}

/** Installs `window.__lockdeskPerf` for the list whose scrolling element `viewport()` returns. */
export function installPerf(viewport: () => HTMLElement | null): LockdeskPerf {
  const perf: LockdeskPerf = {
    firstRender: null,
    renderedRows: () => viewport()?.querySelectorAll('[role="option"]').length ?? 0,
    sampleScroll: (ms = 2000, pxPerFrame = 40) =>
      new Promise((resolve) => {
        const stamps: number[] = [];
        const el = viewport();
        let direction = 1;
        performance.mark('lockdesk:scroll-start');
        const step = (ts: number) => {
          stamps.push(ts);
          if (el) {
            const max = el.scrollHeight - el.clientHeight;
            if (el.scrollTop >= max - 1) direction = -1;
            else if (el.scrollTop <= 0) direction = 1;
            el.scrollTop += direction * pxPerFrame;
          }
          if (ts - (stamps[0] ?? ts) < ms) requestAnimationFrame(step);
          else {
            performance.measure('lockdesk:scroll', 'lockdesk:scroll-start');
            resolve(frameStats(stamps));
          }
        };
        requestAnimationFrame(step);
      }),
  };
  if (typeof window !== 'undefined') window.__lockdeskPerf = perf;
  return perf;
}

/** Records the first render of `rows` rows: call `start` when the data is assigned and `done`
 * after the DOM is updated (tick); the paint figure comes two animation frames later. */
export function measureFirstRender(perf: LockdeskPerf, rows: number): { done: () => void } {
  const t0 = performance.now();
  performance.mark('lockdesk:list-data');
  return {
    done: () => {
      const domMs = performance.now() - t0;
      performance.measure('lockdesk:list-dom', 'lockdesk:list-data');
      const record = () => {
        performance.measure('lockdesk:list-paint', 'lockdesk:list-data');
        perf.firstRender = { rows, domMs, paintMs: performance.now() - t0 };
      };
      if (typeof requestAnimationFrame === 'function') requestAnimationFrame(() => requestAnimationFrame(record));
      else record();
    },
  };
}
