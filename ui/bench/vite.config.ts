// Builds the benchmark harness into a temporary folder (never into dist/, which the app ships).
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

export default defineConfig({
  root: __dirname,
  plugins: [svelte()],
  build: { outDir: process.env.BENCH_OUT ?? '/tmp/lockdesk-ui-bench', emptyOutDir: true, target: 'es2022' },
});
