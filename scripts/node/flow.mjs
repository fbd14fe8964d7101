// flow.mjs drives the TypeScript MCP SDK's own OAuth client through a proxy
// (nginx or Caddy) in front of mcp-authz and the demo MCP server.
//
// It discovers, registers, authorizes (answering the login and consent pages
// as a browser would), exchanges the code, lists and calls tools, refreshes,
// and recovers through the SDK's re-registration path after the client was
// revoked by the operator and after it was deleted (RFC 7592). The script that started it restarts and administers mcp-authz on
// request: this program prints a control line "@@ <action> [argument]" on
// standard output and waits for "ok" on standard input. Actions:
//
//   restart-kill   SIGKILL mcp-authz and start it again, wait until ready
//   restart-term   SIGTERM mcp-authz and start it again, wait until ready
//   stop, start    stop mcp-authz (SIGTERM); start it again, wait until ready
//   revoke ID      mcp-authz clients revoke ID
//
// Usage: node flow.mjs --server-url URL --username U --password P
//                      [--auth-method none|client_secret_post] [--label L]
//                      [--required-scope S] [--other-scope S] [--timeout SECONDS]
// Exit status 0 when every check passed; 1 with a "FAIL:" line otherwise.

import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
  exchangeAuthorization,
  startAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';

const { values: opts } = parseArgs({
  options: {
    'server-url': { type: 'string' },
    username: { type: 'string', default: 'admin' },
    password: { type: 'string' },
    'auth-method': { type: 'string', default: 'none' },
    label: { type: 'string', default: 'flow' },
    // The resource requires required-scope; a token for other-scope alone
    // must get 403 insufficient_scope.
    'required-scope': { type: 'string', default: 'mcp:tools' },
    'other-scope': { type: 'string', default: 'mcp:admin' },
    timeout: { type: 'string', default: '150' },
  },
});
if (!opts['server-url'] || !opts.password) {
  console.error('usage: flow.mjs --server-url URL --password P [--username U]');
  process.exit(2);
}
const serverUrl = new URL(opts['server-url']);
const origin = serverUrl.origin;
// The redirect URI is never dialled: the code is read from the Location
// header the consent page answers with, as a native app's loopback listener
// would receive it.
const redirectUri = 'http://127.0.0.1:9/callback';

let passed = 0;

function log(msg) {
  console.log(`${opts.label}: ${msg}`);
}

function check(name, ok, detail = '') {
  if (!ok) {
    throw new Error(`${name}${detail ? `: ${detail}` : ''}`);
  }
  passed++;
  log(`ok ${passed} - ${name}`);
}

// Control channel to the script that owns the processes.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function control(action) {
  console.log(`@@ ${action}`);
  const { value, done } = await stdinLines.next();
  if (done || value.trim() !== 'ok') {
    throw new Error(`control action "${action}" failed: ${done ? 'no answer' : value}`);
  }
}

// --- The user agent: login and consent pages ---------------------------

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(n);
    }
    return entities[e.toLowerCase()] ?? m;
  });
}

