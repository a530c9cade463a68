/*
 * test_log.c -- log_sanitize, level names, and the stderr line format.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <sys/stat.h>

#include "log.h"
#include "testutil.h"

Test(log, sanitize_plain)
{
	char out[64];

	cr_assert_str_eq(log_sanitize("alice-01 Desk", out, sizeof(out)), "alice-01 Desk");
	cr_assert_str_eq(log_sanitize("", out, sizeof(out)), "");
	cr_assert_str_eq(log_sanitize(NULL, out, sizeof(out)), "(null)");
	/* returns out, for use as a log argument */
	cr_assert_eq(log_sanitize("x", out, sizeof(out)), out);
}

Test(log, sanitize_escapes)
{
	char out[128];

	cr_assert_str_eq(log_sanitize("a\nb", out, sizeof(out)), "a\\x0ab");
	cr_assert_str_eq(log_sanitize("\r\t\x1b[31m", out, sizeof(out)), "\\x0d\\x09\\x1b[31m");
	cr_assert_str_eq(log_sanitize("del\x7f", out, sizeof(out)), "del\\x7f");
	/* UTF-8 and other high bytes are escaped byte by byte */
	cr_assert_str_eq(log_sanitize("caf\xc3\xa9", out, sizeof(out)), "caf\\xc3\\xa9");
	/* a literal backslash is doubled so an escape cannot be forged */
	cr_assert_str_eq(log_sanitize("\\x0a", out, sizeof(out)), "\\\\x0a");
	/* a forged log line stays on one line */
	log_sanitize("bob\n2025-01-01T00:00:00Z hotdeskd[1]: info: fake", out, sizeof(out));
	cr_assert_null(strchr(out, '\n'));
}

Test(log, sanitize_truncates)
{
	char out[8];

	/* fits exactly: 7 characters */
	cr_assert_str_eq(log_sanitize("abcdefg", out, sizeof(out)), "abcdefg");
	/* one more: cut with "..." */
	cr_assert_str_eq(log_sanitize("abcdefgh", out, sizeof(out)), "abcd...");
	/* never cut inside an escape: "ab" + "\x0a" does not fit before "..." */
	cr_assert_str_eq(log_sanitize("ab\ncdefgh", out, sizeof(out)), "ab...");
	cr_assert_str_eq(log_sanitize("a\\bcdefgh", out, sizeof(out)), "a\\\\b...");
	/* an escaped string that fits exactly is not cut */
	cr_assert_str_eq(log_sanitize("a\n", out, 6), "a\\x0a");
	cr_assert_str_eq(log_sanitize("a\nb", out, 6), "a...");
}

Test(log, sanitize_tiny_buffers)
{
	char out[4] = "zzz";

	cr_assert_str_eq(log_sanitize("abc", out, 4), "abc");
	cr_assert_str_eq(log_sanitize("abcd", out, 4), "...");
	cr_assert_str_eq(log_sanitize("abcd", out, 3), "..");
	cr_assert_str_eq(log_sanitize("abcd", out, 1), "");
	out[0] = 'q';
	log_sanitize("abcd", out, 0); /* writes nothing */
	cr_assert_eq(out[0], 'q');
}

