/*
 * log.h -- levelled logging to stderr or syslog (facility daemon).
 *
 * The edges of hotdeskd (main, HTTP handlers, the service layer) log; the
 * pure core never does, it returns errors in caller buffers instead.
 *
 * Every message is formatted into one buffer and emitted with one write(2)
 * (or one syslog(3) call), so lines from concurrent threads never
 * interleave.  A message longer than LOG_MSG_MAX is cut and ends in "...".
 * Control characters that reach a message are replaced by '?', as a last
 * line of defence against forged log lines; strings that come from clients
 * (names, user agents, paths) must still go through log_sanitize() first so
 * that they are shown escaped rather than mangled.
 *
 * Secrets (codes, passwords, tokens) are never passed to these functions.
 *
 * When stderr is the systemd journal ($JOURNAL_STREAM names it), lines go
 * without the timestamp and ident, with a "<N>" priority prefix instead,
 * since the journal records those itself.
 *
 * Before log_init() is called, messages at info and above go to stderr
 * under the ident "hotdeskd".  Every log function preserves errno.
 */
#ifndef HD_LOG_H
#define HD_LOG_H

#include <stdbool.h>
#include <stddef.h>

/* Levels, in increasing severity.  (Not LOG_DEBUG etc.: syslog.h owns those.) */
enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO = 1,
	LOG_LEVEL_WARN = 2,
	LOG_LEVEL_ERROR = 3,
};

/* Longest message body emitted, in bytes, before the "..." marker. */
#define LOG_MSG_MAX 2048

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/*
 * Sets the ident (copied; cut at 63 bytes), the minimum level emitted and
 * the destination.  With use_syslog, opens syslog with LOG_PID and facility
 * LOG_DAEMON; otherwise writes to stderr.  Call it before starting threads
 * (it may be called again later, e.g. on reload, only while no other thread
 * logs).  A level out of range is clamped.  Cannot fail.
 */
void log_init(const char *ident, int level, bool use_syslog);

/* Changes the minimum level; safe to call while other threads log. */
void log_set_level(int level);
int log_get_level(void);

/* The access log of phones' downloads ([log] access): off by default;
 * safe to change while other threads log. */
void log_set_access(bool on);
bool log_access_enabled(void);
/* One access log line at level info, emitted whatever the level when the
 * access log is on, dropped when it is off. */
void log_access(const char *fmt, ...) LOG_PRINTF(1, 2);

/* "debug", "info", "warn" or "error" to its level (case-insensitive);
 * "warning" is accepted for warn.  -1 if unknown or NULL. */
int log_level_parse(const char *s);
/* The name of a level; "?" if out of range. */
const char *log_level_name(int level);

void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);
/* log_warn with ": <strerror(errno)>" appended (errno as on entry). */
void log_warn_errno(const char *fmt, ...) LOG_PRINTF(1, 2);
/* log_error with ": <strerror(errno)>" appended (errno as on entry). */
void log_error_errno(const char *fmt, ...) LOG_PRINTF(1, 2);

/*
 * Log at error level and exit(1).  For start-up failures and broken
 * invariants only.
 */
void fatal(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));
/* fatal with ": <strerror(errno)>" appended. */
void fatal_errno(const char *fmt, ...) LOG_PRINTF(1, 2) __attribute__((noreturn));

/*
 * Copies a client-supplied string into out for logging: printable ASCII
 * (0x20-0x7e) is kept, a backslash becomes "\\", every other byte
 * (control characters, DEL, anything >= 0x80) becomes "\xNN" (lowercase
 * hex).  If the escaped form does not fit in outlen - 1 bytes it is cut
 * on an escape boundary and ends in "...".  in == NULL gives "(null)".
 * out is always NUL-terminated when outlen > 0.  Returns out, so the call
 * can be an argument of a log call.  Cannot fail; thread-safe (no state).
 */
char *log_sanitize(const char *in, char *out, size_t outlen);

#endif
