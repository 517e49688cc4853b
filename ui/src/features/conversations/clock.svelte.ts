// "Now" for relative times, as a rune that ticks every 15 s, so "5 minutes ago" stays true
// without re-rendering anything else. Only the rows on screen read it.
const clock = $state({ now: Date.now() });
let timer: ReturnType<typeof setInterval> | null = null;

export function now(): number {
  if (timer === null && typeof window !== 'undefined') {
    timer = setInterval(() => (clock.now = Date.now()), 15_000);
  }
  return clock.now;
}