Test(log, sanitize_long_input)
{
	char in[5000], out[256];

	memset(in, '\x01', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	log_sanitize(in, out, sizeof(out));
	cr_assert_lt(strlen(out), sizeof(out));
	cr_assert_eq(strcmp(out + strlen(out) - 3, "..."), 0);
	/* whole escapes only: 252 bytes of room before "..." = 63 escapes */
	cr_assert_eq(strlen(out), 63 * 4 + 3);
}

Test(log, level_parse_and_names)
{
	cr_assert_eq(log_level_parse("debug"), LOG_LEVEL_DEBUG);
	cr_assert_eq(log_level_parse("info"), LOG_LEVEL_INFO);
	cr_assert_eq(log_level_parse("warn"), LOG_LEVEL_WARN);
	cr_assert_eq(log_level_parse("warning"), LOG_LEVEL_WARN);
	cr_assert_eq(log_level_parse("ERROR"), LOG_LEVEL_ERROR);
	cr_assert_eq(log_level_parse("loud"), -1);
	cr_assert_eq(log_level_parse(""), -1);
	cr_assert_eq(log_level_parse(NULL), -1);
	cr_assert_str_eq(log_level_name(LOG_LEVEL_WARN), "warn");
	cr_assert_str_eq(log_level_name(42), "?");
	for (int l = LOG_LEVEL_DEBUG; l <= LOG_LEVEL_ERROR; l++)
		cr_assert_eq(log_level_parse(log_level_name(l)), l);
}

#define capture_stderr tu_capture_stderr
#define captured tu_captured

Test(log, stderr_format_and_levels)
{
	int fd = capture_stderr();
	regex_t re;

	log_init("hdtest", LOG_LEVEL_INFO, false);
	log_debug("hidden %d", 1);
	log_info("shown %d", 2);
	log_set_level(LOG_LEVEL_ERROR);
	cr_assert_eq(log_get_level(), LOG_LEVEL_ERROR);
	log_warn("hidden too");
	log_error("bad %s", "thing");
	const char *out = captured(fd);
	cr_assert_null(strstr(out, "hidden"), "%s", out);
	cr_assert_eq(regcomp(&re,
	                     "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	                     "hdtest\\[[0-9]+\\]: info: shown 2\n"
	                     "[0-9T:.-]+Z hdtest\\[[0-9]+\\]: error: bad thing\n$",
	                     REG_EXTENDED),
	             0);
	cr_assert_eq(regexec(&re, out, 0, NULL, 0), 0, "unexpected log output: %s", out);
	regfree(&re);
}

Test(log, errno_variant_and_preservation)
{
	int fd = capture_stderr();

	log_init("hdtest", LOG_LEVEL_DEBUG, false);
	errno = ENOENT;
	log_warn_errno("open %s", "x.db");
	cr_assert_eq(errno, ENOENT, "logging must preserve errno");
	const char *out = captured(fd);
	cr_assert_not_null(strstr(out, "warn: open x.db: No such file or directory\n"), "%s", out);
}

Test(log, control_characters_never_reach_the_line)
{
	int fd = capture_stderr();

	log_init("hdtest", LOG_LEVEL_DEBUG, false);
	log_info("a\nb\rc\x1b");
	const char *out = captured(fd);
	cr_assert_not_null(strstr(out, "info: a?b?c?\n"), "%s", out);
}

Test(log, long_message_is_cut_in_one_line)
{
	static char big[LOG_MSG_MAX * 2];
	int fd = capture_stderr();

	memset(big, 'm', sizeof(big) - 1);
	log_init("hdtest", LOG_LEVEL_DEBUG, false);
	log_info("%s", big);
	const char *out = captured(fd);
	const char *nl = strchr(out, '\n');
	cr_assert_not_null(nl);
	cr_assert_eq(nl[1], '\0', "one line only");
	cr_assert_eq(strncmp(nl - 3, "...", 3), 0);
	cr_assert_eq(strspn(strstr(out, "info: ") + 6, "m"), LOG_MSG_MAX);
}

Test(log, fatal_exits_1, .exit_code = 1)
{
	capture_stderr();
	fatal("cannot go on: %d", 7);
}

Test(log, access_lines_only_when_on_whatever_the_level)
{
	int fd = capture_stderr();

	log_init("hdtest", LOG_LEVEL_ERROR, false);
	log_set_access(false);
	log_access("access: first");
	cr_assert(!log_access_enabled());
	log_set_access(true);
	cr_assert(log_access_enabled());
	log_access("access: second");
	log_info("not at error level");
	log_set_access(false);
	const char *out = captured(fd);
	cr_assert_null(strstr(out, "first"), "%s", out);
	cr_assert_null(strstr(out, "not at error level"), "%s", out);
	cr_assert_not_null(strstr(out, "]: info: access: second\n"), "%s", out);
}

Test(log, journal_lines_carry_a_priority_and_no_timestamp)
{
	int fd = capture_stderr();
	struct stat st;
	char js[64];

	cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("hdtest", LOG_LEVEL_INFO, false);
	log_warn("w %d", 1);
	log_info("i %d", 2);
	log_error("e %d", 3);
	unsetenv("JOURNAL_STREAM");
	log_init("hdtest", LOG_LEVEL_INFO, false);
	log_info("back to stderr");
	const char *out = captured(fd);
	cr_assert_not_null(strstr(out, "<4>warn: w 1\n<6>info: i 2\n<3>error: e 3\n"), "%s", out);
	cr_assert_not_null(strstr(out, "Z hdtest["), "%s", out);
}

Test(log, another_stream_is_not_the_journal)
{
	int fd = capture_stderr();

	setenv("JOURNAL_STREAM", "1:1", 1);
	log_init("hdtest", LOG_LEVEL_INFO, false);
	log_info("plain");
	unsetenv("JOURNAL_STREAM");
	const char *out = captured(fd);
	cr_assert_not_null(strstr(out, "Z hdtest["), "%s", out);
	cr_assert_null(strstr(out, "<6>"), "%s", out);
}
