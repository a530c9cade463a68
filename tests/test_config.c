/*
 * test_config.c -- the INI configuration: defaults, every error path with
 * its file:line, environment overrides, [pbx] networks matching.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "log.h"
#include "testutil.h"
#include "vendor.h"

#define TOKEN "0123456789abcdefXYZ"
#define PBX "[pbx]\ntoken = " TOKEN "\n"

static void
clear_env(void)
{
	unsetenv("HOTDESKD_PBX_TOKEN");
	unsetenv("HOTDESKD_ADMIN_TOKEN");
}

TestSuite(config, .init = clear_env);

/* Writes text to a new temporary file; returns its path (static buffer). */
static const char *
write_tmp(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	cr_assert_lt((size_t)snprintf(path, sizeof(path), "/tmp/hotdeskd-cfg-XXXXXX"), sizeof(path));
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, true);
	cr_assert_eq(fclose(f), 0);
	return path;
}

/* Loads text through a real file and expects failure with exactly
 * "<file><suffix>" as the message. */
static void
expect_error(const char *text, const char *suffix)
{
	char err[512], want[600];
	const char *path = write_tmp(text);
	struct hd_config *cfg = cfg_load(path, err, sizeof(err));

	cr_assert_null(cfg, "expected failure for:\n%s", text);
	cr_assert_lt((size_t)snprintf(want, sizeof(want), "%s%s", path, suffix), sizeof(want));
	cr_assert_str_eq(err, want);
	unlink(path);
}

static struct hd_config *
load_ok(const char *text)
{
	char err[512] = "";
	struct hd_config *cfg = cfg_load_string("t.ini", text, err, sizeof(err));

	cr_assert_not_null(cfg, "unexpected error: %s", err);
	return cfg;
}

Test(config, defaults)
{
	char err[256];
	const char *path = write_tmp(PBX);
	struct hd_config *c = cfg_load(path, err, sizeof(err));

	cr_assert_not_null(c, "%s", err);
	cr_assert_str_eq(c->file, path);
	cr_assert_str_eq(c->server.listen, "127.0.0.1");
	cr_assert_eq(c->server.port, 8080);
	cr_assert_null(c->server.port_file);
	cr_assert_eq(c->server.threads, 4);
	cr_assert_eq(c->server.max_body, 65536);
	cr_assert_str_eq(c->database.path, "hotdeskd.db");
	cr_assert_eq(c->log.level, LOG_LEVEL_INFO);
	cr_assert_eq(c->log.syslog, false);
	cr_assert_str_eq(c->pbx.token, TOKEN);
	cr_assert_eq(c->pbx.networks.n, 0);
	cr_assert_null(c->admin.token);
	cr_assert_eq(c->secrets.min_length, 4);
	cr_assert_eq(c->secrets.hash_ops, 4);
	cr_assert_eq(c->secrets.hash_mem_kib, 32768);
	cr_assert_eq(c->secrets.hash_parallel, 0);
	cr_assert_eq(c->secrets.tries_per_call, 3);
	cr_assert_eq(c->secrets.lockout_threshold, 10);
	cr_assert_eq(c->secrets.lockout_window, 900);
	cr_assert_eq(c->secrets.lockout_backoff, 60);
	cr_assert_eq(c->secrets.lockout_backoff_max, 3600);
	cr_assert_str_eq(c->provisioning.prefix, "/provision/");
	cr_assert_str_eq(c->provisioning.templates, "templates");
	cr_assert_str_eq(c->provisioning.static_dir, "provisioning");
	cr_assert_null(c->provisioning.tftp_root);
	cr_assert_str_eq(c->sip.bind, "127.0.0.1:5070");
	cr_assert_null(c->sip.outbound_proxy);
	cr_assert_eq(c->sip.sync_timeout, 60);
	cr_assert_eq(c->sip.sync_retries, 3);
	cr_assert_eq(c->sip.notify_max_pending, 4096);
	cfg_free(c);
	unlink(path);
}

