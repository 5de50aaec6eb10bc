// Loopback OpenID Provider for the authentication tests (driven by tests/support/idp.py).
// Usage: node provider.mjs config.json -- prints the issuer as the first stdout line when ready.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { once } from 'node:events';

import Provider, { errors } from 'oidc-provider';

// The driver reads only the first stdout line; oidc-provider prints its notices with
// console.info, so send them to stderr where they cannot be mistaken for the issuer.
console.info = console.error;

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const resources = new Map(config.resources.map((r) => [r.indicator, r]));
const claimsByClient = new Map(config.clients.map((c) => [c.client_id, c.claims ?? {}]));
// A client's `scope` allow-list may only name registered scopes; once registered, a scope
// outside the allow-list is refused (invalid_scope) rather than silently dropped.
const scopes = new Set(['openid', ...config.resources.flatMap((r) => r.scope.split(' '))]);

// Listen before building the Provider: the issuer must carry the port chosen by the OS.
// With `tls` (PEM certificate and key files) it serves HTTPS, as a production IdP must.
const server = config.tls
  ? createTlsServer({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) })
  : createServer();
server.listen(config.port ?? 0, config.host ?? '127.0.0.1');
await once(server, 'listening');
const scheme = config.tls ? 'https' : 'http';
const issuer = `${scheme}://${server.address().address}:${server.address().port}`;

const clients = config.clients.map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  scope: c.scope,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
}));
if (config.code_client) {
  clients.push({
    client_id: config.code_client.client_id,
    client_secret: config.code_client.client_secret,
    scope: 'openid',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [config.code_client.redirect_uri],
  });
}

// The web front end (backend-for-frontend): a confidential client signing people in with
// authorization code + PKCE; its access tokens are JWTs for the API, like the machine tokens.
const webClient = config.web_client;
if (webClient) {
  clients.push({
    client_id: webClient.client_id,
    client_secret: webClient.client_secret,
    scope: webClient.scope,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: webClient.redirect_uris,
    post_logout_redirect_uris: webClient.post_logout_redirect_uris ?? [],
  });
}
// Login names that are people with a role, as an IdP's user directory would map them:
// e.g. {"ung-anna": {"roles": ["youth_worker"], "unit": "ungdomsjouren"}}.  Any other
// login still signs in, as an account without a role.
const accounts = new Map(Object.entries(config.accounts ?? {}));

const ttl = (token) => token.resourceServer?.accessTokenTTL ?? 300;

const provider = new Provider(issuer, {
  clients,
  jwks: config.jwks,
  scopes: [...scopes],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  // Explicit TTLs keep the provider from nagging about defaults on stderr.
  ttl: {
    AccessToken: (ctx, token) => ttl(token),
    ClientCredentials: (ctx, token) => ttl(token),
    AuthorizationCode: 60,
    IdToken: 300,
    Interaction: 600,
    Session: 600,
    Grant: 600,
  },
  // Any login name is an account; the ID token only needs a subject.
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  pkce: { required: () => true },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Machine clients asking for no resource still get a JWT for the first resource;
      // the login flow gets none so that it stays a plain OpenID Connect flow.
      defaultResource: (ctx, client, oneOf) => {
        if (oneOf) return oneOf;
        const forApi = client.grantTypeAllowed('client_credentials') || client.clientId === webClient?.client_id;
        return forApi ? config.resources[0]?.indicator : undefined;
      },
      // The web client's code exchange and refreshes name no resource: they get the one granted.
      useGrantedResource: (ctx, model) => ctx.oidc.client?.clientId === webClient?.client_id,
      getResourceServerInfo: (ctx, indicator) => {
        const r = resources.get(indicator);
        if (!r) throw new errors.InvalidTarget();
        return {
          audience: r.audience,
          scope: r.scope,
          accessTokenFormat: 'jwt',
          accessTokenTTL: r.ttl,
          jwt: { sign: { alg: r.alg } },
        };
      },
    },
  },
  // Role and unit claims ride on machine tokens, as an IdP's client mappers would add them,
  // and on a signed-in person's access tokens from the accounts map.
  extraTokenClaims: (ctx, token) => {
    if (token.kind === 'ClientCredentials') return claimsByClient.get(token.clientId);
    if (token.kind === 'AccessToken' && token.accountId) return accounts.get(token.accountId);
    return undefined;
  },
});

server.on('request', provider.callback());

// Exit with status 0 on a stop request rather than dying by signal; keep-alive sockets from
// the test client would otherwise hold server.close() open.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

process.stdout.write(`${issuer}\n`);
