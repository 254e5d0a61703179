// A real OpenID provider (the certified `oidc-provider` package) for Bravely's sign-in tests.
//
//   node server.mjs --redirect-uri URL [--post-logout-uri URL] [--port N | --fd N]
//                   [--client-id ID] [--client-secret SECRET] [--users FILE]
//
// Listens on 127.0.0.1 only: on --port (0, the default, picks a free one) or on an already
// listening socket passed as file descriptor --fd (race-free for a test that holds the port).
// Prints one line "listening on http://127.0.0.1:PORT" once it serves; the issuer is that URL.
//
// One confidential client (client_secret_basic, authorization code with PKCE S256 required).
// Sign-in is this file's own form against the user store in users.json (email + password),
// not oidc-provider's development interactions, which accept anyone. Consent is skipped for
// this first-party client: the grant covers whatever it asked for. The id_token carries the
// claims email, email_verified, hd (scope "email"), name (scope "profile") and groups (scope
// "groups"), since `conformIdTokenClaims` is off.

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';
import { exportJWK, generateKeyPair } from 'jose';

const HERE = path.dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    fd: { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    'post-logout-uri': { type: 'string', multiple: true, default: [] },
    'client-id': { type: 'string', default: 'bravely' },
    'client-secret': { type: 'string', default: 'bravely-test-client-secret-0123456789' },
    users: { type: 'string', default: path.join(HERE, 'users.json') },
  },
});
if (args['redirect-uri'].length === 0) {
  console.error('usage: node server.mjs --redirect-uri URL [--port N | --fd N] (see the top of this file)');
  process.exit(2);
}

// email -> { password, name, email_verified, hd?, groups? }
const USERS = JSON.parse(readFileSync(args.users, 'utf8'));
const byEmail = new Map(Object.entries(USERS).map(([email, u]) => [email.toLowerCase(), { email, ...u }]));

const server = http.createServer();
const listening = new Promise((resolve, reject) => {
  server.once('error', reject);
  if (args.fd !== undefined) server.listen({ fd: Number(args.fd) }, resolve);
  else server.listen(Number(args.port), '127.0.0.1', resolve);
});
await listening;
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
// A new key (and key id) at every start: a restarted provider has rotated its keys.
const kid = `test-${randomBytes(6).toString('hex')}`;
const signingKey = { ...(await exportJWK(privateKey)), kid, use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args['client-id'],
      client_secret: args['client-secret'],
      redirect_uris: args['redirect-uri'],
      post_logout_redirect_uris: args['post-logout-uri'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified', 'hd'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    const u = byEmail.get(sub);
    if (!u) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: u.email,
          email_verified: u.email_verified,
          name: u.name,
          hd: u.hd,
          groups: u.groups,
        };
      },
    };
  },
  // First-party client: no consent screen; the grant covers the scopes it asked for.
  async loadExistingGrant(ctx) {
    const clientId = ctx.oidc.client.clientId;
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) grant = new ctx.oidc.provider.Grant({ clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Sign-in error</h1><p id="error">${esc(out.error)}: ${esc(out.error_description ?? '')}</p>`);
  },
});

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title></head><body>${body}</body></html>`;
}

function loginForm(uid, error = '') {
  return page(
    'Test provider sign-in',
    `<h1>Test provider sign-in</h1>
${error ? `<p id="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
  <label>Email <input type="email" name="email" autocomplete="username" required></label>
  <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in at provider</button>
</form>`,
  );
}

async function formBody(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(c);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const oidc = provider.callback();

server.on('request', async (req, res) => {
  const url = new URL(req.url, issuer);
  const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!m) return oidc(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== m[1]) throw new Error('interaction mismatch');
    if (details.prompt.name !== 'login') {
      // Consent is never asked of this first-party client (see loadExistingGrant).
      return await provider.interactionFinished(req, res, { consent: {} }, { mergeWithLastSubmission: true });
    }
    if (req.method === 'GET' && !m[2]) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(loginForm(details.uid));
    }
    if (req.method === 'POST' && m[2]) {
      const form = await formBody(req);
      const email = (form.get('email') ?? '').trim().toLowerCase();
      const user = byEmail.get(email);
      if (!user || user.password !== form.get('password')) {
        res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
        return res.end(loginForm(details.uid, 'Wrong email or password.'));
      }
      return await provider.interactionFinished(req, res, { login: { accountId: email } }, { mergeWithLastSubmission: false });
    }
    res.writeHead(405);
    res.end();
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page('Error', `<h1>Interaction error</h1><p id="error">${esc(err.message)}</p>`));
  }
});

console.log(`listening on ${issuer}`);
