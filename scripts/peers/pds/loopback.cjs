// Preloaded with `node -r ./loopback.cjs`: a server that calls listen(port) without a host
// binds every interface; this adds the host 127.0.0.1 so the peer is reachable from this
// machine only.
'use strict'
const net = require('node:net')
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    if (args.length === 1 || typeof args[1] === 'function') {
      args.splice(1, 0, '127.0.0.1')
    } else if (typeof args[1] === 'number') {
      // listen(port, backlog, cb): no host given
      args.splice(1, 0, '127.0.0.1')
    } else if (args[1] === undefined || args[1] === null || args[1] === '' ||
      args[1] === '0.0.0.0' || args[1] === '::') {
      args[1] = '127.0.0.1'
    }
  } else if (args[0] && typeof args[0] === 'object' && !args[0].path &&
    (args[0].host === undefined || args[0].host === '0.0.0.0' || args[0].host === '::')) {
    args[0] = { ...args[0], host: '127.0.0.1' }
  }
  return listen.apply(this, args)
}
