-- wrk script for scripts/load.sh, phase A: a fixed cycle of valid, invalid and oversize
-- QStash deliveries to the axum example receiver, with every response checked.
--
--   wrk -t2 -c64 -d20s --latency -s scripts/load/mixed.lua URL -- DIR MODE CONNECTIONS
--
-- DIR holds the bodies and the tokens signed by scripts/load.sh (see there). MODE:
--   mixed       valid + invalid + oversize (2 MiB with its Content-Length, 413 unread)
--   nooversize  valid + invalid only
--   exact       like mixed, but each thread must have ONE connection (-t N -c N): every
--               response is then matched to the request it answers (a connection is
--               strictly request, response, request...), so each class's status is
--               checked exactly; a request lost with its connection is allowed only right
--               after a 413 (the receiver closes the connection after it, see done()).
-- In mixed/nooversize, a thread has many connections and a response cannot be tied to its
-- request; the checks are then: no status outside the expected ones; every 200 echoes the
-- Upstash-Message-Id of a VALID class (so no invalid delivery was accepted); and per class,
-- 0 <= issued - answered, and the total of issued - answered <= CONNECTIONS + socket
-- read/write errors + 413s (requests in flight when wrk stops, lost with a reset
-- connection, or sent on a connection the receiver closed after a 413 are the only ones
-- without an answer).
--
-- done() prints a line "LOAD_RESULT key=value ..." that scripts/load.sh parses.

local dir, mode, connections
local requests = {}   -- the cycle: { class = ..., req = <raw HTTP request> }
local expected = {
  valid_current = 200, valid_next = 200,
  no_signature = 401, garbage_token = 401, tampered_body = 401, other_path = 401,
  oversize = 413,
}
local classes = {
  "valid_current", "valid_next", "no_signature", "garbage_token", "tampered_body",
  "other_path", "oversize",
}

-- per thread (each wrk thread has its own Lua state); read by done() via thread:get
counts = {}
local i = 0
local verify_call = false
local pending = nil   -- exact mode: the class of the request in flight on this thread
local previous = nil  -- exact mode: the status of the answer before it on this thread

local function bump(key, n)
  counts[key] = (counts[key] or 0) + (n or 1)
end

