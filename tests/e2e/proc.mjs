// Processes from /proc (Linux, where the end-to-end tests and benchmarks run) and local ports:
// shared by the harness (starting tauri-driver, stopping an app that outlived its session) and
// tests/perf (the same, and the PSS of the app's tree).
import { readdirSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';

/** Whether something listens on 127.0.0.1:`port`. */
export function portOpen(port) {
  return new Promise((ok) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      ok(true);
    });
    s.once('error', () => ok(false));
  });
}

/** A process's command name, or null when it is gone. */
export function comm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** pid → child pids. */
export function childrenMap() {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** Every process under `root` (not `root` itself). */
export function descendants(root) {
  const children = childrenMap();
  const out = [];
  const todo = [root];
  while (todo.length) {
    const pid = todo.pop();
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

/** Whether `pid` is a running (not exited, not zombie) process named `name`. */
export function running(pid, name) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X' && comm(pid) === name;
  } catch {
    return false;
  }
}

/** Resolves once `child` (a ChildProcess) has exited, or after `ms` milliseconds, whichever is
 * first. */
export function exited(child, ms) {
  return new Promise((r) => {
    const timer = setTimeout(r, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      r();
    });
  });
}