function attributes(tag) {
  const attrs = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  // Skip the element name.
  const body = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  for (const m of body.matchAll(re)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

// parseForm finds the page's one form and returns its action, method, the
// names of its visible inputs, its hidden fields and its submit buttons.
function parseForm(html, pageURL) {
  const forms = [...html.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form>/gi)];
  if (forms.length !== 1) {
    throw new Error(`page ${pageURL} has ${forms.length} forms, want 1`);
  }
  const formTag = forms[0][0].match(/^<form\b[^>]*>/i)[0];
  const fa = attributes(formTag);
  const form = {
    method: (fa.method ?? 'get').toLowerCase(),
    action: new URL(fa.action ?? '', pageURL),
    hidden: [],
    inputs: [],
    buttons: [],
  };
  for (const m of forms[0][1].matchAll(/<(input|button)\b[^>]*>/gi)) {
    const a = attributes(m[0]);
    if (m[1].toLowerCase() === 'button') {
      form.buttons.push({ name: a.name ?? '', value: a.value ?? '' });
    } else if ((a.type ?? 'text').toLowerCase() === 'hidden') {
      form.hidden.push([a.name ?? '', a.value ?? '']);
    } else {
      form.inputs.push(a.name ?? '');
    }
  }
  return form;
}

// authorizeInBrowser opens the authorization URL, signs in, allows, and
// returns the query of the redirect to redirectUri. Cookies are kept.
async function authorizeInBrowser(authorizationURL, { username, password }) {
  const jar = new Map();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let req = { url: new URL(authorizationURL), method: 'GET' };
  const seen = [];
  for (let step = 0; step < 8; step++) {
    const headers = { accept: 'text/html' };
    if (jar.size) headers.cookie = cookieHeader();
    if (req.body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = req.url.origin;
      headers.referer = req.referer;
    }
    const res = await fetch(req.url, {
      method: req.method, headers, body: req.body, redirect: 'manual',
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      if (i > 0) jar.set(pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      const loc = new URL(res.headers.get('location') ?? '', req.url);
      if (loc.href.startsWith(redirectUri)) {
        const q = loc.searchParams;
        if (q.get('error')) {
          throw new Error(`authorization answered error=${q.get('error')} ` +
            `(${q.get('error_description') ?? ''}) after ${seen.join(', ')}`);
        }
        return { query: q, steps: seen };
      }
      if (loc.origin !== req.url.origin) {
        throw new Error(`authorization redirected off-site to ${loc.href}`);
      }
      req = { url: loc, method: 'GET' };
      seen.push('redirect');
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) {
      throw new Error(`${req.method} ${req.url.pathname}: HTTP ${res.status}: ` +
        html.slice(0, 300).replace(/\s+/g, ' '));
    }
    const form = parseForm(html, req.url);
    if (form.method !== 'post') {
      throw new Error(`form on ${req.url.pathname} has method ${form.method}, want post`);
    }
    const fields = new URLSearchParams(form.hidden);
    if (form.inputs.includes('password')) {
      if (!form.inputs.includes('username')) {
        throw new Error(`login form has no username input (inputs ${form.inputs})`);
      }
      fields.set('username', username);
      fields.set('password', password);
      seen.push('login');
    } else if (form.buttons.some((b) => b.name === 'consent' && b.value === 'allow')) {
      fields.set('consent', 'allow');
      seen.push('consent');
    } else {
      throw new Error(`page ${req.url.pathname} is neither login nor consent: ` +
        html.slice(0, 300).replace(/\s+/g, ' '));
    }
    req = { url: form.action, method: 'POST', body: fields.toString(), referer: req.url.href };
  }
  throw new Error(`authorization did not finish after 8 steps (${seen.join(', ')})`);
}

// --- The SDK's OAuthClientProvider, kept in memory ---------------------

class MemoryProvider {
  constructor({ authMethod }) {
    this.authMethod = authMethod;
    this.client = undefined;
    this.stored = undefined;
    this.verifier = undefined;
    this.expectedState = undefined;
    this.stale = false;
    this.code = undefined;
    this.registrations = [];
    this.authorizations = 0;
    this.invalidations = [];
    this.tokenSaves = 0;
    // beforeAuthorizationPage runs after registration, before the user
    // agent opens the authorization URL.
    this.beforeAuthorizationPage = async () => {};
  }

  get redirectUrl() {
    return redirectUri;
  }

  get clientMetadata() {
    return {
      client_name: `mcp-authz e2e (${opts.label}, TypeScript SDK)`,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: this.authMethod,
    };
  }

  state() {
    this.expectedState = randomBytes(16).toString('base64url');
    return this.expectedState;
  }

  clientInformation() {
    return this.client;
  }

  saveClientInformation(info) {
    if (!this.client || this.client.client_id !== info.client_id) {
      this.registrations.push(info.client_id);
    }
    this.client = info;
  }

  // tokens answers the stored tokens; while stale is set, with an access
  // token the server cannot accept, as an expired one would be, so that the
  // next request gets 401 and the SDK refreshes.
  tokens() {
    if (this.stored && this.stale) {
      return { ...this.stored, access_token: 'expired.access.token' };
    }
    return this.stored;
  }

  saveTokens(tokens) {
    this.stored = tokens;
    this.stale = false;
    this.tokenSaves++;
  }

  saveCodeVerifier(v) {
    this.verifier = v;
  }

  codeVerifier() {
    if (!this.verifier) throw new Error('no code verifier saved');
    return this.verifier;
  }

  async redirectToAuthorization(url) {
    this.authorizations++;
    this.code = undefined;
    await this.beforeAuthorizationPage();
    const { query, steps } = await authorizeInBrowser(url, {
      username: opts.username, password: opts.password,
    });
    log(`authorization pages: ${steps.join(' -> ')}`);
    if (query.get('state') !== this.expectedState) {
      throw new Error(`callback state ${query.get('state')}, want ${this.expectedState}`);
    }
    this.iss = query.get('iss');
    this.code = query.get('code');
    if (!this.code) throw new Error('callback has no code');
  }

  invalidateCredentials(scope) {
    this.invalidations.push(scope);
    if (scope === 'all' || scope === 'client') this.client = undefined;
    if (scope === 'all' || scope === 'tokens') this.stored = undefined;
    if (scope === 'all' || scope === 'verifier') this.verifier = undefined;
  }
}

// --- The flow ------------------------------------------------------------

// managed holds the RFC 7592 management answers of each registration
// (registration_client_uri, registration_access_token), read from the SDK's
// own registration requests; the SDK keeps only the fields it knows.
const managed = new Map();

async function recordingFetch(input, init) {
  const res = await fetch(input, init);
  const url = new URL(input instanceof Request ? input.url : String(input));
  const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
  if (method === 'POST' && url.pathname === '/register' && res.status === 201) {
    const body = await res.clone().json();
    managed.set(body.client_id, {
      uri: body.registration_client_uri, token: body.registration_access_token,
    });
  }
  return res;
}

function newClient(provider) {
  const transport = new StreamableHTTPClientTransport(serverUrl, {
    authProvider: provider, fetch: recordingFetch,
  });
  const client = new Client({ name: `mcp-authz-e2e-${opts.label}`, version: '1.0.0' });
  return { client, transport };
}

// expectUnauthorized runs fn, which must end in the SDK's redirect to the
// authorization page (UnauthorizedError after redirectToAuthorization).
async function expectUnauthorized(what, fn) {
  try {
    await fn();
  } catch (err) {
    if (err instanceof UnauthorizedError) return;
    throw new Error(`${what}: want UnauthorizedError (redirect to authorization), got ${err}`);
  }
  throw new Error(`${what}: succeeded without authorization`);
}

function text(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');
}

function claims(jwt) {
  const part = jwt.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

async function rawPost(token) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
  };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(serverUrl, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  const body = await res.text();
  return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '', body };
}

// narrowToken gets a token for scope through the authorization server's
// endpoints directly (the SDK's own building blocks, outside auth()), for a
// client that is already registered.
async function narrowToken(provider, scope) {
  const metadata = await discoverAuthorizationServerMetadata(origin);
  const state = randomBytes(16).toString('base64url');
  const { authorizationUrl, codeVerifier } = await startAuthorization(origin, {
    metadata, clientInformation: provider.client, redirectUrl: redirectUri, scope, state,
    resource: serverUrl,
  });
  const { query } = await authorizeInBrowser(authorizationUrl, {
    username: opts.username, password: opts.password,
  });
  if (query.get('state') !== state) throw new Error('narrow token: state mismatch');
  return exchangeAuthorization(origin, {
    metadata, clientInformation: provider.client, authorizationCode: query.get('code'),
    codeVerifier, redirectUri, resource: serverUrl,
  });
}

async function main() {
  const provider = new MemoryProvider({ authMethod: opts['auth-method'] });
  const wantMetadata = `${origin}/.well-known/oauth-protected-resource${serverUrl.pathname}`;

  // 0. Without a token the proxy answers the challenge that starts discovery.
  const anon = await rawPost(undefined);
  check('anonymous request is 401', anon.status === 401, `status ${anon.status}`);
  check('challenge names resource_metadata', anon.challenge.includes(`resource_metadata="${wantMetadata}"`),
    anon.challenge);
  check('401 body is a JSON error', (() => {
    try {
      return typeof JSON.parse(anon.body).error === 'string';
    } catch {
      return false;
    }
  })(), anon.body.slice(0, 200));

  // 1. Discover, register, authorize. mcp-authz is killed after the
  // registration, before the user sees the authorization page, and
  // restarted again before the code exchange.
  provider.beforeAuthorizationPage = () => control('restart-kill');
  const first = newClient(provider);
  await expectUnauthorized('first connect', () => first.client.connect(first.transport));
  provider.beforeAuthorizationPage = async () => {};
  check('one registration', provider.registrations.length === 1, `${provider.registrations}`);
  const clientId = provider.registrations[0];
  if (opts['auth-method'] !== 'none') {
    check(`confidential client (${opts['auth-method']}) got a secret`,
      typeof provider.client?.client_secret === 'string' && provider.client.client_secret !== '');
  }
  check('code received after login and consent', !!provider.code);
  check('iss on the authorization response is the issuer', provider.iss === origin,
    `iss ${provider.iss}, want ${origin}`);

  await control('restart-term');
  await first.transport.finishAuth(provider.code);
  const tokens1 = provider.tokens();
  check('code exchanged for tokens across restarts', !!tokens1?.access_token && !!tokens1?.refresh_token);
  const c1 = claims(tokens1.access_token);
  check('access token audience is the resource', [].concat(c1.aud).includes(serverUrl.href),
    `aud ${JSON.stringify(c1.aud)}`);
  check('access token names the registered client', c1.client_id === clientId,
    `client_id ${c1.client_id}, want ${clientId}`);

  // 2. Connect with the token, list and call tools through the proxy.
  const second = newClient(provider);
  await second.client.connect(second.transport);
  const { tools } = await second.client.listTools();
  const names = tools.map((t) => t.name).sort();
  check('tools listed through the proxy', ['add', 'echo', 'whoami'].every((n) => names.includes(n)),
    `${names}`);
  const sum = await second.client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
  check('add(2, 3) = 5', text(sum) === '5', text(sum));
  const echo = await second.client.callTool({ name: 'echo', arguments: { text: 'hello' } });
  check('echo', text(echo) === 'hello', text(echo));
  const who = await second.client.callTool({ name: 'whoami', arguments: {} });
  check('identity headers reach the MCP server',
    text(who).includes(`subject=${opts.username}`) && text(who).includes(`client=${clientId}`), text(who));

  check('granted scope reaches the MCP server', text(who).includes(`scope=${opts['required-scope']}`),
    text(who));

  // A client cannot choose its identity, nor the request the check sees:
  // the proxy overwrites these headers.
  const spoof = new StreamableHTTPClientTransport(serverUrl, {
    authProvider: provider,
    requestInit: {
      headers: {
        'X-Mcp-Subject': 'mallory', 'X-Mcp-Client-Id': 'evil', 'X-Mcp-Scope': 'everything',
        'X-Original-URI': '/elsewhere', 'X-Original-Host': 'evil.invalid',
        'X-Original-Method': 'GET', 'X-Forwarded-Uri': '/elsewhere',
        'X-Forwarded-Host': 'evil.invalid', 'X-Forwarded-Method': 'GET',
      },
    },
  });
  const spoofClient = new Client({ name: 'spoof', version: '1.0.0' });
  await spoofClient.connect(spoof);
  const who3 = await spoofClient.callTool({ name: 'whoami', arguments: {} });
  check('spoofed identity and routing headers are overwritten by the proxy',
    text(who3) === text(who), `${text(who3)} (want ${text(who)})`);
  await spoofClient.close();

  // A token without the resource's required scope gets 403 with the
  // challenge naming it.
  const narrow = await narrowToken(provider, opts['other-scope']);
  check(`token for scope ${opts['other-scope']} issued`, narrow.scope === opts['other-scope'],
    `scope ${narrow.scope}`);
  const forbidden = await rawPost(narrow.access_token);
  check('token without the required scope gets 403', forbidden.status === 403,
    `status ${forbidden.status}: ${forbidden.body.slice(0, 200)}`);
  check('403 challenge says insufficient_scope and names the required scope',
    forbidden.challenge.includes('error="insufficient_scope"') &&
    forbidden.challenge.includes(`scope="${opts['required-scope']}"`), forbidden.challenge);
  let errorBody;
  try {
    errorBody = JSON.parse(forbidden.body);
  } catch {
    errorBody = undefined;
  }
  check('403 body is JSON with error insufficient_scope', errorBody?.error === 'insufficient_scope',
    forbidden.body.slice(0, 200));

  // 3. Restart again, then make the SDK refresh: its next request carries an
  // unusable access token, gets 401, and the SDK uses the refresh token.
  await control('restart-kill');
  provider.stale = true;
  const authorizationsBefore = provider.authorizations;
  const refreshed = await second.client.callTool({ name: 'echo', arguments: { text: 'refreshed' } });
  check('call succeeds after a refresh across a restart', text(refreshed) === 'refreshed', text(refreshed));
  const tokens2 = provider.tokens();
  check('refresh issued new tokens', tokens2.access_token !== tokens1.access_token &&
    tokens2.refresh_token !== tokens1.refresh_token && !provider.stale);
  check('refresh needed no new authorization or registration',
    provider.authorizations === authorizationsBefore && provider.registrations.length === 1);

  // While mcp-authz is down the proxy fails closed, with a 5xx: an outage is
  // not a verdict on the token.
  await control('stop');
  const down = await rawPost(tokens2.access_token);
  check(`with mcp-authz down the proxy refuses with 5xx (${down.status})`,
    down.status >= 500 && down.status < 600, `status ${down.status}`);
  await control('start');

  // 4. Revoke the client: the current token stops working at once, with a
  // challenge that lets a client start over.
  await control(`revoke ${clientId}`);
  const denied = await rawPost(tokens2.access_token);
  check('revoked client\'s token gets 401', denied.status === 401, `status ${denied.status}`);
  check('401 after revocation names resource_metadata',
    denied.challenge.includes(`resource_metadata="${wantMetadata}"`), denied.challenge);
  const meta = await (await fetch(wantMetadata)).json();
  check('resource metadata names the resource and the issuer',
    meta.resource === serverUrl.href && (meta.authorization_servers ?? []).includes(origin),
    JSON.stringify(meta));

  // 5. The SDK's own recovery: its refresh is answered 401 invalid_client,
  // so it forgets the client, registers anew and authorizes again.
  await expectUnauthorized('call after revocation',
    () => second.client.callTool({ name: 'echo', arguments: { text: 'x' } }));
  check('SDK invalidated all credentials on invalid_client', provider.invalidations.includes('all'),
    `invalidations ${provider.invalidations}`);
  check('SDK registered a new client', provider.registrations.length === 2 &&
    provider.registrations[1] !== clientId, `${provider.registrations}`);
  await second.transport.finishAuth(provider.code);
  await second.client.close();
  const third = newClient(provider);
  await third.client.connect(third.transport);
  const again = await third.client.callTool({ name: 'add', arguments: { a: 40, b: 2 } });
  check('tools work again with the new registration', text(again) === '42', text(again));
  const who2 = await third.client.callTool({ name: 'whoami', arguments: {} });
  check('new client id reaches the MCP server', text(who2).includes(`client=${provider.registrations[1]}`),
    text(who2));

  // 6. The client deletes its registration (RFC 7592) through the proxy;
  // the deletion survives a restart, and the SDK recovers once more.
  const reg = managed.get(provider.registrations[1]);
  check('registration answer carries RFC 7592 management on the proxy\'s origin',
    reg?.token && reg?.uri?.startsWith(`${origin}/register/`), JSON.stringify(reg?.uri));
  const del = await fetch(reg.uri, { method: 'DELETE', headers: { authorization: `Bearer ${reg.token}` } });
  check('DELETE of the registration through the proxy answers 204', del.status === 204,
    `status ${del.status}`);
  await control('restart-kill');
  const afterDelete = await rawPost(provider.tokens().access_token);
  check('deleted client\'s token gets 401 with resource_metadata after a restart',
    afterDelete.status === 401 && afterDelete.challenge.includes('resource_metadata='),
    `status ${afterDelete.status} ${afterDelete.challenge}`);
  await expectUnauthorized('call after deletion',
    () => third.client.callTool({ name: 'echo', arguments: { text: 'x' } }));
  check('SDK registered again after the deletion', provider.registrations.length === 3,
    `${provider.registrations}`);
  await third.transport.finishAuth(provider.code);
  await third.client.close();
  const fourth = newClient(provider);
  await fourth.client.connect(fourth.transport);
  const last = await fourth.client.callTool({ name: 'whoami', arguments: {} });
  check('tools work with the third registration',
    text(last).includes(`client=${provider.registrations[2]}`), text(last));
  await fourth.client.close();
}

const limit = Number(opts.timeout) * 1000;
const timer = setTimeout(() => {
  console.log(`FAIL: ${opts.label}: flow did not finish within ${opts.timeout}s`);
  process.exit(1);
}, limit);

try {
  await main();
  clearTimeout(timer);
  log(`all ${passed} checks passed`);
  process.exit(0);
} catch (err) {
  console.log(`FAIL: ${opts.label}: ${err?.stack ?? err}`);
  process.exit(1);
}
