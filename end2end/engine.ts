// Which hub engine the end-to-end run exercises: in-memory rooms (default) or, with
// CHORUS_E2E_ENGINE=redis, every server on a redis-server that Playwright starts.
export const REDIS_PORT = 3299;

export const redisUrl: string | undefined =
  process.env.CHORUS_E2E_ENGINE === 'redis' ? `redis://127.0.0.1:${REDIS_PORT}` : undefined;

/**
 * Server flags for the engine; `db` keeps each test server's keys apart. Every
 * browser of the suite connects from 127.0.0.1, so the per-address limits (guest
 * sign-ins, upgrades, open connections) are raised: the suite is many users, not one abusive one.
 */
export function engineArgs(db: number): string[] {
  // A short grace, so the suite sees leaves soon but still goes through the grace.
  const grace = ['--presence-grace', '1s'];
  const perAddress = [
    '--guest-token-rate-limit', '10000', '--guest-token-rate-limit-burst', '10000',
    '--connect-rate-limit', '10000', '--connect-rate-limit-burst', '10000',
    '--max-connections-per-address', '10000', '--max-http-connections-per-address', '10000',
    '--failed-auth-limit', '10000', '--address-rate-limit', '10000', '--address-rate-limit-burst', '10000',
  ];
  return [...grace, ...perAddress, ...(redisUrl ? ['--redis-url', `${redisUrl}/${db}`] : [])];
}
