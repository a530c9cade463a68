-- storm.lua -- wrk script of the boot storm: every request fetches the
-- per-device file of the next device in the list (args[1]: one file name
-- per line), so the whole set of devices is cycled through; each wrk
-- thread starts at its own offset, far from the others' (thread t at
-- the fraction t * 0.618... of the list, modulo 1): when the list is
-- longer than a server's cache of files, as at 1,000,000 devices, no
-- thread fetches what another fetched a moment ago, and every fetch
-- misses the cache, as in a real boot storm where each phone fetches
-- its own file.  args[2]: URL prefix (default "/provision/"); args[3]:
-- an Authorization header value to send, if any.
-- done() prints one "RESULT key=value ..." line that bench/bootstorm.sh
-- parses.
local paths, idx, prefix, headers = {}, 0, "/provision/", nil
local nthreads = 0

function setup(thread)
	thread:set("tid", nthreads)
	nthreads = nthreads + 1
end

function init(args)
	for l in io.lines(args[1]) do
		paths[#paths + 1] = l
	end
	prefix = args[2] or prefix
	if args[3] and args[3] ~= "" then
		headers = { Authorization = args[3] }
	end
	idx = math.floor(((tid or 0) * 0.6180339887) % 1 * #paths)
end

function request()
	idx = idx + 1
	if idx > #paths then idx = 1 end
	return wrk.format("GET", prefix .. paths[idx], headers)
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"RESULT requests=%d rps=%.0f p50_us=%d p99_us=%d max_us=%d errors=%d status_errors=%d" ..
		" connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
		summary.requests, summary.requests / summary.duration * 1e6,
		latency:percentile(50), latency:percentile(99), latency.max,
		e.connect + e.read + e.write + e.status + e.timeout, e.status,
		e.connect, e.read, e.write, e.timeout))
end
