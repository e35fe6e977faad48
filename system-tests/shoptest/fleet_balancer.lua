-- The fleet ingress's balancer (shoptest/fleet.py): ingress-nginx's way of following a Service's
-- endpoints without reloading nginx, in miniature. ingress-nginx's controller POSTs the backends to
-- /configuration/backends on a local port; the handler stores them in a shared dictionary; every
-- worker copies them from there once a second (its BACKENDS_SYNC_INTERVAL) and balances over its
-- copy in balancer_by_lua (round robin, its default load-balance). A reload would close the
-- clients' keep-alive connections; this keeps every connection while pods come and go.
--
-- The body here is one "ip:port" per line (ingress-nginx sends JSON); an empty body means no
-- endpoints, and a request then gets the controller's 503.

local ngx_balancer = require("ngx.balancer")

local _M = {}

local SYNC_INTERVAL = 1 -- seconds, ingress-nginx's BACKENDS_SYNC_INTERVAL
local endpoints = {} -- this worker's copy: { {ip, port}, ... }
local applied = nil -- the configuration version the copy is from
local turn = 0

local function parse(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do
    local ip, port = line:match("^(%d+%.%d+%.%d+%.%d+):(%d+)$")
    if not ip or tonumber(port) < 1 or tonumber(port) > 65535 then
      return nil, "not an ip:port endpoint: " .. line
    end
    list[#list + 1] = { ip, tonumber(port) }
  end
  return list
end

local function sync()
  local data = ngx.shared.configuration_data
  local version = data:get("version")
  if version == applied then
    return
  end
  endpoints = parse(data:get("endpoints") or "") or endpoints
  applied = version
end

function _M.init_worker()
  sync()
  local ok, err = ngx.timer.every(SYNC_INTERVAL, sync)
  if not ok then
    ngx.log(ngx.ERR, "cannot schedule the endpoint sync: ", err)
  end
end

-- POST replaces the endpoints (201); GET answers the endpoints this worker balances over, one per
-- line, so that a caller can wait until a change has reached the worker.
function _M.configure()
  local method = ngx.req.get_method()
  if method == "GET" then
    local lines = {}
    for _, endpoint in ipairs(endpoints) do
      lines[#lines + 1] = endpoint[1] .. ":" .. endpoint[2] .. "\n"
    end
    ngx.print(table.concat(lines))
    return
  end
  if method ~= "POST" then
    return ngx.exit(ngx.HTTP_NOT_ALLOWED)
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data() or ""
  local list, err = parse(body)
  if not list then
    ngx.status = ngx.HTTP_BAD_REQUEST
    ngx.say(err)
    return
  end
  local data = ngx.shared.configuration_data
  data:set("endpoints", body)
  data:incr("version", 1, 0)
  ngx.status = ngx.HTTP_CREATED
end

function _M.balance()
  if #endpoints == 0 then
    ngx.log(ngx.WARN, "no endpoints")
    return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
  end
  turn = turn % #endpoints + 1
  local peer = endpoints[turn]
  -- As ingress-nginx: one more try on each pick; proxy_next_upstream_tries bounds the total.
  ngx_balancer.set_more_tries(1)
  local ok, err = ngx_balancer.set_current_peer(peer[1], peer[2])
  if not ok then
    ngx.log(ngx.ERR, "cannot set the peer ", peer[1], ":", peer[2], ": ", err)
    return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
  end
end

return _M