/* The example in docs/CONFIG.md parses, and gives the defaults. */
Test(config, documented_example)
{
	char err[256], *doc = NULL, *start, *end;
	size_t cap = 0;
	ssize_t len;
	FILE *f = fopen("docs/CONFIG.md", "r");

	if (f == NULL)
		cr_skip_test("docs/CONFIG.md not found (run from the source root)");
	len = getdelim(&doc, &cap, '\0', f);
	fclose(f);
	cr_assert_gt(len, 0);
	start = strstr(doc, "```ini\n");
	cr_assert_not_null(start);
	start += 7;
	end = strstr(start, "```");
	cr_assert_not_null(end);
	*end = '\0';
	setenv("HOTDESKD_PBX_TOKEN", TOKEN, 1);
	struct hd_config *c = cfg_load_string("CONFIG.md", start, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	struct hd_config *d = load_ok(PBX);
	char diff[256];
	cr_assert_eq(cfg_restart_needed(c, d, diff, sizeof(diff)), 0, "differs: %s", diff);
	cr_assert_eq(c->secrets.lockout_window, d->secrets.lockout_window);
	cr_assert_eq(c->log.level, d->log.level);
	cfg_free(c);
	cfg_free(d);
	free(doc);
}

Test(config, every_key_set)
{
	struct hd_config *c = load_ok(
	    "; a comment\n"
	    "# another\n"
	    "[server]\n"
	    "listen = ::1\n"
	    "port = 0\n"
	    "port_file = run/port\n"
	    "threads = 16\n"
	    "max_body = 1024\n"
	    "[database]\n"
	    "path = :memory:\n"
	    "[log]\n"
	    "level = debug ; inline comment\n"
	    "syslog = yes\n"
	    "[pbx]\n"
	    "token = " TOKEN "\n"
	    "networks = 10.0.0.0/8, 2001:db8::/32\n"
	    "[admin]\n"
	    "token = adminadminadminadmin\n"
	    "[secrets]\n"
	    "min_length = 6\n"
	    "hash_ops = 3\n"
	    "hash_mem_kib = 8192\n"
	    "hash_parallel = 1\n"
	    "tries_per_call = 5\n"
	    "lockout_threshold = 20\n"
	    "lockout_window = 60\n"
	    "lockout_backoff = 10\n"
	    "lockout_backoff_max = 10\n"
	    "[provisioning]\n"
	    "prefix = /p/v1/\n"
	    "templates = ../tpl\n"
	    "static = /srv/static\n"
	    "tftp_root = /srv/tftp\n"
	    "[sip]\n"
	    "bind = [::1]:0\n"
	    "contact_host = 10.1.2.3\n"
	    "outbound_proxy = 10.0.0.2:5060\n"
	    "sync_timeout = 5\n"
	    "sync_retries = 1\n"
	    "notify_max_pending = 7\n");

	cr_assert_str_eq(c->server.listen, "::1");
	cr_assert_eq(c->server.port, 0);
	cr_assert_str_eq(c->server.port_file, "run/port"); /* relative: kept as written */
	cr_assert_eq(c->server.threads, 16);
	cr_assert_eq(c->server.max_body, 1024);
	cr_assert_str_eq(c->database.path, ":memory:");
	cr_assert_eq(c->log.level, LOG_LEVEL_DEBUG);
	cr_assert(c->log.syslog);
	cr_assert_eq(c->pbx.networks.n, 2);
	cr_assert_str_eq(c->admin.token, "adminadminadminadmin");
	cr_assert_eq(c->secrets.min_length, 6);
	cr_assert_eq(c->secrets.hash_ops, 3);
	cr_assert_eq(c->secrets.hash_mem_kib, 8192);
	cr_assert_eq(c->secrets.hash_parallel, 1);
	cr_assert_eq(c->secrets.tries_per_call, 5);
	cr_assert_eq(c->secrets.lockout_threshold, 20);
	cr_assert_eq(c->secrets.lockout_window, 60);
	cr_assert_eq(c->secrets.lockout_backoff, 10);
	cr_assert_eq(c->secrets.lockout_backoff_max, 10);
	cr_assert_str_eq(c->provisioning.prefix, "/p/v1/");
	cr_assert_str_eq(c->provisioning.templates, "../tpl");
	cr_assert_str_eq(c->provisioning.static_dir, "/srv/static");
	cr_assert_str_eq(c->provisioning.tftp_root, "/srv/tftp");
	cr_assert_str_eq(c->sip.bind, "[::1]:0");
	cr_assert_str_eq(c->sip.outbound_proxy, "10.0.0.2:5060");
	cr_assert_str_eq(c->sip.contact_host, "10.1.2.3");
	cr_assert_eq(c->sip.sync_timeout, 5);
	cr_assert_eq(c->sip.sync_retries, 1);
	cr_assert_eq(c->sip.notify_max_pending, 7);
	cfg_free(c);
}

Test(config, lenient_syntax)
{
	/* indented keys, CRLF, a byte order mark, booleans in any case */
	struct hd_config *c = load_ok("\xEF\xBB\xBF[log]\r\n"
	                              "    level = WARN\r\n"
	                              "\tsyslog = Off\r\n"
	                              "  [pbx]\r\n"
	                              "  token = " TOKEN "\r\n");
	cr_assert_eq(c->log.level, LOG_LEVEL_WARN);
	cr_assert_not(c->log.syslog);
	cr_assert_str_eq(c->pbx.token, TOKEN);
	cfg_free(c);
}

Test(config, empty_optional_values)
{
	struct hd_config *c = load_ok(PBX "[server]\nport_file =\n[sip]\noutbound_proxy =\n");
	cr_assert_null(c->server.port_file);
	cr_assert_null(c->sip.outbound_proxy);
	cfg_free(c);
}

Test(config, missing_file)
{
	char err[256];

	cr_assert_null(cfg_load("/nonexistent/hotdeskd.ini", err, sizeof(err)));
	cr_assert_str_eq(err, "/nonexistent/hotdeskd.ini: cannot open: No such file or directory");
}

Test(config, errors_on_a_line)
{
	expect_error(PBX "[bogus]\n", ":3: unknown section [bogus]");
	expect_error("[server]\nport = 1\n[pbx\ntoken = x\n",
	             ":3: syntax error (expected [section] or name = value)");
	expect_error(PBX "[server]\njust words\n",
	             ":4: syntax error (expected [section] or name = value)");
	expect_error("port = 80\n" PBX, ":1: key 'port' is outside any section");
	expect_error(PBX "[server]\nlisten = 127.0.0.1\ncolour = blue\n",
	             ":5: unknown key 'colour' in [server]");
	expect_error(PBX "[server]\nport = 80\nport = 81\n",
	             ":5: [server] port is set twice (first on line 4)");
	expect_error(PBX "[server]\nport = eighty\n", ":4: [server] port: not a number: 'eighty'");
	expect_error(PBX "[server]\nport = 80x\n", ":4: [server] port: not a number: '80x'");
	expect_error(PBX "[server]\nport = +80\n", ":4: [server] port: not a number: '+80'");
	expect_error(PBX "[server]\nport =\n", ":4: [server] port: not a number: ''");
	expect_error(PBX "[server]\nport = 65536\n",
	             ":4: [server] port: 65536 is out of range (0..65535)");
	expect_error(PBX "[server]\nport = -1\n", ":4: [server] port: -1 is out of range (0..65535)");
	expect_error(PBX "[server]\nthreads = 99999999999999999999\n",
	             ":4: [server] threads: 99999999999999999999 is out of range (1..1024)");
	expect_error(PBX "[secrets]\nmin_length = 0\n",
	             ":4: [secrets] min_length: 0 is out of range (1..32)");
	expect_error(PBX "[secrets]\nhash_parallel = -1\n",
	             ":4: [secrets] hash_parallel: -1 is out of range (0..1024)");
	expect_error(PBX "[log]\nsyslog = maybe\n",
	             ":4: [log] syslog: expected true or false, got 'maybe'");
	expect_error(PBX "[log]\nlevel = loud\n",
	             ":4: [log] level: unknown level 'loud' (debug, info, warn, error)");
	expect_error("[pbx]\nnetworks = 10.0.0.0/33\ntoken = " TOKEN "\n",
	             ":2: [pbx] networks: bad CIDR '10.0.0.0/33'");
	expect_error(PBX "networks = 10.0.0.1/8\n",
	             ":3: [pbx] networks: bad CIDR '10.0.0.1/8' (host bits set)");
	expect_error(PBX "networks = 10.0.0.0/8, fe80::/129\n",
	             ":3: [pbx] networks: bad CIDR 'fe80::/129'");
	expect_error(PBX "networks = 300.0.0.0/8\n", ":3: [pbx] networks: bad CIDR '300.0.0.0/8'");
	expect_error(PBX "networks = 10.0.0.0/\n", ":3: [pbx] networks: bad CIDR '10.0.0.0/'");
	expect_error(PBX "networks = 10.0.0.0/8x\n", ":3: [pbx] networks: bad CIDR '10.0.0.0/8x'");
	expect_error(PBX "[server]\nlisten = localhost\n",
	             ":4: [server] listen: not an IP address: 'localhost'");
	expect_error(PBX "[database]\npath =\n", ":4: [database] path: a value is required");
	expect_error(PBX "[provisioning]\nprefix = provision\n",
	             ":4: [provisioning] prefix: must start and end with '/'");
	expect_error(PBX "[provisioning]\nprefix = /a/../b/\n",
	             ":4: [provisioning] prefix: must be a plain URL path "
	             "(letters, digits, - . _ ~ and single '/')");
	expect_error(PBX "[sip]\nbind = 127.0.0.1\n",
	             ":4: [sip] bind: expected ip:port or [ipv6]:port, got '127.0.0.1'");
	expect_error(PBX "[sip]\nbind = host.example:5060\n",
	             ":4: [sip] bind: expected ip:port or [ipv6]:port, got 'host.example:5060'");
	expect_error(PBX "[sip]\nbind = 127.0.0.1:70000\n",
	             ":4: [sip] bind: expected ip:port or [ipv6]:port, got '127.0.0.1:70000'");
	expect_error(PBX "[sip]\noutbound_proxy = pbx.example.com\n",
	             ":4: [sip] outbound_proxy: expected host:port, got 'pbx.example.com'");
	/* control characters in a value are shown escaped */
	expect_error(PBX "[log]\nlevel = \x1b[2J\n",
	             ":4: [log] level: unknown level '\\x1b[2J' (debug, info, warn, error)");
}

Test(config, first_error_wins)
{
	expect_error(PBX "[server]\nport = x\nthreads = y\n[nope]\n",
	             ":4: [server] port: not a number: 'x'");
	/* a syntax error before a value error is the one reported */
	expect_error(PBX "oops\n[server]\nport = x\n",
	             ":3: syntax error (expected [section] or name = value)");
}

Test(config, line_too_long)
{
	char text[400];
	int n = snprintf(text, sizeof(text), PBX "networks = 10.0.0.0/8");

	cr_assert_lt((size_t)n, sizeof(text));
	while (strlen(text) < 260)
		strcat(text, ", 10.0.0.0/8");
	strcat(text, "\n");
	expect_error(text, ":3: line too long (more than 197 characters)");
}

Test(config, validation_after_parse)
{
	expect_error("[server]\nport = 1\n", ": [pbx] token is required");
	expect_error("[pbx]\ntoken =\n", ": [pbx] token is required");
	expect_error("[pbx]\ntoken = short\n", ": [pbx] token must be at least 16 characters");
	expect_error("[pbx]\ntoken = has a space inside it\n",
	             ": [pbx] token must be printable ASCII without spaces");
	expect_error(PBX "[admin]\ntoken = 123\n", ": [admin] token must be at least 16 characters");
	expect_error(PBX "[secrets]\nlockout_backoff = 100\nlockout_backoff_max = 50\n",
	             ": [secrets] lockout_backoff_max (50) is less than lockout_backoff (100)");
}

Test(config, errors_never_show_tokens)
{
	char err[256];

	cr_assert_null(cfg_load_string("t.ini", "[pbx]\ntoken = sekrit\n", err, sizeof(err)));
	cr_assert_null(strstr(err, "sekrit"), "%s", err);
	cr_assert_null(cfg_load_string("t.ini", "[pbx]\ntoken = " TOKEN "\ntoken = sekrit9999999999999\n",
	                               err, sizeof(err)));
	cr_assert_null(strstr(err, "sekrit"), "%s", err);
	cr_assert_null(strstr(err, TOKEN), "%s", err);
}

Test(config, env_overrides)
{
	struct hd_config *c;
	char err[256];

	setenv("HOTDESKD_PBX_TOKEN", "from-the-environment-1", 1);
	setenv("HOTDESKD_ADMIN_TOKEN", "admin-from-the-environment", 1);
	c = load_ok(PBX "[admin]\ntoken = admin-from-the-file-000\n");
	cr_assert_str_eq(c->pbx.token, "from-the-environment-1");
	cr_assert_str_eq(c->admin.token, "admin-from-the-environment");
	cfg_free(c);

	/* the file may leave the token out entirely */
	c = load_ok("[server]\nport = 9000\n");
	cr_assert_str_eq(c->pbx.token, "from-the-environment-1");
	cfg_free(c);

	/* an override is validated like a file value */
	setenv("HOTDESKD_PBX_TOKEN", "short", 1);
	cr_assert_null(cfg_load_string("t.ini", PBX, err, sizeof(err)));
	cr_assert_str_eq(err, "t.ini: [pbx] token must be at least 16 characters");

	/* empty means unset: the file's value stays */
	setenv("HOTDESKD_PBX_TOKEN", "", 1);
	unsetenv("HOTDESKD_ADMIN_TOKEN");
	c = load_ok(PBX);
	cr_assert_str_eq(c->pbx.token, TOKEN);
	cr_assert_null(c->admin.token);
	cfg_free(c);
}

static struct sockaddr_in
v4(const char *a)
{
	struct sockaddr_in s = {.sin_family = AF_INET, .sin_port = htons(5060)};

	cr_assert_eq(inet_pton(AF_INET, a, &s.sin_addr), 1);
	return s;
}

static struct sockaddr_in6
v6(const char *a)
{
	struct sockaddr_in6 s = {.sin6_family = AF_INET6, .sin6_port = htons(5060)};

	cr_assert_eq(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
	return s;
}

static bool
allows4(const struct hd_config *c, const char *a)
{
	struct sockaddr_in s = v4(a);
	return cfg_net_allows(c, (struct sockaddr *)&s);
}

static bool
allows6(const struct hd_config *c, const char *a)
{
	struct sockaddr_in6 s = v6(a);
	return cfg_net_allows(c, (struct sockaddr *)&s);
}

Test(config, networks_empty_allows_all)
{
	struct hd_config *c = load_ok(PBX "networks =\n");
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	cr_assert(allows4(c, "203.0.113.9"));
	cr_assert(allows6(c, "2001:db8::1"));
	cr_assert(cfg_net_allows(c, (struct sockaddr *)&un));
	cfg_free(c);
}

Test(config, networks_v4)
{
	struct hd_config *c = load_ok(PBX "networks = 10.0.0.0/8,192.168.1.0/24 203.0.113.7\n");
	struct sockaddr_un un = {.sun_family = AF_UNIX};

	cr_assert_eq(c->pbx.networks.n, 3);
	cr_assert(allows4(c, "10.0.0.0"));
	cr_assert(allows4(c, "10.255.255.255"));
	cr_assert_not(allows4(c, "11.0.0.0"));
	cr_assert_not(allows4(c, "9.255.255.255"));
	cr_assert(allows4(c, "192.168.1.200"));
	cr_assert_not(allows4(c, "192.168.2.1"));
	cr_assert(allows4(c, "203.0.113.7"));
	cr_assert_not(allows4(c, "203.0.113.8"));
	/* IPv4-mapped IPv6 (a dual-stack socket) counts as IPv4 */
	cr_assert(allows6(c, "::ffff:10.1.2.3"));
	cr_assert_not(allows6(c, "::ffff:11.1.2.3"));
	/* a native IPv6 address is not in an IPv4 network */
	cr_assert_not(allows6(c, "::a01:203"));
	cr_assert_not(allows6(c, "2001:db8::1"));
	cr_assert_not(cfg_net_allows(c, (struct sockaddr *)&un));
	cr_assert_not(cfg_net_allows(c, NULL));
	cfg_free(c);
}

Test(config, networks_v6_and_odd_prefixes)
{
	struct hd_config *c = load_ok(PBX "networks = 2001:db8:abcd::/48\n"
	                                  "networks = ::1, 172.16.0.0/12\n"
	                                  "networks = 198.51.100.128/25\n");

	cr_assert_eq(c->pbx.networks.n, 4, "repeated lines add to the list");
	cr_assert(allows6(c, "2001:db8:abcd:ffff::1"));
	cr_assert_not(allows6(c, "2001:db8:abce::1"));
	cr_assert(allows6(c, "::1"));
	cr_assert_not(allows6(c, "::2"));
	cr_assert(allows4(c, "172.31.255.255"));
	cr_assert_not(allows4(c, "172.32.0.0"));
	cr_assert(allows4(c, "198.51.100.128"));
	cr_assert_not(allows4(c, "198.51.100.127"));
	cfg_free(c);

	c = load_ok(PBX "networks = 0.0.0.0/0\n");
	cr_assert(allows4(c, "1.2.3.4"));
	cr_assert(allows6(c, "::ffff:1.2.3.4"));
	cr_assert_not(allows6(c, "2001:db8::1"));
	cfg_free(c);

	c = load_ok(PBX "networks = ::/0\n");
	cr_assert(allows4(c, "1.2.3.4"));
	cr_assert(allows6(c, "2001:db8::1"));
	cfg_free(c);

	c = load_ok(PBX "networks = ::ffff:10.0.0.0/104\n");
	cr_assert(allows4(c, "10.9.9.9"));
	cr_assert_not(allows4(c, "11.9.9.9"));
	cfg_free(c);
}

Test(config, restart_needed)
{
	struct hd_config *a = load_ok(PBX);
	struct hd_config *b = load_ok(PBX "networks = 10.0.0.0/8\n[log]\nlevel = debug\n"
	                                  "[secrets]\ntries_per_call = 5\n");
	struct hd_config *c = load_ok(PBX "[server]\nport = 9090\n[sip]\nbind = 127.0.0.1:0\n"
	                                  "outbound_proxy = 10.0.0.1:5060\n");
	char out[128];

	cr_assert_eq(cfg_restart_needed(a, a, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(cfg_restart_needed(a, b, out, sizeof(out)), 0, "all reloadable: %s", out);
	cr_assert_eq(cfg_restart_needed(a, c, out, sizeof(out)), 3);
	cr_assert_str_eq(out, "[server] port, [sip] bind, [sip] outbound_proxy");
	char small[16];
	cr_assert_eq(cfg_restart_needed(a, c, small, sizeof(small)), 3);
	cr_assert_str_eq(small, "[server] por...");
	cfg_free(a);
	cfg_free(b);
	cfg_free(c);
}

Test(config, hostport_parse)
{
	char host[64];
	int port = -1;

	cr_assert_eq(cfg_hostport_parse("127.0.0.1:5070", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 5070);
	cr_assert_eq(cfg_hostport_parse("[2001:db8::1]:0", host, sizeof(host), &port), 0);
	cr_assert_str_eq(host, "2001:db8::1");
	cr_assert_eq(port, 0);
	cr_assert_eq(cfg_hostport_parse("pbx:65535", host, sizeof(host), &port), 0);
	cr_assert_eq(cfg_hostport_parse("pbx:65536", host, sizeof(host), &port), -1);
	cr_assert_eq(cfg_hostport_parse("pbx", host, sizeof(host), &port), -1);
	cr_assert_eq(cfg_hostport_parse("pbx:", host, sizeof(host), &port), -1);
	cr_assert_eq(cfg_hostport_parse(":5060", host, sizeof(host), &port), -1);
	cr_assert_eq(cfg_hostport_parse("2001:db8::1:5060", host, sizeof(host), &port), -1);
	cr_assert_eq(cfg_hostport_parse("[::1]5060", host, sizeof(host), &port), -1);
	cr_assert_eq(cfg_hostport_parse("pbx:50a0", host, sizeof(host), &port), -1);
	cr_assert_eq(cfg_hostport_parse("averyveryverylonghostname:1", host, 8, &port), -1);
	cr_assert_eq(cfg_hostport_parse(NULL, host, sizeof(host), &port), -1);
}

Test(config, free_null)
{
	cfg_free(NULL);
}

/* A snapshot stays whole while any reference is held: the loader's free
 * (a reload dropping the old snapshot) does not free it under a reader. */
Test(config, reference_outlives_the_loaders)
{
	struct hd_config *c = load_ok(PBX "[provisioning]\nprefix = /p/\n");
	struct hd_config *r = cfg_ref(c);

	cr_assert_eq(r, c);
	cr_assert_null(cfg_ref(NULL));
	cfg_free(c);                         /* the daemon's reference, dropped */
	cr_assert_str_eq(r->provisioning.prefix, "/p/");   /* ASan: still valid */
	cr_assert_str_eq(r->pbx.token, TOKEN);
	cfg_free(r);                         /* the last one frees */
	cfg_free(NULL);
}

struct ref_race {
	struct hd_config *cfg;
	int reads;
};

static void *
ref_reader(void *arg)
{
	struct ref_race *rr = arg;

	for (int i = 0; i < 20000; i++) {
		struct hd_config *c = cfg_ref(rr->cfg);

		rr->reads += c->provisioning.prefix[0] == '/';
		cfg_free(c);
	}
	return NULL;
}

/* Readers taking and dropping references on several threads while the
 * owner drops its own: the count never reaches zero early, and the last
 * drop frees (LeakSanitizer sees no leak, ASan no use after free). */
Test(config, references_across_threads)
{
	struct hd_config *c = load_ok(PBX);
	struct ref_race rr[4];
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		rr[i] = (struct ref_race){ cfg_ref(c), 0 };
		cr_assert_eq(pthread_create(&th[i], NULL, ref_reader, &rr[i]), 0);
	}
	cfg_free(c);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pthread_join(th[i], NULL), 0);
		cr_assert_eq(rr[i].reads, 20000);
		cfg_free(rr[i].cfg);
	}
}

/* Listeners: serves lists, TLS needs a certificate and key. */
Test(config, listeners_and_tls)
{
	struct hd_config *c = load_ok(PBX "[server]\nserves = phones, admin\n"
	                              "[listener2]\nlisten = ::1\nport = 8443\ntls = yes\n"
	                              "serves = phones\n[tls]\ncert = /c.pem\nkey = /k.pem\n");

	cr_assert_eq(cfg_serves_mask(c->server.serves), CFG_IF_PHONES | CFG_IF_ADMIN);
	cr_assert_str_eq(c->listeners[0].listen, "::1");
	cr_assert(c->listeners[0].tls);
	cr_assert_null(c->listeners[1].listen);
	cr_assert_eq(c->server.max_connections_per_source, 256);
	cr_assert_eq(c->server.request_timeout, 30);
	cfg_free(c);
	cr_assert_eq(cfg_serves_mask("all"), CFG_IF_ALL);
	cr_assert_eq(cfg_serves_mask("pbx console\tmetrics"),
	             CFG_IF_PBX | CFG_IF_CONSOLE | CFG_IF_METRICS);
	cr_assert_eq(cfg_serves_mask("phones, phone"), 0);
	cr_assert_eq(cfg_serves_mask(""), 0);
	cr_assert_eq(cfg_serves_mask(NULL), 0);
	expect_error(PBX "[server]\nserves = phones, web\n",
	             ":4: [server] serves: expected all or a list of phones, pbx, admin, "
	             "console, metrics, got 'phones, web'");
	expect_error(PBX "[listener3]\nlisten = 10.0.0.300\n",
	             ":4: [listener3] listen: not an IP address: '10.0.0.300'");
	expect_error(PBX "[server]\ntls = true\n[tls]\ncert = /c.pem\n",
	             ": [server] tls needs [tls] cert and key");
	expect_error(PBX "[listener2]\nlisten = 127.0.0.1\ntls = true\n",
	             ": [listener2] tls needs [tls] cert and key");
	/* a TLS listener that is off needs nothing */
	cfg_free(load_ok(PBX "[listener2]\ntls = true\n"));
	/* three listeners at most (docs/CONFIG.md) */
	expect_error(PBX "[listener4]\nlisten = 127.0.0.1\n", ":3: unknown section [listener4]");
	/* session tickets: on unless turned off */
	c = load_ok(PBX);
	cr_assert(c->tls.session_tickets);
	cfg_free(c);
	c = load_ok(PBX "[tls]\nsession_tickets = false\n");
	cr_assert_not(c->tls.session_tickets);
	cfg_free(c);
	/* client CRL files, optional */
	c = load_ok(PBX "[client_crl]\nyealink = /y.crl\n");
	cr_assert_str_eq(c->client_crl.v[vendor_profile_index(vendor_profile_by_name("yealink"))],
	                 "/y.crl");
	cr_assert_null(c->client_crl.v[vendor_profile_index(vendor_profile_by_name("polycom"))]);
	cfg_free(c);
}

/* [notify] and [client_ca] have one key per vendor profile of the registry,
 * whichever families it holds: every profile's name is a key, its value
 * lands in the profile's slot, other names are unknown keys. */
Test(config, one_key_per_vendor_profile)
{
	char text[4096], err[512];
	size_t pos, n = vendor_registry_len;

	cr_assert_leq(n, CFG_PROFILES_MAX, "raise CFG_PROFILES_MAX to %zu", n);
	pos = (size_t)snprintf(text, sizeof(text), PBX "[notify]\n");
	for (size_t i = 0; i < n; i++)
		pos += (size_t)snprintf(text + pos, sizeof(text) - pos, "%s = ev-%zu;x=1\n",
		                        vendor_registry[i]->name, i);
	pos += (size_t)snprintf(text + pos, sizeof(text) - pos, "[client_ca]\n");
	for (size_t i = 0; i < n; i++)
		pos += (size_t)snprintf(text + pos, sizeof(text) - pos, "%s = /ca/%zu.pem\n",
		                        vendor_registry[i]->name, i);
	cr_assert_lt(pos, sizeof(text));

	struct hd_config *c = cfg_load_string("t.ini", text, err, sizeof(err));
	cr_assert_not_null(c, "%s", err);
	for (size_t i = 0; i < n; i++) {
		char want[32];
		snprintf(want, sizeof(want), "ev-%zu;x=1", i);
		cr_assert_str_eq(c->notify.v[i], want, "%s", vendor_registry[i]->name);
		snprintf(want, sizeof(want), "/ca/%zu.pem", i);
		cr_assert_str_eq(c->client_ca.v[i], want, "%s", vendor_registry[i]->name);
	}
	for (size_t i = n; i < CFG_PROFILES_MAX; i++)
		cr_assert_null(c->notify.v[i]);
	cfg_free(c);

	/* defaults: nothing set */
	c = load_ok(PBX);
	for (size_t i = 0; i < CFG_PROFILES_MAX; i++) {
		cr_assert_null(c->notify.v[i]);
		cr_assert_null(c->client_ca.v[i]);
	}
	cfg_free(c);
}

Test(config, per_profile_key_errors)
{
	const char *first = vendor_registry[0]->name;
	char text[256], want[256];

	/* a name that is no profile */
	expect_error(PBX "[notify]\nnokia = check-sync\n", ":4: unknown key 'nokia' in [notify]");
	expect_error(PBX "[client_ca]\nnokia = x.pem\n",
	             ":4: unknown key 'nokia' in [client_ca]");
	/* the same profile twice */
	snprintf(text, sizeof(text), PBX "[notify]\n%s = a\n%s = b\n", first, first);
	snprintf(want, sizeof(want), ":5: [notify] %s is set twice (first on line 4)", first);
	expect_error(text, want);
	/* the value check of the section applies to every profile's key */
	for (size_t i = 0; i < vendor_registry_len; i++) {
		const char *name = vendor_registry[i]->name;
		snprintf(text, sizeof(text), PBX "[notify]\n%s = check sync\n", name);
		snprintf(want, sizeof(want),
		         ":4: [notify] %s: expected an Event value such as check-sync, got "
		         "'check sync'", name);
		expect_error(text, want);
	}
}

Test(config, per_profile_keys_reload)
{
	const char *last = vendor_registry[vendor_registry_len - 1]->name;
	char text[256], out[128];
	struct hd_config *a = load_ok(PBX);

	/* [notify], [client_ca] and [client_crl] take effect on reload */
	snprintf(text, sizeof(text),
	         PBX "[notify]\n%s = other\n[client_ca]\n%s = ca.pem\n[client_crl]\n%s = c.pem\n",
	         last, last, last);
	struct hd_config *b = load_ok(text);
	cr_assert_str_eq(b->client_crl.v[vendor_registry_len - 1], "c.pem");
	cr_assert_eq(cfg_restart_needed(a, b, out, sizeof(out)), 0, "%s", out);
	cfg_free(a);
	cfg_free(b);
}
