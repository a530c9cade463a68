-- storm-auth.lua -- the boot storm with authentication, as a phone that
-- boots does it: GET its file without credentials, receive 401 with a
-- challenge, GET it again with credentials, receive 200; then the next
-- device.  args: paths file, scheme ("digest" or "basic"), user,
-- password, realm, number of wrk threads [, URL prefix].  Each thread
-- takes its own share of the devices, as each phone fetches only its
-- own files.
--   digest: RFC 7616 MD5, qop=auth, with the nonce of the 401
--           (libmicrohttpd 0.9.75 binds each nonce to the URI and the
--           second it was made, so a device that comes round again within
--           the same second gets the same nonce back: nc then continues
--           from the last one used for that device);
--   basic:  the same dance with "Authorization: Basic" (nginx has no
--           digest module; this is its cheapest equivalent).
-- Run it with as many wrk threads as connections (-tN -cN): wrk's Lua
-- state is per thread and response() does not say which request it
-- answers, so one connection per thread keeps request and answer paired.
-- done() prints "RESULT ..." with fetches (200 answers) and requests.
-- MD5 is implemented here with LuaJIT's bit library (wrk embeds LuaJIT);
-- HA1 and each path's HA2 are computed once: a fetch costs one MD5.
local bit = require("bit")
local band, bor, bxor, bnot, rol, rshift, tobit =
	bit.band, bit.bor, bit.bxor, bit.bnot, bit.rol, bit.rshift, bit.tobit

local K, S = {}, {}
for i = 0, 63 do
	K[i] = tobit(math.floor(math.abs(math.sin(i + 1)) * 2 ^ 32))
end
local shifts = { { 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 }, { 6, 10, 15, 21 } }
for i = 0, 63 do
	S[i] = shifts[math.floor(i / 16) + 1][i % 4 + 1]
end

local function hexle(w)
	return string.format("%02x%02x%02x%02x", band(w, 255), band(rshift(w, 8), 255),
		band(rshift(w, 16), 255), band(rshift(w, 24), 255))
end

function md5(msg)
	local len = #msg
	local bits, tail = len * 8, {}
	for i = 1, 8 do
		tail[i] = string.char(bits % 256)
		bits = math.floor(bits / 256)
	end
	msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64) .. table.concat(tail)
	local a0, b0, c0, d0 = tobit(0x67452301), tobit(0xefcdab89), tobit(0x98badcfe), tobit(0x10325476)
	local M = {}
	for chunk = 1, #msg, 64 do
		for i = 0, 15 do
			local b1, b2, b3, b4 = msg:byte(chunk + i * 4, chunk + i * 4 + 3)
			M[i] = tobit(b1 + b2 * 256 + b3 * 65536 + b4 * 16777216)
		end
		local A, B, C, D = a0, b0, c0, d0
		for i = 0, 63 do
			local F, g
			if i < 16 then
				F, g = bor(band(B, C), band(bnot(B), D)), i
			elseif i < 32 then
				F, g = bor(band(D, B), band(bnot(D), C)), (5 * i + 1) % 16
			elseif i < 48 then
				F, g = bxor(B, C, D), (3 * i + 5) % 16
			else
				F, g = bxor(C, bor(B, bnot(D))), (7 * i) % 16
			end
			F = tobit(F + A + K[i] + M[g])
			A, D, C = D, C, B
			B = tobit(B + rol(F, S[i]))
		end
		a0, b0, c0, d0 = tobit(a0 + A), tobit(b0 + B), tobit(c0 + C), tobit(d0 + D)
	end
	return hexle(a0) .. hexle(b0) .. hexle(c0) .. hexle(d0)
end

local paths, ha2, idx, prefix = {}, {}, 1, "/provision/"
local scheme, user, realm, ha1, basic
local nonce, opaque = nil, nil
local last_nonce, last_nc, nc = {}, {}, 1
local cnonce = "0a4f113b"
local nthreads = 0

function setup(thread)
	thread:set("tid", nthreads)
	nthreads = nthreads + 1
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
	local out = {}
	for i = 1, #s, 3 do
		local a, b, c = s:byte(i, i + 2)
		local n = a * 65536 + (b or 0) * 256 + (c or 0)
		local q = {}
		for k = 3, 0, -1 do
			q[4 - k] = b64chars:sub(math.floor(n / 64 ^ k) % 64 + 1, math.floor(n / 64 ^ k) % 64 + 1)
		end
		if not b then q[3] = "=" end
		if not c then q[4] = "=" end
		out[#out + 1] = table.concat(q)
	end
	return table.concat(out)
end

function init(args)
	assert(md5("") == "d41d8cd98f00b204e9800998ecf8427e", "md5 self-test")
	assert(md5(string.rep("a", 80)) == "b15af9cdabbaea0516866a33d8fd0f98", "md5 two blocks")
	assert(base64("phone:x") == "cGhvbmU6eA==", "base64 self-test")
	scheme, user, realm, prefix = args[2], args[3], args[5], args[7] or prefix
	local nthr, i = tonumber(args[6]) or 1, 0
	ha1 = md5(user .. ":" .. realm .. ":" .. args[4])
	basic = "Basic " .. base64(user .. ":" .. args[4])
	for l in io.lines(args[1]) do
		if i % nthr == (tid or 0) then
			paths[#paths + 1] = prefix .. l
			if scheme == "digest" then
				ha2[#paths] = md5("GET:" .. prefix .. l)
			end
		end
		i = i + 1
	end
	assert(#paths > 0, "more threads than devices")
	idx = 1
	cnonce = string.format("%08x", 0x0a4f113b + (tid or 0))
end

local challenged = false

function request()
	if not challenged then
		return wrk.format("GET", paths[idx])
	end
	if scheme == "basic" then
		return wrk.format("GET", paths[idx], { Authorization = basic })
	end
	local ncs = string.format("%08x", nc)
	local resp = md5(ha1 .. ":" .. nonce .. ":" .. ncs .. ":" .. cnonce .. ":auth:" .. ha2[idx])
	local h = string.format('Digest username="%s", realm="%s", nonce="%s", uri="%s", ' ..
		'algorithm=MD5, response="%s", qop=auth, nc=%s, cnonce="%s"',
		user, realm, nonce, paths[idx], resp, ncs, cnonce)
	if opaque then
		h = h .. string.format(', opaque="%s"', opaque)
	end
	return wrk.format("GET", paths[idx], { Authorization = h })
end

function response(status, headers, body)
	if status == 401 and not challenged then
		local c = headers["WWW-Authenticate"] or ""
		nonce = c:match('nonce="([^"]+)"')
		opaque = c:match('opaque="([^"]+)"')
		nc = (nonce ~= nil and last_nonce[idx] == nonce) and last_nc[idx] + 1 or 1
		last_nonce[idx], last_nc[idx] = nonce, nc
		challenged = true
		return
	end
	-- 200, or a refused answer (counted as a status error by wrk): next device
	challenged = false
	idx = idx + 1
	if idx > #paths then idx = 1 end
end

function done(summary, latency, requests)
	local e = summary.errors
	local fetches = summary.requests - e.status
	io.write(string.format(
		"RESULT requests=%d fetches=%d rps=%.0f fps=%.0f p50_us=%d p99_us=%d max_us=%d errors=%d status_errors=%d\n",
		summary.requests, fetches, summary.requests / summary.duration * 1e6,
		fetches / summary.duration * 1e6,
		latency:percentile(50), latency:percentile(99), latency.max,
		e.connect + e.read + e.write + e.timeout, e.status))
end
