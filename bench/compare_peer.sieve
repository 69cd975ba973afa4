# bench/compare_peer.sieve - the peer's global script for compare.sh SIEVE=1:
# what toasterd's etc/sieve/default.sieve does, written for Pigeonhole,
# which has no extlists: the whitelist and blacklist are inline lists.
require ["fileinto", "mailbox"];
if address :is "from" ["friend@example.test", "boss@example.test"] {
    stop;
}
if address :is "from" ["spammer@example.test"] {
    discard;
    stop;
}
if header :is "X-Spam-Flag" "YES" {
    fileinto :create "Junk";
    stop;
}
