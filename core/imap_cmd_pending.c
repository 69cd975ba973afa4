/* placeholder while being written: answers NO for commands not yet here */
#include "core/imap_exec.h"

void imap_cmd_append(struct imap_exec *x) { imap_exec_no(x, "[UNAVAILABLE] Not yet."); }


