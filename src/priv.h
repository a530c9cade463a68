/*
 * priv.h -- running as an unprivileged account when started as root
 * ([server] user).
 *
 * Started as root with a user configured, hotdeskd works as that user
 * from the start: priv_init switches the effective uid and gid (real and
 * saved stay root), so every file it creates (the database, the TFTP root,
 * phone logs) belongs to the user.  Root's effective ids come back only
 * around the binding of its sockets (priv_bind_begin/priv_bind_end, for
 * ports below 1024), then priv_drop gives root up for good: real,
 * effective and saved ids and the supplementary groups become the user's
 * (a later setuid(0) fails, which priv_drop checks).
 *
 * Not started as root: nothing changes; a configured user must then be
 * the current one (under systemd, User= is the same account), otherwise
 * priv_init refuses to start.  Process-wide state; call from the main
 * thread (glibc applies set*id calls to every thread).
 */
#ifndef HD_PRIV_H
#define HD_PRIV_H

#include <stdbool.h>
#include <stddef.h>

/* user: account name, or NULL.  0, or -1 with err (unknown user, a
 * configured user that is not the current one without root, a failed
 * switch). */
int priv_init(const char *user, char *err, size_t errlen);
/* Whether the process runs as root with no user to switch to. */
bool priv_is_root_without_user(void);
/* Root's effective ids around a bind; no-ops unless switching. */
void priv_bind_begin(void);
void priv_bind_end(void);
/* Gives root up for good (no-op unless switching).  0, or -1 with err:
 * the caller must then stop. */
int priv_drop(char *err, size_t errlen);

#endif
