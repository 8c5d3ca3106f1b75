// Files that exist to hold credentials (design rule 6): never sent to a provider unless the
// task names them. By name, and by content for the ones that only sometimes hold a secret.
// Pure: no Node imports (the workflow computes secretFilesNamed for a root task).
const SECRET_BASENAMES = new Set([
  '.env',
  '.envrc',
  '.netrc',
  '_netrc',
  '.git-credentials',
  '.pgpass',
  '.htpasswd',
  '.dockercfg',
  'credentials.json',
  'id_rsa',
  'id_dsa',
  'id_ecdsa',
  'id_ed25519',
  'id_ecdsa_sk',
  'id_ed25519_sk',
]);
/** Templates of secret files, meant to be read: `.env.example`, `secrets.sample.yaml`. */
const SECRET_TEMPLATE = /[._-](?:example|sample|template|dist|defaults?)(?:[._-]|$)/i;
const SECRET_EXTENSION = /\.(?:pem|key|p12|pfx|jks|keystore|ppk|kdbx)$/i;
const SECRET_PATH_SUFFIX = /(?:^|\/)(?:\.aws\/credentials|\.docker\/config\.json|\.gem\/credentials|\.config\/gh\/hosts\.yml)$/;
/** Package-manager configs that hold a secret only when they carry a token or password. */
const TOKEN_CONFIGS = new Set(['.npmrc', '.yarnrc', '.yarnrc.yml', '.pypirc', 'pip.conf', 'pip.ini', '.condarc', 'settings.xml']);
const TOKEN_CONFIG_SECRET = /(?:_authToken|_auth|_password|npmAuthToken|npmAuthIdent|password|token)["']?\s*[=:>]/i;
const PRIVATE_KEY_BLOCK = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----/;

/**
 * Why a repository file is a secret file (a dotenv file, a private key, a credentials file…),
 * or undefined. `rel` is workspace-relative; `text`, when given, adds the content rules (a
 * private key block anywhere; a token in `.npmrc`, `.pypirc` and the like).
 */
export function secretFileReason(rel: string, text?: string): string | undefined {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  const lower = base.toLowerCase();
  const template = SECRET_TEMPLATE.test(base);
  if (lower === '.env' || (lower.startsWith('.env.') && !template)) return 'a dotenv file';
  if (SECRET_BASENAMES.has(lower)) return 'a credentials file';
  if (SECRET_EXTENSION.test(lower)) return 'a key or certificate store';
  if (SECRET_PATH_SUFFIX.test(rel)) return 'a credentials file';
  if (/^client_secret.*\.json$/i.test(base) && !template) return 'a credentials file';
  if (/^secrets?\.[a-z0-9]+$/i.test(base)) return 'a secrets file';
  if (text !== undefined) {
    if (PRIVATE_KEY_BLOCK.test(text)) return 'it holds a private key';
    if (TOKEN_CONFIGS.has(lower) && TOKEN_CONFIG_SECRET.test(text)) return 'a package-manager config with a token';
  }
  return undefined;
}

/** What a secret file may be, judged by its path alone: secret by name, or a config that holds a token only sometimes. */
function maybeSecretFile(rel: string): boolean {
  return secretFileReason(rel) !== undefined || TOKEN_CONFIGS.has(rel.slice(rel.lastIndexOf('/') + 1).toLowerCase());
}

/** Path-like words in free text (`config/.env.prod`, `id_rsa`, `.npmrc`); a sentence's final dot is not part of one. */
const NAMED_PATH = /[\w@+~./-]+/g;
/** At most this many names are carried: a task naming more secret files than that is not a real one. */
const MAX_NAMED_SECRET_FILES = 100;

/**
 * The secret files a task names — in `relatedFiles`, or by path in its title, description,
 * acceptance criteria or `extraText` (a person's guidance) — by path alone: files secret by name
 * (`.env`, `*.pem`, `id_rsa`…) and the configs that hold a token only sometimes (`.npmrc`…).
 * Sorted, `./` removed. A subtask's prompt unlocks only these (BuildPromptRequest.namedSecretFiles):
 * a model proposing a subtask cannot name one in. Pure, so the workflow computes it for the root.
 */
export function secretFilesNamed(
  task: { title?: string; description?: string; acceptanceCriteria?: readonly string[]; relatedFiles?: readonly string[] },
  extraText: readonly string[] = [],
): string[] {
  const norm = (p: string) => p.trim().replace(/^(\.\/)+/, '');
  const text = [task.title ?? '', task.description ?? '', ...(task.acceptanceCriteria ?? []), ...extraText].join('\n');
  const words = [...text.matchAll(NAMED_PATH)].map((m) => m[0].replace(/\.+$/, ''));
  const named = new Set([...(task.relatedFiles ?? []), ...words].map(norm).filter((p) => p && !p.startsWith('/') && maybeSecretFile(p)));
  return [...named].sort().slice(0, MAX_NAMED_SECRET_FILES);
}

/**
 * Whether `rel` is among `named` (secretFilesNamed): the same path, or a name that ends it at a
 * `/` (`server.pem` names `certs/server.pem`, as a path in a task's text names the file).
 */
export function isNamedSecretFile(rel: string, named: readonly string[]): boolean {
  const r = rel.replace(/^(\.\/)+/, '');
  return named.some((n) => n === r || r.endsWith(`/${n}`));
}
