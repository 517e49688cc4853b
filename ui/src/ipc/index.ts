// The only module that talks to Tauri. Everything else calls these typed functions.
// Rust errors arrive as `{code, message}` (IpcError); anything else is wrapped into one.
import { invoke } from '@tauri-apps/api/core';
import type {
  AppInfo,
  FeedStatus,
  FieldError,
  IpcError,
  SaveOutcome,
  SettingsForm,
  SettingsView,
} from './bindings';

export type * from './bindings';

export function isIpcError(e: unknown): e is IpcError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'string' &&
    typeof (e as { message?: unknown }).message === 'string'
  );
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (e) {
    if (isIpcError(e)) throw e;
    const err: IpcError = { code: 'internal', message: String(e) };
    throw err;
  }
}

export const getSettings = (): Promise<SettingsView> => call('get_settings');
export const validateSettings = (form: SettingsForm): Promise<FieldError[]> =>
  call('validate_settings', { form });
export const saveSettings = (form: SettingsForm): Promise<SaveOutcome> =>
  call('save_settings', { form });
export const appInfo = (): Promise<AppInfo> => call('app_info');
export const feedStatus = (): Promise<FeedStatus> => call('feed_status');
export const reportFirstPaint = (): Promise<number> => call('report_first_paint');
