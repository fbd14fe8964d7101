// browser.mjs drives Debian's headless Chromium (through playwright-core)
// through mcp-authz's login and consent pages as a person would, and attacks
// them from a second loopback origin served by this program.
//
//   flow      the login page names the client and the redirect host; a wrong
//             password shows an error and stays on the page; the consent page
//             names the client, the redirect host and the scopes; Allow sends
//             the browser to the redirect URI with code, state and iss; the
//             code and the PKCE verifier buy an access token at /token.
//   framing   a page of the other origin frames the authorization page, signed
//             in (consent page) and signed out (login page), and /consents:
//             Chromium must refuse to render them, saying so on the console
//             or the network. A control proves a frameable page does render.
//   csrf      the other origin auto-submits forged consent and login forms in
//             the same browser after the user signed in: without the CSRF
//             token, with a wrong one and with the page's real one. Each must
//             get a refusal page (403) and no redirect with a code; the real
//             page still works after.
//
// The other origin is 127.0.0.1 on another port: another origin but the same
// site, so mcp-authz's SameSite=Lax cookie goes along with every forged post.
// Two layers stop them: the post's Origin (and Sec-Fetch-Site) is not the
// issuer's, and the CSRF token. Chromium always sends Origin on these posts,
// so here the first layer answers; the Go tests check the token alone.
//
// Every check prints "ok N - name" or "not ok N - name: why". Screenshots of
// the login, failed login and consent pages go to --out. The counts are
// written to --out/result ("PASSED FAILED"); the code, tokens and passwords
// seen are written to --out/secrets (mode 0600) so that the calling script
// can prove none reached mcp-authz's log.
//
// Usage: MCP_AUTHZ_PASSWORD=P node browser.mjs --issuer URL --client-id ID
//          --client-name NAME --redirect-uri URI --resource URL --scopes "A B"
//          --out DIR [--username admin] [--chromium /usr/bin/chromium]
// Exit status 0 when every check passed, 1 otherwise, 2 on bad usage.

import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const { values: opts } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'client-id': { type: 'string' },
    'client-name': { type: 'string' },
    'redirect-uri': { type: 'string' },
    resource: { type: 'string' },
    scopes: { type: 'string' },
    out: { type: 'string' },
    username: { type: 'string', default: 'admin' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const password = process.env.MCP_AUTHZ_PASSWORD;
for (const k of ['issuer', 'client-id', 'client-name', 'redirect-uri', 'resource', 'scopes',
  'out']) {
  if (!opts[k]) {
    console.error(`browser.mjs: --${k} is required (see the usage in its header)`);
    process.exit(2);
  }
}
if (!password) {
  console.error('browser.mjs: MCP_AUTHZ_PASSWORD is required');
  process.exit(2);
}

const issuer = opts.issuer.replace(/\/$/, '');
const authorizeURL = `${issuer}/authorize`;
const redirectURI = opts['redirect-uri'];
const redirectHost = new URL(redirectURI).host;
const scopes = opts.scopes.split(' ').filter(Boolean);
const clientName = opts['client-name'];
const secrets = [password];

// Chromium's flags: headless, and no connection anywhere but the pages this
// test opens (all on loopback). The background-networking flags are not
// enough for Debian's chromium (whose wrapper adds Google API keys and
// --enable-remote-extensions): it still looks up accounts.google.com,
// clients2.google.com and update.googleapis.com at start. The resolver rule
// answers every name but 127.0.0.1 with "not found", so it asks no DNS
// server; what strace then still shows is the resolver's IPv6 probe, a UDP
// connect() that sends nothing.
const chromiumArgs = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-default-browser-check',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];

// --- checks ------------------------------------------------------------------

let passed = 0;
let failed = 0;

function log(msg) {
  console.log(`browser: ${msg}`);
}

// check runs one named check; a thrown error fails it and the run goes on.
async function check(name, fn) {
  const n = passed + failed + 1;
  try {
    await fn();
    passed++;
    log(`ok ${n} - ${name}`);
    return true;
  } catch (err) {
    failed++;
    log(`not ok ${n} - ${name}: ${err?.message ?? err}`);
    return false;
  }
}

function expect(cond, what) {
  if (!cond) {
    throw new Error(what);
  }
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

// authorization returns a fresh PKCE pair, state and the authorization URL.
function authorization(extra = {}) {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));
  const u = new URL(authorizeURL);
  const params = {
    response_type: 'code',
    client_id: opts['client-id'],
    redirect_uri: redirectURI,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    resource: opts.resource,
    scope: scopes.join(' '),
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) {
    u.searchParams.set(k, v);
  }
  return { verifier, challenge, state, url: u.toString(), params };
}

