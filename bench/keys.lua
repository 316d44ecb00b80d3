-- wrk script: GET /v1/workspace, each request with the next key from a file (one a line).
-- Usage: wrk ... -s bench/keys.lua http://127.0.0.1:PORT -- KEYS_FILE
-- Each wrk thread starts at its own offset in the list and walks it in a loop. The requests
-- are formatted once in init(), so the per-request cost on the client is a table look-up.

local threads = 0

function setup(thread)
   thread:set("id", threads)
   threads = threads + 1
end

local requests = {}
local n = 0
local i = 0

function init(args)
   local path = args[1]
   if not path then
      error("keys.lua: pass the keys file after --")
   end
   for line in io.lines(path) do
      if #line > 0 then
         n = n + 1
         requests[n] = wrk.format("GET", "/v1/workspace", { ["Authorization"] = "Bearer " .. line })
      end
   end
   if n == 0 then
      error("keys.lua: no keys in " .. path)
   end
   -- Spread the threads over the list (id * 7919 is an arbitrary stride).
   i = ((id or 0) * 7919) % n
end

function request()
   i = i + 1
   if i > n then
      i = 1
   end
   return requests[i]
end
