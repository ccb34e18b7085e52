-- wrk: sends the signed deliveries of the file REQUESTS (`message id <TAB> token <TAB> body`
-- per line, from sign.py) in turn to the URL's path, every thread the whole pool from its own
-- offset; each request carries what QStash sends (Upstash-Signature, Upstash-Message-Id,
-- Upstash-Retried, Content-Type: application/json). Prints one `RESULT` line. No `response`
-- callback (it would make wrk parse every answer): wrk itself counts answers of status 400 and
-- over (`bad_status`) and socket errors.
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  local path = wrk.path
  lines = {}
  for line in io.lines(os.getenv("REQUESTS")) do
    local message_id, token, body = line:match("([^\t]+)\t([^\t]+)\t(.+)")
    table.insert(lines, wrk.format("POST", path, {
      ["Upstash-Signature"] = token,
      ["Upstash-Message-Id"] = message_id,
      ["Upstash-Retried"] = "0",
      ["Content-Type"] = "application/json",
    }, body))
  end
  next_line = (id * 97) % #lines + 1
end

function request()
  local r = lines[next_line]
  next_line = next_line % #lines + 1
  return r
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d bad_status=%d socket_errors=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f\n",
    summary.requests, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
