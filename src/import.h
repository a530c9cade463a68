/*
 * import.h -- the CSV file of an organization's people and phones (pure).
 *
 * One CSV format is read by POST /api/v1/orgs/{org}/import and written by
 * GET /api/v1/orgs/{org}/export.  The first record names the columns (any
 * order, any case, each at most once); every later record is one row:
 *
 *   extension             the extension number (digits)
 *   display_name, label   the extension's names
 *   sip_user, sip_password  its SIP account
 *   secret_code           digits: sets the code (never exported)
 *   allow_virtualization  yes/no, true/false, 1/0
 *   mac                   the extension's home phone (any MAC spelling)
 *   profile, model        the phone's vendor profile and model
 *   parking_user, parking_password  the phone's parking account
 *
 * A row names an extension, a phone, or both (the phone is then the
 * extension's home device).  An empty cell, or a column that is absent,
 * keeps what is stored; new objects need their required cells (sip_user
 * and sip_password for an extension, profile for a phone).  "-" in label,
 * model or the parking columns clears the value.
 *
 * This module maps the records to typed rows and checks each cell's form,
 * naming line and column; it knows nothing of what is stored (the service
 * decides created / changed / unchanged and checks the keys).
 */
#ifndef HD_IMPORT_H
#define HD_IMPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "csv.h"

enum import_col {
	IMP_EXTENSION, IMP_DISPLAY_NAME, IMP_LABEL, IMP_SIP_USER, IMP_SIP_PASSWORD,
	IMP_SECRET_CODE, IMP_ALLOW_VIRT, IMP_MAC, IMP_PROFILE, IMP_MODEL,
	IMP_PARKING_USER, IMP_PARKING_PASSWORD, IMP_NCOLS
};

/* The column names, in the order export writes them. */
extern const char *const import_col_names[IMP_NCOLS];

/*
 * One row.  A cell is NULL when absent or empty (keep); the clearing "-"
 * is given as "" (label, model, parking_*).  Strings borrow the csv.
 * allow_virt: -1 keep, 0, 1.  mac is normalised (12 lowercase hex) or "".
 */
struct import_row {
	int line;
	const char *cell[IMP_NCOLS];
	int allow_virt;
	char mac[13];
	int col_of[IMP_NCOLS]; /* 1-based column number of each name, 0 absent */
};

struct import_rows {
	struct import_row *v;
	size_t n;
	int col_of[IMP_NCOLS];
};

/*
 * Maps csv (header plus rows) into rows.  Returns 0, or -1 with
 * "line L, column C (name): message" in err.  max_rows limits the rows
 * (0: no limit).  Free with import_rows_free (NULL-safe).
 */
int import_rows_from_csv(const struct csv *c, size_t max_rows, struct import_rows *out,
                         char *err, size_t errlen);
void import_rows_free(struct import_rows *r);

/* "line L, column C (name): msg" for a cell of row r. */
void import_cell_error(const struct import_row *r, enum import_col col, const char *msg,
                       char *err, size_t errlen);

#endif
