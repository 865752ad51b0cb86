-- wrk script of bench/crud.py: one interaction per run, the same requests as bench/workload.py.
-- Usage: wrk -t1 -cN -dS URL -s bench/crud.lua -- OP WORKLOAD.txt
-- OP is create | read | update | cond_read; WORKLOAD.txt is written by Workload.save().

local threads = {}
local counter = 0
local non2xx = 0
local first_failure = nil
local op, system_enc, create_tmpl, update_tmpl
local ids, idents = {}, {}
local headers = { ["Accept"] = "application/fhir+json", ["Content-Type"] = "application/fhir+json" }

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  op = args[1]
  local n = 0
  for line in io.lines(args[2]) do
    n = n + 1
    if n == 1 then system_enc = line
    elseif n == 2 then create_tmpl = line
    elseif n == 3 then update_tmpl = line
    else
      local id, ident = line:match("^(%S+) (%S+)$")
      if id then
        table.insert(ids, id)
        table.insert(idents, ident)
      end
    end
  end
  math.randomseed(os.time() * 100 + tid)
end

local function fill(tmpl, id, ident, tag)
  -- Placeholders hold plain ASCII values, so literal (non-pattern) replacement is safe.
  local s = tmpl:gsub("@ID@", id):gsub("@IDENT@", ident):gsub("@N@", tag)
  return s
end

function request()
  counter = counter + 1
  local tag = "w" .. tid .. "-" .. counter
  if op == "create" then
    return wrk.format("POST", "/fhir/Patient", headers, fill(create_tmpl, "", "hb-new-" .. tag, tag))
  end
  local k = math.random(#ids)
  if op == "read" then
    return wrk.format("GET", "/fhir/Patient/" .. ids[k], headers)
  elseif op == "update" then
    return wrk.format("PUT", "/fhir/Patient/" .. ids[k], headers, fill(update_tmpl, ids[k], idents[k], tag))
  elseif op == "cond_read" then
    return wrk.format("GET", "/fhir/Patient?identifier=" .. system_enc .. idents[k], headers)
  end
  error("unknown interaction " .. tostring(op))
end

function response(status, hdrs, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_failure == nil then first_failure = status .. " " .. string.sub(body or "", 1, 200) end
  end
end

function done(summary, latency, requests)
  local bad, sample = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
    local f = t:get("first_failure")
    if f and sample == "" then sample = f end
  end
  -- Keep the sample JSON-safe: letters, digits, spaces and a little punctuation only.
  sample = sample:gsub("[^%w %.%-:/,=]", "?")
  local e = summary.errors
  -- One JSON line that bench/crud.py parses; latencies are reported by wrk in microseconds.
  io.write(string.format(
    '\nBENCH-JSON {"requests": %d, "duration_s": %.6f, "non2xx": %d, "transport_errors": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "samples": ["%s"]}\n',
    summary.requests, summary.duration / 1e6, bad, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, sample))
end
