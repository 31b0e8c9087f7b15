import { defineConfig } from '@playwright/test';
import { REDIS_PORT, engineArgs, redisUrl } from './engine';

// Runs against the release build (`cargo leptos build --release`), started from the
// repository root exactly as a user starts it. The browser is Debian's Chromium:
// Playwright's own browser download is not available here.
const port = Number(process.env.CHORUS_E2E_PORT ?? 3197);

const redisServer = {
  command: `redis-server --port ${REDIS_PORT} --bind 127.0.0.1 --save "" --appendonly no`,
  port: REDIS_PORT,
  reuseExistingServer: false,
  timeout: 10_000,
  stdout: 'ignore' as const,
  stderr: 'pipe' as const,
};

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  // One folder per engine, so a run on one does not wipe the other's screenshots.
  outputDir: redisUrl ? 'test-results/redis' : 'test-results/memory',
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'off',
  },
  webServer: [
    ...(redisUrl ? [redisServer] : []),
    {
      command: ['target/release/chorus', '--addr', `127.0.0.1:${port}`, '--jwt-secret', 'end2end-secret-of-at-least-32-bytes', '--api-key', 'end2end-api-key-of-at-least-32-chars', ...engineArgs(0)].join(' '),
      cwd: '..',
      url: `http://127.0.0.1:${port}/healthz`,
      reuseExistingServer: false,
      timeout: 20_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
});
