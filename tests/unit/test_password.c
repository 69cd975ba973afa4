/*
 * tests/unit/test_password.c - password_verify() against hashes of every
 * scheme users_file may hold (made with libxcrypt by Python's crypt module
 * and written down here), right and wrong passwords, schemes filed under
 * the wrong name, unknown schemes and malformed entries.
 */
#include <errno.h>

#include "store/password.h"
#include "tests/unit/unit.h"

struct password_case {
    const char *stored;
    const char *password;
    int want;
};

static const struct password_case cases[] = {
    {"{PLAIN}s3cret", "s3cret", 0},
    {"{PLAIN}s3cret", "s3cre", -EACCES},
    {"{PLAIN}s3cret", "s3cret ", -EACCES},
    {"{PLAIN}s3cret", "", -EACCES},
    {"{CLEARTEXT}s3cret", "s3cret", 0},
    {"{plain}s3cret", "s3cret", 0},
    {"{SHA512-CRYPT}$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9"
     "rQ4DYaXoxAFSPFlcWdxjB.",
     "s3cret", 0},
    {"{SHA512-CRYPT}$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9"
     "rQ4DYaXoxAFSPFlcWdxjB.",
     "S3cret", -EACCES},
    {"$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAFSPF"
     "lcWdxjB.",
     "s3cret", 0},
    {"{SHA256-CRYPT}$5$abcdefgh$OcHWp0Vj4l19dnE2g4tHD4hbItEZgO0bjRV6LjwCLoA", "s3cret", 0},
    {"{MD5-CRYPT}$1$abcdefgh$7.vq19w/w3Vm.hk1FOA7Q/", "s3cret", 0},
    {"{BLF-CRYPT}$2b$04$r24L9dTTvjdNVRf88p3NXOvjV.M0Ob51IJ/MLoN/wJe77NVt2LbX.", "s3cret", 0},
    {"{BLF-CRYPT}$2b$04$r24L9dTTvjdNVRf88p3NXOvjV.M0Ob51IJ/MLoN/wJe77NVt2LbX.", "secret",
     -EACCES},
    {"{CRYPT}$y$j9T$abcdefghijklmnop$tySFNIfWVy.ymkBDHEMW6bAQ07dlkLVGalgni.VV4l8", "s3cret", 0},
    {"$y$j9T$abcdefghijklmnop$tySFNIfWVy.ymkBDHEMW6bAQ07dlkLVGalgni.VV4l8", "wrong", -EACCES},
    /* A SHA-512 hash filed as BLF-CRYPT is a mistake, not a match. */
    {"{BLF-CRYPT}$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4"
     "DYaXoxAFSPFlcWdxjB.",
     "s3cret", -EINVAL},
    {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", "s3cret", -ENOTSUP},
    {"{PLAIN}", "", -EINVAL},
    {"", "", -EINVAL},
    {"{PLAIN", "x", -EINVAL},
    {"{}x", "x", -EINVAL},
    {"{CRYPT}*", "", -EINVAL},
    {"{CRYPT}$6$", "x", -EACCES}, /* crypt makes "$6$$..." of it: no match */
};

int main(void);

int
main(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = password_verify(cases[i].stored, cases[i].password);
        if (got != cases[i].want) {
            fprintf(stderr, "case %zu (%s): got %d want %d\n", i, cases[i].stored, got,
                    cases[i].want);
        }
        CHECK(got == cases[i].want);
    }
    /* Over the length bound: never a match, even if it were equal. */
    static char long_password[PASSWORD_BYTES_MAX + 2];
    memset(long_password, 'a', sizeof(long_password) - 1);
    static char long_stored[PASSWORD_BYTES_MAX + 16];
    snprintf(long_stored, sizeof(long_stored), "{PLAIN}%s", long_password);
    CHECK(password_verify(long_stored, long_password) != 0);
    UNIT_DONE();
}
