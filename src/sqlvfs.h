#ifndef SQLVFS_H
#define SQLVFS_H

/* The name the job store opens its database with. */
#define SQLVFS_NAME "imgfetchd"

const char *sqlvfs_name(void);

#endif