local function slurp(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"), "cannot open " .. dir .. "/" .. name)
  local s = f:read("*a")
  f:close()
  return s
end

local function token(name)
  return (slurp(name):gsub("%s+", ""))
end

local function delivery(class, body, signature, path)
  local headers = {
    ["Host"] = wrk.host .. ":" .. wrk.port,
    ["Content-Type"] = "application/json",
    ["Upstash-Message-Id"] = "msg_load_" .. class,
    ["Upstash-Retried"] = "0",
  }
  if signature then headers["Upstash-Signature"] = signature end
  return { class = class, req = wrk.format("POST", path or "/api/webhook", headers, body) }
end

function init(args)
  dir = args[1] or error("usage: -- DIR MODE CONNECTIONS")
  mode = args[2] or "mixed"
  connections = tonumber(args[3] or "0")
  -- done() runs in wrk's main Lua state, which init() never sees: it reads these back
  load_mode, load_connections = mode, connections
  local small = slurp("body_small.json")
  local tampered = slurp("body_tampered.json")
  local current = token("token_current")
  local next_key = token("token_next")
  local other = token("token_other_path")
  local garbage = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.Z2FyYmFnZQ.bm90LWEtbWFj"
  local cycle = {
    delivery("valid_current", small, current),
    delivery("valid_next", small, next_key),
    delivery("no_signature", small, nil),
    delivery("valid_current", small, current),
    delivery("garbage_token", small, garbage),
    delivery("tampered_body", tampered, current),   -- token for body_small, body changed
    delivery("valid_next", small, next_key),
    delivery("other_path", small, other),           -- token whose sub is /api/other
    delivery("valid_current", small, current),
  }
  if mode ~= "nooversize" then
    -- 2 MiB, signed for that body, sent whole with its Content-Length: refused from the
    -- header (413) before a byte of it is read.
    cycle[#cycle + 1] = delivery("oversize", slurp("body_2mib.json"), token("token_2mib"))
  end
  requests = cycle
  -- threads start at different points of the cycle
  i = (offset or 0) % #requests
  -- wrk calls request() once on its first thread (offset 0) to check the request, and
  -- never sends that one: not counted
  verify_call = (offset or 0) == 0
end

function request()
  if verify_call then
    verify_call = false
    return requests[i % #requests + 1].req
  end
  i = i % #requests + 1
  local r = requests[i]
  bump("issued:" .. r.class)
  if mode == "exact" then
    if pending then
      -- the connection died before the answer (wrk reconnected and asks for the next)
      bump("lost:" .. pending)
      bump(previous == 413 and "lost_after_413" or "lost_other")
    end
    pending = r.class
  end
  return r.req
end

function response(status, headers, body)
  bump("status:" .. status)
  if status == 200 then
    local id = body and body:match('"message_id":"([^"]*)"')
    local class = id and id:match("^msg_load_(.*)$")
    if class and expected[class] == 200 then
      bump("ok200:" .. class)
    else
      bump("bad200")   -- an accepted delivery that is not one of the valid classes
    end
  end
  if mode == "exact" then
    if pending == nil then
      bump("unmatched")
    elseif expected[pending] ~= status then
      bump("mismatch:" .. pending .. ":" .. status)
    else
      bump("answered:" .. pending)
    end
    pending = nil
    previous = status
  end
end

local threads = {}

function setup(thread)
  thread:set("offset", #threads * 3)
  threads[#threads + 1] = thread
end

local function fmt_table(t, prefix)
  local keys = {}
  for k, _ in pairs(t) do
    if k:sub(1, #prefix) == prefix then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = k:sub(#prefix + 1) .. ":" .. t[k] end
  return table.concat(out, ",")
end

function done(summary, latency, _)
  mode = threads[1]:get("load_mode")
  connections = threads[1]:get("load_connections")
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts") or {}
    for k, v in pairs(c) do total[k] = (total[k] or 0) + v end
  end
  local function n(k) return total[k] or 0 end
  local e = summary.errors
  local failures = {}
  local function fail(msg) failures[#failures + 1] = msg end

  -- statuses outside the expected set
  local allowed = { ["200"] = true, ["401"] = true, ["413"] = true }
  if mode == "nooversize" then allowed["413"] = nil end
  for k, v in pairs(total) do
    local s = k:match("^status:(%d+)$")
    if s and not allowed[s] then fail(v .. " responses with unexpected status " .. s) end
  end
  if n("bad200") > 0 then
    fail(n("bad200") .. " responses 200 for a delivery that is not a valid one (echoed message id)")
  end

  if mode == "exact" then
    for k, v in pairs(total) do
      if k:match("^mismatch:") then fail(v .. " x " .. k:sub(10) .. " (class:status)") end
    end
    if n("unmatched") > 0 then fail(n("unmatched") .. " responses with no request in flight") end
    if n("lost_other") > 0 then
      fail(n("lost_other") .. " requests lost on a connection whose previous answer was not a 413")
    end
  else
    -- a connection can lose its request in flight when wrk stops, at a socket error, or
    -- after a 413: the receiver closes the connection then, without "Connection: close",
    -- so wrk may send one more request on it, and that one gets EOF (which wrk does not
    -- count as an error) or a reset
    local slack = connections + e.read + e.write + n("status:413")
    local deficit = 0
    local function reconcile(name, issued, answered)
      local d = issued - answered
      if d < 0 then fail(name .. ": " .. answered .. " answers for " .. issued .. " requests") end
      deficit = deficit + math.max(d, 0)
    end
    reconcile("valid_current (200)", n("issued:valid_current"), n("ok200:valid_current"))
    reconcile("valid_next (200)", n("issued:valid_next"), n("ok200:valid_next"))
    reconcile("invalid (401)", n("issued:no_signature") + n("issued:garbage_token")
      + n("issued:tampered_body") + n("issued:other_path"), n("status:401"))
    reconcile("oversize (413)", n("issued:oversize"), n("status:413"))
    if deficit > slack then
      fail(deficit .. " requests without their expected answer, more than the " .. slack
        .. " that can be in flight at the end or lost with a socket error")
    end
  end

  local secs = summary.duration / 1e6
  local check = (#failures == 0) and "ok" or "FAIL"
  io.write("---- per class (issued requests) ----\n")
  for _, c in ipairs(classes) do
    if n("issued:" .. c) > 0 then
      local line = string.format("  %-14s expected %d  issued %7d", c, expected[c], n("issued:" .. c))
      if mode == "exact" then
        line = line .. string.format("  answered as expected %7d  lost (socket error/end) %d",
          n("answered:" .. c), n("lost:" .. c))
      elseif expected[c] == 200 then
        line = line .. string.format("  200 echoing this class %7d", n("ok200:" .. c))
      end
      io.write(line .. "\n")
    end
  end
  io.write("---- statuses: " .. fmt_table(total, "status:") .. "\n")
  io.write(string.format("---- wrk socket errors: connect %d, read %d, write %d, timeout %d; "
    .. "non-2xx/3xx (wrk's 'status' errors) %d\n", e.connect, e.read, e.write, e.timeout, e.status))
  if mode == "exact" then
    io.write(string.format("---- requests lost: %d right after a 413 (on the connection the "
      .. "receiver closed), %d elsewhere\n", n("lost_after_413"), n("lost_other")))
  end
  for _, f in ipairs(failures) do io.write("CHECK FAILED: " .. f .. "\n") end
  io.write(string.format(
    "LOAD_RESULT requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f statuses=%s "
      .. "sockerr=connect:%d/read:%d/write:%d/timeout:%d check=%s\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    fmt_table(total, "status:"), e.connect, e.read, e.write, e.timeout, check))
end
