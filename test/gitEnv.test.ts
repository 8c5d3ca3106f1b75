// The environment of every git Weaver runs (src/activities/git.ts gitEnv): only the names git
// needs, the hardening on top, and the worker's environment as it is at each call.
import { gitEnv } from '../src/activities/git';

test('gitEnv passes only the names git needs, with their values, plus the hardening', () => {
  const env = gitEnv({ PATH: '/usr/bin', LC_ALL: 'C.UTF-8', https_proxy: 'http://p:3128', OPENAI_API_KEY: 'sk-secret-000', FOO: 'bar', LC_: 'x', TZ: undefined });
  expect(env).toEqual({
    PATH: '/usr/bin',
    LC_ALL: 'C.UTF-8',
    https_proxy: 'http://p:3128',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_COUNT: '4',
    GIT_CONFIG_KEY_0: 'core.hooksPath',
    GIT_CONFIG_VALUE_0: '/dev/null',
    GIT_CONFIG_KEY_1: 'core.fsmonitor',
    GIT_CONFIG_VALUE_1: 'false',
    GIT_CONFIG_KEY_2: 'protocol.ext.allow',
    GIT_CONFIG_VALUE_2: 'never',
    GIT_CONFIG_KEY_3: 'safe.directory',
    GIT_CONFIG_VALUE_3: '*',
  });
});

test("gitEnv reads the worker's environment afresh at each call: a variable set, changed or removed shows at the next git", () => {
  const name = 'GIT_SSH_COMMAND';
  const saved = process.env[name];
  try {
    process.env[name] = 'ssh -i /keys/one';
    expect(gitEnv()[name]).toBe('ssh -i /keys/one');
    process.env[name] = 'ssh -i /keys/two';
    expect(gitEnv()[name]).toBe('ssh -i /keys/two');
    delete process.env[name];
    expect(gitEnv()).not.toHaveProperty(name);
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
});
