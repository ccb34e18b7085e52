-- wrk: each request is the next line of REQUESTS (message id, token, body), each thread
-- taking every n-th line, so that no delivery is sent twice; counts statuses and wrap-arounds.
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  thread:set("nthreads", 0)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  lines = {}
  local n = 0
  for line in io.lines(os.getenv("REQUESTS")) do
    n = n + 1
    if (n - 1) % tonumber(os.getenv("THREADS")) == id - 1 then
      local message_id, token, body = line:match("([^\t]+)\t([^\t]+)\t(.+)")
      table.insert(lines, wrk.format("POST", "/api/webhook", {
        ["Upstash-Signature"] = token,
        ["Upstash-Message-Id"] = message_id,
        ["Upstash-Retried"] = "0",
        ["Content-Type"] = "application/json",
      }, body))
    end
  end
  next_line = 1
  wrapped = 0
  ok = 0
  other = 0
end

function request()
  local r = lines[next_line]
  next_line = next_line + 1
  if next_line > #lines then
    next_line = 1
    wrapped = wrapped + 1
  end
  return r
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local ok_total, other_total, wrapped_total = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    other_total = other_total + thread:get("other")
    wrapped_total = wrapped_total + thread:get("wrapped")
  end
  io.write(string.format(
    "RESULT requests=%d ok=%d other=%d wrapped=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, ok_total, other_total, wrapped_total, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