// --- the other origin ----------------------------------------------------------

// The other origin serves pages registered by path: framing pages and forms
// that submit themselves.
const otherPages = new Map();
const other = createServer((req, res) => {
  const body = otherPages.get(new URL(req.url, 'http://x').pathname);
  if (body === undefined) {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(body);
});
await new Promise((resolve, reject) => {
  other.once('error', reject);
  other.listen(0, '127.0.0.1', resolve);
});
const otherOrigin = `http://127.0.0.1:${other.address().port}`;

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function framingPage(src) {
  return `<!doctype html><title>framing</title><h1>Win a prize</h1>
<iframe id="victim" src="${escapeHTML(src)}" width="600" height="500"></iframe>`;
}

function forgedFormPage(action, fields) {
  const inputs = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${escapeHTML(k)}" value="${escapeHTML(v)}">`)
    .join('\n');
  return `<!doctype html><title>forged</title>
<form method="post" action="${escapeHTML(action)}">${inputs}</form>
<script>document.forms[0].submit();</script>`;
}

// --- the browser ---------------------------------------------------------------

const profile = join(opts.out, 'chromium-profile');
const context = await chromium.launchPersistentContext(profile, {
  executablePath: opts.chromium,
  headless: true,
  args: chromiumArgs,
  viewport: { width: 800, height: 900 },
  timeout: 30_000,
});
// launchPersistentContext does not name Chromium's process: find it by its
// profile, so that the calling script can kill its process group (Playwright
// starts Chromium in a group of its own) should this program die first.
const browserPID = findChromium(profile);
if (browserPID) {
  writeFileSync(join(opts.out, 'chromium.pid'), `${browserPID}\n`);
}
context.setDefaultTimeout(10_000);
context.setDefaultNavigationTimeout(10_000);

function findChromium(dir) {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (ppid === process.pid && cmd.includes(`--user-data-dir=${dir}`)) {
        return Number(pid);
      }
    } catch {
      // The process ended while we looked.
    }
  }
  return 0;
}

