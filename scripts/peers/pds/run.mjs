// Starts an in-memory PLC directory and the real Bluesky PDS on 127.0.0.1, for crier's tests.
// Usage: node -r ./loopback.cjs run.mjs PLC_PORT PDS_PORT DATA_DIR
// (scripts/peers/pds.sh start runs it; node_modules come from target/peers/pds).
import { createRequire } from 'node:module'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

const [plcPort, pdsPort, dataDir] = process.argv.slice(2)
if (!plcPort || !pdsPort || !dataDir) {
  console.error('usage: run.mjs PLC_PORT PDS_PORT DATA_DIR')
  process.exit(2)
}
// Resolve packages from the install directory (NODE_PATH does not apply to ESM imports).
const require = createRequire(path.join(process.env.CRIER_PDS_MODULES ?? process.cwd(), 'package.json'))
const plc = require('@did-plc/server')
const pds = require('@atproto/pds')

fs.mkdirSync(path.join(dataDir, 'blobs'), { recursive: true })

const plcServer = await plc.PlcServer.create({ db: plc.Database.mock(), port: Number(plcPort) })
await plcServer.start()

const env = {
  PDS_HOSTNAME: 'localhost',
  PDS_PORT: pdsPort,
  PDS_DEV_MODE: 'true',
  PDS_JWT_SECRET: crypto.randomBytes(16).toString('hex'),
  PDS_ADMIN_PASSWORD: process.env.CRIER_PDS_ADMIN_PASSWORD ?? 'admin-pass',
  PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: crypto.randomBytes(32).toString('hex'),
  PDS_DATA_DIRECTORY: dataDir,
  PDS_BLOBSTORE_DISK_LOCATION: path.join(dataDir, 'blobs'),
  // `localhost`, not 127.0.0.1: the PDS builds did:web-ish URLs from it.
  PDS_DID_PLC_URL: `http://localhost:${plcPort}`,
  PDS_SERVICE_HANDLE_DOMAINS: '.test',
  PDS_INVITE_REQUIRED: 'false',
  PDS_CRAWLERS: '',
  PDS_DISABLE_SSRF_PROTECTION: 'true',
  LOG_ENABLED: process.env.LOG_ENABLED ?? 'false',
}
Object.assign(process.env, env)
const cfg = pds.envToCfg(pds.readEnv())
const secrets = pds.envToSecrets(pds.readEnv())
const server = await pds.PDS.create(cfg, secrets)
await server.start()
console.log(`PLC on http://localhost:${plcPort}, PDS on http://127.0.0.1:${pdsPort}`)

const stop = async () => {
  try { await server.destroy() } catch (e) { console.error(e) }
  try { await plcServer.destroy() } catch (e) { console.error(e) }
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
