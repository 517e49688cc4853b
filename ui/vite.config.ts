import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// Tauri serves `dist/` from the binary; the dev server is only for `tauri dev`.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true, host: '127.0.0.1' },
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    // No inline scripts or styles: the CSP forbids them.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
    setupFiles: ['src/test-setup.ts'],
    // One jsdom per worker, not per test file: building the environment twenty times was 26 of
    // the run's 58 s. The files share no state: the setup file unmounts every component after
    // each test, and the suite passes with its files and tests in shuffled orders
    // (`npx vitest run --sequence.shuffle`).
    isolate: false,
  },
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
});
