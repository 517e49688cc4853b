import { mount } from 'svelte';
import App from './App.svelte';
import { reportFirstPaint } from './ipc';
import './styles.css';

const target = document.getElementById('app');
if (!target) throw new Error('index.html has no #app element');
mount(App, { target });

// Two frames after mounting, the first frame with content has been painted: tell the shell,
// which logs launch-to-first-paint.
requestAnimationFrame(() =>
  requestAnimationFrame(() => {
    performance.mark('lockdesk:first-paint');
    void reportFirstPaint().catch(() => undefined);
  }),
);
