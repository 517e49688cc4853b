// The one place commands are invoked: Rust errors arrive as `{code, message}` (IpcError);
// anything else (a missing command, a serialization failure) is wrapped into one.
import { invoke } from '@tauri-apps/api/core';
import type { IpcError } from './bindings';

export function isIpcError(e: unknown): e is IpcError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'string' &&
    typeof (e as { message?: unknown }).message === 'string'
  );
}

export async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    if (isIpcError(e)) throw e;
    const err: IpcError = { code: 'internal', message: String(e) };
    throw err;
  }
}
