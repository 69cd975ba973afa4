# etc/sieve/default.sieve - toaster's shipped global Sieve script, run
# before each user's own script when sieve_before = builtin (the default).
# It does what the classic stack's global script does, per recipient:
#
#   1. A sender on the user's whitelist is trusted: the rest of this script
#      is skipped (no Junk filing); the user's own script still runs.
#   2. A sender on the user's blacklist is discarded.
#   3. Spam is filed into the Junk folder (made if missing).
#
# The lists are files the user (or the operator) edits:
#   <home>/sieve/lists/whitelist and <home>/sieve/lists/blacklist
# (home is the directory holding Maildir/ and .dovecot.sieve), one entry
# per line: a full address (any case) or "@domain" (that domain only, not
# its subdomains); lines starting with '#' are comments. A missing file is
# an empty list. Both the From header and the envelope sender are checked.
#
# Spam: the test is the spam filter's "X-Spam-Flag: YES", which it writes
# exactly when the score reaches the operator's add-header threshold. That
# keeps one threshold for the header, the subject tag and Junk; spamtest
# would rescale the score against sieve_spamtest_max_value, a second
# number to keep in step. A sender who forges the flag only sends his own
# mail to Junk.
require ["extlists", "envelope", "fileinto", "mailbox"];

if anyof (address :all :list "from" ":addrbook:whitelist",
          envelope :all :list "from" ":addrbook:whitelist") {
    stop;
}
if anyof (address :all :list "from" ":addrbook:blacklist",
          envelope :all :list "from" ":addrbook:blacklist") {
    discard;
    stop;
}
if header :is "X-Spam-Flag" "YES" {
    fileinto :create "Junk";
}
