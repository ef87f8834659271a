-- wrk script for scripts/bench. Sends GET requests to the URL given to wrk, with the X-API-Key
-- header taken in turn from BENCH_KEYS (comma-separated; empty for the baselines), and counts the
-- requests it writes, so the harness can compare them with what the service counted: wrk's own
-- total leaves out the requests still in flight when it stops, which the service does answer.
-- done() prints one line, "BENCH_JSON {...}", with the totals and the latency percentiles (us).

local keys = {}
for key in string.gmatch(os.getenv("BENCH_KEYS") or "", "[^,]+") do
  keys[#keys + 1] = key
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  reqs = {}
  if #keys == 0 then
    reqs[1] = wrk.format("GET", nil, {})
  else
    for i, key in ipairs(keys) do
      reqs[i] = wrk.format("GET", nil, { ["X-API-Key"] = key })
    end
  end
end

function request()
  sent = sent + 1
  return reqs[(sent - 1) % #reqs + 1]
end

function done(summary, latency, requests)
  local written = 0
  for _, thread in ipairs(threads) do
    written = written + thread:get("sent")
  end
  -- wrk calls request() once more, in the first thread, to check the script before it starts.
  written = written - 1
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"sent":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, written, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
