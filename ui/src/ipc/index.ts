// The only module that talks to Tauri. Everything else calls these typed functions.
// Commands go through ./call (errors as IpcError); the desk's are in ./desk.
import { call, isIpcError } from './call';
import type {
  AppInfo,
  FeedStatus,
  FieldError,
  SaveOutcome,
  SettingsForm,
  SettingsView,
} from './bindings';

export type * from './bindings';
export { isIpcError };
export * from './desk';
export * from './supervisor';

export const getSettings = (): Promise<SettingsView> => call('get_settings');
export const validateSettings = (form: SettingsForm): Promise<FieldError[]> =>
  call('validate_settings', { form });
export const saveSettings = (form: SettingsForm): Promise<SaveOutcome> =>
  call('save_settings', { form });
export const appInfo = (): Promise<AppInfo> => call('app_info');
export const feedStatus = (): Promise<FeedStatus> => call('feed_status');
export const reportFirstPaint = (): Promise<number> => call('report_first_paint');
