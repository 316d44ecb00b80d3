// oidc-provider (panva) as a real OAuth 2.0 authorization server on 127.0.0.1, for the tests of
// crier's generic OAuth 2.0 + PKCE client (crates/crier-networks/tests/oauth2_oidc.rs).
// Usage: node server.mjs PORT (scripts/peers/oidc.sh start runs it; node_modules come from
// target/peers/oidc, named by CRIER_OIDC_MODULES). The issuer is http://127.0.0.1:PORT.
//
// What the tests rely on:
// - confidential clients, checked on their secrets: `crier` (client_secret_basic), `crier-post`
//   (client_secret_post) and `crier-encoded` (client_secret_basic, a secret of visible ASCII
//   that RFC 6749 §2.3.1's form-encoding changes). oidc-provider 9 takes a secret in the
//   Authorization header or in the body for a client registered with either method
//   (lib/shared/client_auth.js), so the registered method is not enforced;
// - PKCE required for every client (oidc-provider 9 only knows S256);
// - a refresh token with every code exchange of a client allowed the refresh_token grant (by
//   default oidc-provider issues one only for the `offline_access` scope, which it grants only
//   with prompt=consent);
// - revocation (RFC 7009) and introspection (RFC 7662) enabled, so a test can see a revoked
//   token is no longer active; the development login and consent forms (devInteractions), where
//   any login and password sign in as that account id;
// - redirect URIs on http://127.0.0.1: oidc-provider 9 accepts http redirect URIs for `web`
//   clients (the default application_type) unless they use the implicit grant (see
//   lib/helpers/client_schema.js, redirectUris()); a code-flow client needs no relaxation. (A
//   `native` client would also take http on a loopback host, with any port.)
// State is in memory (the default adapter): every start is a fresh server.
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const port = Number(process.argv[2])
if (!port) {
  console.error('usage: server.mjs PORT')
  process.exit(2)
}
const issuer = `http://127.0.0.1:${port}`
// oidc-provider is ESM: resolve its entry point in the install directory, then import it.
const require = createRequire(path.join(process.env.CRIER_OIDC_MODULES ?? process.cwd(), 'package.json'))
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href)

const REDIRECT_URI = 'http://127.0.0.1/callback'
const client = (client_id, client_secret, token_endpoint_auth_method) => ({
  client_id,
  client_secret,
  token_endpoint_auth_method,
  redirect_uris: [REDIRECT_URI],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
})

const provider = new Provider(issuer, {
  clients: [
    client('crier', 'crier-secret', 'client_secret_basic'),
    client('crier-post', 'crier-post-secret', 'client_secret_post'),
    client('crier-encoded', 'se:cr+et /%&=', 'client_secret_basic'),
  ],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    async claims() {
      return { sub }
    },
  }),
  ttl: {
    AccessToken: 300,
    AuthorizationCode: 60,
    RefreshToken: 24 * 60 * 60,
    IdToken: 300,
    Grant: 24 * 60 * 60,
    Session: 24 * 60 * 60,
    Interaction: 10 * 60,
  },
  cookies: { keys: ['crier-test-only-cookie-key'] },
  clientBasedCORS: () => false,
  renderError: async (ctx, out) => {
    ctx.type = 'json'
    ctx.body = out
  },
})

provider.on('server_error', (_ctx, err) => console.error('server_error', err))
provider.on('grant.error', (_ctx, err) => console.error('grant.error', err.message, err.error_detail || err.error_description || ''))

const server = provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider at ${issuer}`))
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0))
    server.closeAllConnections()
  })
}
