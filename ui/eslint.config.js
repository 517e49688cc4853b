import js from '@eslint/js';
import ts from 'typescript-eslint';
import svelte from 'eslint-plugin-svelte';
import globals from 'globals';

export default ts.config(
  { ignores: ['dist/', 'node_modules/', 'src/ipc/bindings.ts'] },
  js.configs.recommended,
  ...ts.configs.strict,
  ...svelte.configs['flat/recommended'],
  {
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: { parserOptions: { parser: ts.parser, extraFileExtensions: ['.svelte'] } },
  },
  {
    rules: {
      // Untrusted text (userIds, visitor data, feed content) is only ever rendered as text.
      'svelte/no-at-html-tags': 'error',
      // Only the IPC module talks to Tauri.
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@tauri-apps/*'], message: 'import Tauri only in src/ipc/' }] },
      ],
    },
  },
  {
    files: ['src/ipc/**', 'src/**/*.test.ts', 'src/test-setup.ts', 'bench/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // The benchmark driver runs in Node.
    files: ['bench/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // Tests state what they expect to exist; a wrong guess fails the test anyway.
    files: ['src/**/*.test.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