// Everything the browser asks for must be on loopback: record any request
// that is not, and every request for the redirect URI. Nothing listens on
// the redirect URI's port (Playwright cannot route the target of a
// redirect), so the browser's visit ends in "connection refused", as it
// would at a client that is not waiting; the request itself is the answer.
const offLoopback = [];
const callbacks = [];
const callbackPrefix = redirectURI.split('?')[0];
const isCallback = (url) => url.startsWith(callbackPrefix);
context.on('request', (req) => {
  const u = new URL(req.url());
  if (['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol) &&
    !['127.0.0.1', '[::1]', 'localhost'].includes(u.hostname)) {
    offLoopback.push(req.url());
  }
  if (isCallback(req.url())) {
    callbacks.push(req.url());
  }
});

// submitTo clicks selector on p and waits for the browser's request for
// the redirect URI.
async function submitTo(p, selector) {
  const [req] = await Promise.all([
    p.waitForRequest((r) => isCallback(r.url())),
    p.click(selector),
  ]);
  await p.waitForLoadState('load').catch(() => {});
  return req.url();
}

function callbackParams(url) {
  const u = new URL(url);
  return Object.fromEntries(u.searchParams);
}

// shot saves a screenshot of page as out/NAME.png and prints its path.
async function shot(page, name) {
  const path = join(opts.out, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  log(`screenshot ${path}`);
}

// visibleText returns the rendered text of the page's main element.
async function visibleText(page) {
  return page.locator('main').innerText();
}

function expectHeaders(resp, what) {
  const h = resp.headers();
  expect(/^deny$/i.test(h['x-frame-options'] ?? ''),
    `${what}: X-Frame-Options is ${JSON.stringify(h['x-frame-options'])}, want DENY`);
  expect(/frame-ancestors 'none'/.test(h['content-security-policy'] ?? ''),
    `${what}: Content-Security-Policy lacks frame-ancestors 'none'`);
  expect(/no-store/.test(h['cache-control'] ?? ''), `${what}: Cache-Control lacks no-store`);
}

// --- 1. the flow ---------------------------------------------------------------

const page = await context.newPage();
// Console errors of the flow's pages (a CSP violation, say). mcp-authz
// serves no favicon; Chromium's 404 for it is no fault of the pages.
const pageErrors = [];
page.on('console', (m) => {
  if ((m.type() === 'error' || m.type() === 'warning') &&
    !(m.location()?.url ?? '').endsWith('/favicon.ico')) {
    pageErrors.push(`${m.type()}: ${m.text().trim()} (${m.location()?.url})`);
  }
});
page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`));
const flow = authorization();
let code = '';
let loginOK = false;
let consentOK = false;

await check('login page names the client and the redirect host', async () => {
  const resp = await page.goto(flow.url);
  expect(resp?.status() === 200, `GET /authorize answered ${resp?.status()}`);
  expectHeaders(resp, 'login page');
  await page.locator('input[name=password]').waitFor();
  const text = await visibleText(page);
  expect(text.includes('Sign in'), 'no "Sign in" heading');
  expect(text.includes(clientName), `client name ${JSON.stringify(clientName)} not shown`);
  expect(text.includes(redirectHost), `redirect host ${redirectHost} not shown`);
  // The client chose its name, with markup in it: it must show as text.
  const injected = await page.locator('main strong b, main strong i').count();
  expect(injected === 0, 'markup in the client name was rendered as HTML');
  const cookies = await context.cookies(issuer);
  const c = cookies.find((x) => x.name.includes('mcp-authz-session'));
  expect(c, 'no session cookie set by the login page');
  expect(c.httpOnly, 'session cookie is not HttpOnly');
  expect(c.sameSite === 'Lax' || c.sameSite === 'Strict', `session cookie SameSite=${c.sameSite}`);
  await shot(page, 'login');
});

await check('wrong password shows an error on the login page, no redirect', async () => {
  const wrong = `wrong-${b64url(randomBytes(6))}`;
  secrets.push(wrong);
  await page.fill('input[name=username]', opts.username);
  await page.fill('input[name=password]', wrong);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(authorizeURL) &&
      r.request().method() === 'POST'),
    page.click('button[type=submit]'),
  ]);
  await page.waitForLoadState('load');
  expect(resp.status() === 200, `wrong password answered ${resp.status()}, want 200 with the form`);
  expect(page.url().startsWith(authorizeURL), `browser left the page for ${page.url()}`);
  expect(callbacks.length === 0, 'the redirect URI was visited');
  const alert = page.locator('[role=alert]');
  await alert.waitFor();
  const msg = await alert.innerText();
  expect(/wrong/i.test(msg), `error message is ${JSON.stringify(msg)}`);
  expect(await page.inputValue('input[name=password]') === '', 'password field refilled');
  expect(await page.inputValue('input[name=username]') === opts.username,
    'user name not kept');
  const text = await visibleText(page);
  expect(text.includes(clientName) && text.includes(redirectHost),
    'login page lost the client name or redirect host after the error');
  await shot(page, 'login-error');
  loginOK = true;
});

await check('consent page names the client, the redirect host and the scopes', async () => {
  expect(loginOK, 'the login page did not come back after a wrong password');
  await page.fill('input[name=password]', password);
  const [resp] = await Promise.all([
    page.waitForResponse((r) => r.url().startsWith(authorizeURL) &&
      r.request().method() === 'POST'),
    page.click('button[type=submit]'),
  ]);
  await page.waitForLoadState('load');
  expect(resp.status() === 200, `right password answered ${resp.status()}`);
  expectHeaders(resp, 'consent page');
  await page.locator('button[value=allow]').waitFor();
  const text = await visibleText(page);
  expect(text.includes('Authorize access'), 'no "Authorize access" heading');
  expect(text.includes(clientName), `client name ${JSON.stringify(clientName)} not shown`);
  expect(text.includes(redirectHost), `redirect host ${redirectHost} not shown`);
  expect(text.includes(opts.resource), `resource ${opts.resource} not shown`);
  expect(text.includes(opts.username), `user ${opts.username} not shown`);
  const listed = await page.locator('main li').allInnerTexts();
  for (const s of scopes) {
    expect(listed.some((l) => l.trim() === s), `scope ${s} not listed (got ${listed})`);
  }
  expect(await page.locator('main strong b, main strong i').count() === 0,
    'markup in the client name was rendered as HTML');
  await shot(page, 'consent');
  consentOK = true;
});

await check('Allow sends the browser to the redirect URI with code, state and iss', async () => {
  expect(consentOK, 'no consent page');
  const url = await submitTo(page, 'button[value=allow]');
  expect(callbacks.length === 1, `redirect URI visited ${callbacks.length} times`);
  const p = callbackParams(url);
  expect(!p.error, `redirect carries error=${p.error}`);
  expect(p.code, 'redirect carries no code');
  expect(p.state === flow.state, `state ${p.state}, want ${flow.state}`);
  expect(p.iss === issuer, `iss ${p.iss}, want ${issuer}`);
  code = p.code;
  secrets.push(code);
});

await check('the code and the PKCE verifier buy an access token', async () => {
  expect(code, 'no code');
  const resp = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectURI,
      client_id: opts['client-id'],
      code_verifier: flow.verifier,
      resource: opts.resource,
    }),
  });
  const body = await resp.json();
  expect(resp.status === 200, `/token answered ${resp.status} ${JSON.stringify(body)}`);
  expect(/no-store/.test(resp.headers.get('cache-control') ?? ''), '/token lacks no-store');
  expect(typeof body.access_token === 'string' && body.access_token, 'no access_token');
  secrets.push(body.access_token);
  if (body.refresh_token) {
    secrets.push(body.refresh_token);
  }
  expect(/^bearer$/i.test(body.token_type), `token_type ${body.token_type}`);
  const claims = JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url'));
  const aud = [].concat(claims.aud);
  expect(aud.includes(opts.resource), `aud ${JSON.stringify(claims.aud)}`);
  expect(claims.iss === issuer, `iss ${claims.iss}`);
  expect(claims.client_id === opts['client-id'], `client_id ${claims.client_id}`);
  const got = (claims.scope ?? '').split(' ').sort().join(' ');
  expect(got === [...scopes].sort().join(' '), `scope ${claims.scope}`);
});

await check('the login and consent pages log no console error or warning', async () => {
  expect(pageErrors.length === 0, pageErrors.join('; '));
});

// --- 2. framing -----------------------------------------------------------------

// frameView opens a page of the other origin that frames src, and reports
// how often marker is found in the frame, the frame's document, the first
// response for src and what Chromium said about a blocked frame (waiting
// for that longer when expectBlock is set).
async function frameView(name, src, marker, expectBlock) {
  const path = `/frame-${name}`;
  otherPages.set(path, framingPage(src));
  const p = await context.newPage();
  const lines = [];
  const failures = [];
  const responses = [];
  p.on('console', (m) => lines.push(m.text().trim()));
  p.on('requestfailed', (r) => failures.push(`${r.url()} ${r.failure()?.errorText}`));
  p.on('response', (r) => {
    if (r.url() === src) {
      responses.push(r);
    }
  });
  try {
    await p.goto(otherOrigin + path);
    await p.waitForLoadState('load');
    const blocked = () => lines.find((l) => /frame-ancestors|X-Frame-Options/i.test(l)) ??
      failures.find((f) => /BLOCKED/i.test(f));
    // A blocked frame's console message may trail the load event: wait for
    // it a little (3 s at most when a block is expected).
    const until = Date.now() + (expectBlock ? 3000 : 300);
    while (!blocked() && Date.now() < until) {
      await p.waitForTimeout(50);
    }
    const frame = p.frames().find((f) => f !== p.mainFrame());
    expect(frame, 'no frame in the framing page');
    let content = '';
    try {
      content = await frame.content();
    } catch (err) {
      content = `(content unavailable: ${err.message.split('\n')[0]})`;
    }
    const rendered = await frame.locator(marker).count().catch(() => 0);
    const said = blocked();
    await shot(p, `framed-${name}`);
    return { frameURL: frame.url(), content, rendered, said, response: responses[0], lines,
      failures };
  } finally {
    await p.close();
  }
}

// framed expects Chromium to have refused to render mcp-authz's page in a
// frame: the page was asked for and answered with the anti-framing headers,
// nothing of it rendered, and Chromium said why on the console or network.
async function framed(name, src, marker) {
  const v = await frameView(name, src, marker, true);
  expect(v.response, 'the frame never asked mcp-authz');
  expectHeaders(v.response, `${name} in a frame`);
  expect(v.rendered === 0, `the frame rendered mcp-authz's ${name} page (${marker} found)`);
  expect(!/mcp-authz|name="password"|value="allow"/.test(v.content),
    `the frame's document shows mcp-authz's page: ${v.content.slice(0, 200)}`);
  expect(v.said, 'Chromium said nothing about a blocked frame (console: ' +
    `${JSON.stringify(v.lines)}, failed requests: ${JSON.stringify(v.failures)})`);
  log(`  ${name}: frame at ${v.frameURL}; Chromium: ${v.said.slice(0, 160)}`);
}

await check('control: a frameable page of the other origin renders in the frame', async () => {
  // Proves that framed() would see a page that was not blocked.
  otherPages.set('/frameable', '<!doctype html><title>frameable</title>' +
    '<form><input type="password" name="password"></form>');
  const v = await frameView('control', `${otherOrigin}/frameable`, 'input[name=password]',
    false);
  expect(v.rendered === 1, `the frameable page did not render (${v.frameURL})`);
  expect(!v.said, `Chromium reported a block for a frameable page: ${v.said}`);
});

await check('a page of another origin cannot frame the consent page (signed in)', async () => {
  expect(code, 'the user never signed in');
  // prompt=consent: a remembered consent would otherwise answer at once.
  await framed('consent', authorization({ prompt: 'consent' }).url, 'button[value=allow]');
  expect(callbacks.length === 1, 'the framed page reached the redirect URI');
});

// --- 3. CSRF ----------------------------------------------------------------------

// forge has a page of the other origin post fields to mcp-authz's form
// action in the signed-in browser, and expects the refusal page.
async function forge(name, fields) {
  const path = `/forge-${name}`;
  otherPages.set(path, forgedFormPage(authorizeURL, fields));
  const before = callbacks.length;
  const p = await context.newPage();
  try {
    const [resp] = await Promise.all([
      p.waitForResponse((r) => r.url().startsWith(authorizeURL) &&
        r.request().method() === 'POST'),
      p.goto(otherOrigin + path),
    ]);
    await p.waitForLoadState('load');
    const status = resp.status();
    expect(status === 403 || status === 400, `forged post answered ${status}, want 403 or 400`);
    expect(!resp.headers().location, `forged post redirected to ${resp.headers().location}`);
    expect(p.url().startsWith(authorizeURL), `browser went on to ${p.url()}`);
    expect(callbacks.length === before, `a forged post reached the redirect URI: ` +
      callbacks.slice(before).join(' '));
    const text = await visibleText(p);
    expect(/Authorization failed/.test(text), `no refusal page: ${text.slice(0, 160)}`);
    expect(await p.locator('button[value=allow], input[name=password]').count() === 0,
      'the refusal page offers a form');
    log(`  ${name}: ${status}, "${text.split('\n').find((l) => /:/.test(l))?.slice(0, 120)}"`);
  } finally {
    await p.close();
  }
}

// A real consent page, open in the user's browser: the forgeries below
// know its request id (the strongest attacker) but not its CSRF token.
const pending = authorization({ prompt: 'consent' });
let pendingID = '';
const victim = await context.newPage();

await check('a forged consent post without the CSRF token is refused', async () => {
  expect(code, 'the user never signed in');
  await victim.goto(pending.url);
  await victim.locator('button[value=allow]').waitFor();
  pendingID = await victim.inputValue('input[name=request]');
  expect(pendingID, 'consent page has no request field');
  await forge('consent-no-csrf', { step: 'consent', request: pendingID, consent: 'allow' });
});

await check('a forged consent post with a wrong CSRF token is refused', async () => {
  expect(pendingID, 'no consent page open');
  const real = await victim.inputValue('input[name=csrf]');
  let wrong = b64url(randomBytes(32));
  if (wrong === real) {
    wrong = `x${wrong}`;
  }
  await forge('consent-wrong-csrf', {
    step: 'consent', request: pendingID, csrf: wrong, consent: 'allow',
  });
});

await check('a forged login post (right password, no CSRF token) is refused', async () => {
  const f = authorization();
  await forge('login-no-csrf', {
    step: 'login', ...f.params, username: opts.username, password,
  });
});

await check('the real consent page still answers after the forgeries (Deny)', async () => {
  expect(pendingID, 'no consent page open');
  const before = callbacks.length;
  const url = await submitTo(victim, 'button[value=deny]');
  expect(callbacks.length === before + 1, 'Deny did not reach the redirect URI once');
  const p = callbackParams(url);
  expect(p.error === 'access_denied', `error=${p.error}, want access_denied`);
  expect(!p.code, 'Deny delivered a code');
  expect(p.state === pending.state, `state ${p.state}, want ${pending.state}`);
  expect(p.iss === issuer, `iss ${p.iss}, want ${issuer}`);
});
await victim.close();

await check('the same cross-origin post with the page\'s real CSRF token is refused too', async () => {
  // The attacker who had the token still loses: the post's Origin is not the
  // issuer's (the second layer; the Go tests check the CSRF token alone).
  const f = authorization({ prompt: 'consent' });
  const v = await context.newPage();
  let request = '';
  let csrf = '';
  try {
    await v.goto(f.url);
    request = await v.inputValue('input[name=request]');
    csrf = await v.inputValue('input[name=csrf]');
  } finally {
    await v.close();
  }
  expect(request && csrf, 'the consent page has no request or csrf field');
  await forge('real-csrf', { step: 'consent', request, csrf, consent: 'allow' });
});

// --- signed out: framing and login CSRF -------------------------------------------

await context.clearCookies();

await check('a page of another origin cannot frame the login page (signed out)', async () => {
  await framed('login', authorization().url, 'input[name=password]');
});

await check('a page of another origin cannot frame /consents (signed out)', async () => {
  await framed('consents', `${issuer}/consents`, 'input[name=password]');
});

await check('a forged login post with a wrong CSRF token is refused (signed out)', async () => {
  // The browser has a fresh binding cookie from a real login page...
  const f = authorization();
  const p = await context.newPage();
  await p.goto(f.url);
  const real = await p.inputValue('input[name=csrf]');
  await p.close();
  // ...and the forged form carries a token minted for another browser.
  const ts = real.split('.')[0];
  await forge('login-wrong-csrf', {
    step: 'login', ...f.params, csrf: `${ts}.${b64url(randomBytes(32))}`,
    username: opts.username, password,
  });
});

await check('the browser asked nothing but loopback', async () => {
  expect(offLoopback.length === 0, `off-loopback requests: ${offLoopback.join(' ')}`);
});

// --- the end -----------------------------------------------------------------------

await context.close();
other.close();
writeFileSync(join(opts.out, 'secrets'), `${secrets.filter(Boolean).join('\n')}\n`,
  { mode: 0o600 });
writeFileSync(join(opts.out, 'result'), `${passed} ${failed}\n`);
log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
