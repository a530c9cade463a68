/*
 * import.c -- CSV records to typed rows of people and phones (import.h).
 *
 * Pure: the header is matched to the known columns, each cell is checked
 * for its form only (digits, MAC, yes/no, printable text within its
 * length), and the first problem is reported with its line and column.
 * Keys (is this sip_user already used?) are the service's business.
 */
#include "import.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"
#include "vendor.h"
#include "world.h"

const char *const import_col_names[IMP_NCOLS] = {
	[IMP_EXTENSION] = "extension",
	[IMP_DISPLAY_NAME] = "display_name",
	[IMP_LABEL] = "label",
	[IMP_SIP_USER] = "sip_user",
	[IMP_SIP_PASSWORD] = "sip_password",
	[IMP_SECRET_CODE] = "secret_code",
	[IMP_ALLOW_VIRT] = "allow_virtualization",
	[IMP_MAC] = "mac",
	[IMP_PROFILE] = "profile",
	[IMP_MODEL] = "model",
	[IMP_PARKING_USER] = "parking_user",
	[IMP_PARKING_PASSWORD] = "parking_password",
};

/* Longest value of each column, as the admin API allows. */
static const size_t col_max[IMP_NCOLS] = {
	[IMP_EXTENSION] = 16, [IMP_DISPLAY_NAME] = 128, [IMP_LABEL] = 64,
	[IMP_SIP_USER] = 128, [IMP_SIP_PASSWORD] = 128, [IMP_SECRET_CODE] = 32,
	[IMP_ALLOW_VIRT] = 8, [IMP_MAC] = 17, [IMP_PROFILE] = 32, [IMP_MODEL] = 32,
	[IMP_PARKING_USER] = 128, [IMP_PARKING_PASSWORD] = 128,
};

/* Columns whose "-" clears the value. */
static bool
clearable(enum import_col c)
{
	return c == IMP_LABEL || c == IMP_MODEL || c == IMP_PARKING_USER ||
	       c == IMP_PARKING_PASSWORD;
}

void
import_cell_error(const struct import_row *r, enum import_col col, const char *msg, char *err,
                  size_t errlen)
{
	/* cut to fit, the position stays in front */
	if (r->col_of[col] > 0)
		hd_seterr(err, errlen, "line %d, column %d (%s): %s", r->line, r->col_of[col],
		          import_col_names[col], msg);
	else
		hd_seterr(err, errlen, "line %d (%s, no such column): %s", r->line,
		          import_col_names[col], msg);
}

static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* Printable ASCII without spaces (user names, passwords, profiles). */
static bool
token_text(const char *s)
{
	for (; *s; s++)
		if (!isgraph((unsigned char)*s))
			return false;
	return true;
}

