/*
 * priv.c -- the switch from root to [server] user (contract in priv.h).
 *
 * States: OFF (not root, or root without a user), WORKING (effective ids
 * are the user's, real/saved root), BINDING (effective root again, between
 * priv_bind_begin and priv_bind_end), DROPPED (all ids the user's).
 */
#include "priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "errbuf.h"

static enum { PRIV_OFF, PRIV_WORKING, PRIV_BINDING, PRIV_DROPPED } state = PRIV_OFF;
static bool root_without_user;
static uid_t user_uid;
static gid_t user_gid;
static char user_name[64];

int
priv_init(const char *user, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int rc;

	root_without_user = geteuid() == 0 && (user == NULL || user[0] == '\0');
	if (user == NULL || user[0] == '\0')
		return 0;
	rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (res == NULL) {
		hd_seterr(err, errlen, "[server] user %s: %s", user,
		          rc != 0 ? strerror(rc) : "no such user");
		return -1;
	}
	if (geteuid() != 0) {
		if (pw.pw_uid == geteuid())
			return 0; /* already that user (systemd User=) */
		hd_seterr(err, errlen, "[server] user %s: not started as root, cannot switch", user);
		return -1;
	}
	if (pw.pw_uid == 0) {
		hd_seterr(err, errlen, "[server] user %s: is root", user);
		return -1;
	}
	if ((size_t)snprintf(user_name, sizeof(user_name), "%s", user) >= sizeof(user_name)) {
		hd_seterr(err, errlen, "[server] user: name too long");
		return -1;
	}
	user_uid = pw.pw_uid;
	user_gid = pw.pw_gid;
	if (setegid(user_gid) != 0 || seteuid(user_uid) != 0) {
		hd_seterr(err, errlen, "[server] user %s: %s", user, strerror(errno));
		return -1;
	}
	state = PRIV_WORKING;
	return 0;
}

bool
priv_is_root_without_user(void)
{
	return root_without_user;
}

void
priv_bind_begin(void)
{
	if (state == PRIV_WORKING && seteuid(0) == 0)
		state = PRIV_BINDING;
}

void
priv_bind_end(void)
{
	/* cannot fail: the saved uid is root, and user_uid is the real target */
	if (state == PRIV_BINDING && seteuid(user_uid) == 0)
		state = PRIV_WORKING;
}

int
priv_drop(char *err, size_t errlen)
{
	if (state == PRIV_OFF)
		return 0;
	if ((state == PRIV_WORKING && seteuid(0) != 0) ||
	    initgroups(user_name, user_gid) != 0 || setresgid(user_gid, user_gid, user_gid) != 0 ||
	    setresuid(user_uid, user_uid, user_uid) != 0) {
		hd_seterr(err, errlen, "cannot switch to user %s: %s", user_name, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || seteuid(0) == 0) {
		hd_seterr(err, errlen, "root could be regained after switching to %s", user_name);
		return -1;
	}
	state = PRIV_DROPPED;
	return 0;
}