/* No control characters (UTF-8 text of names). */
static bool
plain_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int
yes_no(const char *s)
{
	static const char *const yes[] = { "yes", "true", "1", "y" };
	static const char *const no[] = { "no", "false", "0", "n" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* Checks one non-empty cell; 0 or -1 with err. */
static int
check_cell(struct import_row *r, enum import_col c, const char *v, char *err, size_t errlen)
{
	const char *msg = NULL;

	if (strlen(v) > col_max[c])
		msg = "too long";
	else if (clearable(c) && strcmp(v, "-") == 0)
		return 0;
	else switch (c) {
	case IMP_EXTENSION:
		if (!all_digits(v))
			msg = "must be digits";
		break;
	case IMP_SECRET_CODE:
		if (!all_digits(v))
			msg = "must be digits";
		break;
	case IMP_DISPLAY_NAME:
	case IMP_LABEL:
		if (!plain_text(v))
			msg = "has control characters";
		break;
	case IMP_ALLOW_VIRT:
		if ((r->allow_virt = yes_no(v)) < 0)
			msg = "must be yes or no";
		break;
	case IMP_MAC:
		if (hd_mac_normalize(v, r->mac) != 0)
			msg = "not a MAC address (12 hex digits)";
		break;
	case IMP_PROFILE:
		if (vendor_profile_by_name(v) == NULL)
			msg = "unknown vendor profile";
		break;
	default:
		if (!token_text(v))
			msg = "must be printable ASCII without spaces";
		break;
	}
	if (msg != NULL) {
		import_cell_error(r, c, msg, err, errlen);
		return -1;
	}
	return 0;
}

static int
map_header(const struct csv_record *h, int col_of[IMP_NCOLS], int idx[CSV_MAX_FIELDS],
           char *err, size_t errlen)
{
	memset(col_of, 0, IMP_NCOLS * sizeof(int));
	for (int i = 0; i < h->n; i++) {
		const char *name = h->fields[i];
		int c;

		while (*name == ' ')
			name++;
		for (c = 0; c < IMP_NCOLS; c++) {
			size_t n = strlen(import_col_names[c]);

			if (strncasecmp(name, import_col_names[c], n) == 0 &&
			    strspn(name + n, " ") == strlen(name + n))
				break;
		}
		if (c == IMP_NCOLS) {
			hd_seterr(err, errlen, "line %d, column %d: unknown column (known: extension, "
			          "display_name, label, sip_user, sip_password, secret_code, "
			          "allow_virtualization, mac, profile, model, parking_user, "
			          "parking_password)", h->line, i + 1);
			return -1;
		}
		if (col_of[c] != 0) {
			hd_seterr(err, errlen, "line %d, column %d: column %s given twice", h->line, i + 1,
			          import_col_names[c]);
			return -1;
		}
		col_of[c] = i + 1;
		idx[i] = c;
	}
	if (col_of[IMP_EXTENSION] == 0 && col_of[IMP_MAC] == 0) {
		hd_seterr(err, errlen, "line %d: a column extension or mac is required", h->line);
		return -1;
	}
	return 0;
}

int
import_rows_from_csv(const struct csv *c, size_t max_rows, struct import_rows *out,
                     char *err, size_t errlen)
{
	int idx[CSV_MAX_FIELDS];

	memset(out, 0, sizeof(*out));
	if (c->n == 0) {
		hd_seterr(err, errlen, "line 1: empty file (a header line is required)");
		return -1;
	}
	if (map_header(&c->rec[0], out->col_of, idx, err, errlen) != 0)
		return -1;
	if (max_rows > 0 && c->n - 1 > max_rows) {
		hd_seterr(err, errlen, "line %d: more than %zu rows", c->rec[max_rows + 1].line,
		          max_rows);
		return -1;
	}
	if (c->n > 1 && (out->v = calloc(c->n - 1, sizeof(*out->v))) == NULL) {
		hd_seterr(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 1; i < c->n; i++) {
		const struct csv_record *rec = &c->rec[i];
		struct import_row *r = &out->v[out->n++];

		r->line = rec->line;
		r->allow_virt = -1;
		memcpy(r->col_of, out->col_of, sizeof(r->col_of));
		if (rec->n != c->rec[0].n) {
			hd_seterr(err, errlen, "line %d, column %d: %d fields where the header has %d",
			          rec->line, (rec->n < c->rec[0].n ? rec->n : c->rec[0].n) + 1, rec->n,
			          c->rec[0].n);
			goto fail;
		}
		for (int f = 0; f < rec->n; f++) {
			const char *v = rec->fields[f];

			if (v[0] == '\0')
				continue;
			if (check_cell(r, idx[f], v, err, errlen) != 0)
				goto fail;
			r->cell[idx[f]] = clearable(idx[f]) && strcmp(v, "-") == 0 ? "" : v;
		}
		if (r->cell[IMP_EXTENSION] == NULL && r->cell[IMP_MAC] == NULL) {
			hd_seterr(err, errlen, "line %d: neither extension nor mac given", rec->line);
			goto fail;
		}
		if (r->cell[IMP_MAC] == NULL) {
			for (int k = IMP_PROFILE; k <= IMP_PARKING_PASSWORD; k++)
				if (r->cell[k] != NULL) {
					import_cell_error(r, k, "a phone column needs a mac", err, errlen);
					goto fail;
				}
		}
		if (r->cell[IMP_EXTENSION] == NULL) {
			for (int k = IMP_DISPLAY_NAME; k <= IMP_ALLOW_VIRT; k++)
				if (r->cell[k] != NULL) {
					import_cell_error(r, k, "an extension column needs an extension",
					                  err, errlen);
					goto fail;
				}
		}
	}
	return 0;
fail:
	import_rows_free(out);
	return -1;
}

void
import_rows_free(struct import_rows *r)
{
	if (r == NULL)
		return;
	free(r->v);
	memset(r, 0, sizeof(*r));
}
