/*
 * tests/unit/test_mail_autoconfig.c - the documents the HTTP listener
 * serves, byte for byte (proto/http/mail_autoconfig, mta_sts_policy):
 * Thunderbird's clientConfig 1.1, Outlook's Autodiscover answer and the
 * request extractor, the Apple profile (its version 5 UUIDs checked
 * against values Python's uuid.uuid5 computed), the MTA-STS policy and
 * its id (against Python's hashlib), the address and domain checks, XML
 * escaping of what is inserted, and every document at its exact size and
 * one byte short.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/http/mail_autoconfig.h"
#include "proto/http/mta_sts_policy.h"
#include "tests/unit/unit.h"

static const struct mail_autoconfig_server server = {
    .hostname = "mx.example.com",
    .imaps_port = 993,
    .imap_port = 143,
    .submissions_port = 465,
    .submission_port = 587,
    .has_tls = true,
};

static char out[MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX];

static void
test_address(void)
{
    char a[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1];
    size_t at = 0;
    const char *ok = "Alice.B+tag@Example.COM";
    CHECK(mail_autoconfig_address_normalize(ok, strlen(ok), a, &at) == 0);
    CHECK_STR(a, "Alice.B+tag@example.com");
    CHECK(at == 11);
    const char *odd = "o'brien&co@example.com";
    CHECK(mail_autoconfig_address_normalize(odd, strlen(odd), a, &at) == 0);
    static const char *const bad[] = {
        "", "@example.com", "alice@", "alice", "alice@@example.com", ".alice@example.com",
        "alice.@example.com", "al..ice@example.com", "al ice@example.com", "\"al\"@example.com",
        "alice@exa_mple.com", "alice@-example.com", "alice@example-.com", "alice@example..com",
        "alice@.example.com", "alice@example.com.", "al<i>ce@example.com", "alice@exam ple.com",
        "alice@example.com\r\nX: y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(mail_autoconfig_address_normalize(bad[i], strlen(bad[i]), a, &at) == -EINVAL);
    }
    /* Local part: 64 bytes fit, 65 do not; the whole: 254 fit, 255 do not. */
    char text[400];
    char local[80];
    memset(local, 'l', 64);
    local[64] = '\0';
    (void)snprintf(text, sizeof(text), "%s@example.com", local);
    CHECK(mail_autoconfig_address_normalize(text, strlen(text), a, &at) == 0);
    (void)snprintf(text, sizeof(text), "%sl@example.com", local);
    CHECK(mail_autoconfig_address_normalize(text, strlen(text), a, &at) == -EINVAL);
    /* "l@" + 4 labels of 61 + "." and 1 + "com": 2 + 4*62 + 4 = 254. */
    char domain[300] = "";
    for (int i = 0; i < 4; i++) {
        char label[64];
        memset(label, 'd', 61);
        label[61] = '\0';
        strcat(domain, label);
        strcat(domain, ".");
    }
    strcat(domain, "com");
    (void)snprintf(text, sizeof(text), "l@%s", domain);
    CHECK(strlen(text) == 253);
    CHECK(mail_autoconfig_address_normalize(text, strlen(text), a, &at) == 0);
    (void)snprintf(text, sizeof(text), "ll@%s", domain);
    CHECK(strlen(text) == 254);
    CHECK(mail_autoconfig_address_normalize(text, strlen(text), a, &at) == 0);
    (void)snprintf(text, sizeof(text), "lll@%s", domain);
    CHECK(mail_autoconfig_address_normalize(text, strlen(text), a, &at) == -EINVAL);
    /* Domain labels: 63 fit, 64 do not. */
    char label[70];
    memset(label, 'x', 63);
    label[63] = '\0';
    CHECK(mail_autoconfig_domain_ok(label, 63));
    memset(label, 'x', 64);
    CHECK(!mail_autoconfig_domain_ok(label, 64));
    CHECK(mail_autoconfig_domain_ok("localhost", 9));
    CHECK(!mail_autoconfig_domain_ok("", 0));
}

static const char thunderbird_want[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<clientConfig version=\"1.1\">\n"
    "  <emailProvider id=\"example.com\">\n"
    "    <domain>example.com</domain>\n"
    "    <displayName>example.com</displayName>\n"
    "    <displayShortName>example.com</displayShortName>\n"
    "    <incomingServer type=\"imap\">\n"
    "      <hostname>mx.example.com</hostname>\n"
    "      <port>993</port>\n"
    "      <socketType>SSL</socketType>\n"
    "      <authentication>password-cleartext</authentication>\n"
    "      <username>%EMAILADDRESS%</username>\n"
    "    </incomingServer>\n"
    "    <incomingServer type=\"imap\">\n"
    "      <hostname>mx.example.com</hostname>\n"
    "      <port>143</port>\n"
    "      <socketType>STARTTLS</socketType>\n"
    "      <authentication>password-cleartext</authentication>\n"
    "      <username>%EMAILADDRESS%</username>\n"
    "    </incomingServer>\n"
    "    <outgoingServer type=\"smtp\">\n"
    "      <hostname>mx.example.com</hostname>\n"
    "      <port>465</port>\n"
    "      <socketType>SSL</socketType>\n"
    "      <authentication>password-cleartext</authentication>\n"
    "      <username>%EMAILADDRESS%</username>\n"
    "    </outgoingServer>\n"
    "    <outgoingServer type=\"smtp\">\n"
    "      <hostname>mx.example.com</hostname>\n"
    "      <port>587</port>\n"
    "      <socketType>STARTTLS</socketType>\n"
    "      <authentication>password-cleartext</authentication>\n"
    "      <username>%EMAILADDRESS%</username>\n"
    "    </outgoingServer>\n"
    "  </emailProvider>\n"
    "</clientConfig>\n";

static void
test_thunderbird(void)
{
    int n = mail_autoconfig_thunderbird(&server, "example.com", out, sizeof(out));
    CHECK(n > 0);
    CHECK_BYTES(out, (size_t)n, thunderbird_want, strlen(thunderbird_want));
    CHECK(mail_autoconfig_thunderbird(&server, "example.com", out, strlen(thunderbird_want)) ==
          (int)strlen(thunderbird_want));
    CHECK(mail_autoconfig_thunderbird(&server, "example.com", out,
                                      strlen(thunderbird_want) - 1) == -ENOSPC);
    /* Without TLS: the plaintext ports only, said so; without a service: absent. */
    struct mail_autoconfig_server plain = server;
    plain.has_tls = false;
    plain.submission_port = 0;
    n = mail_autoconfig_thunderbird(&plain, "example.com", out, sizeof(out));
    CHECK(n > 0);
    out[n] = '\0';
    CHECK(strstr(out, "<socketType>plain</socketType>") != NULL);
    CHECK(strstr(out, "SSL") == NULL && strstr(out, "STARTTLS") == NULL);
    CHECK(strstr(out, "outgoingServer") == NULL);
    /* What is inserted is escaped. */
    struct mail_autoconfig_server odd = server;
    odd.hostname = "a<b>&\"c'";
    n = mail_autoconfig_thunderbird(&odd, "x&y", out, sizeof(out));
    CHECK(n > 0);
    out[n] = '\0';
    CHECK(strstr(out, "<hostname>a&lt;b&gt;&amp;&quot;c&apos;</hostname>") != NULL);
    CHECK(strstr(out, "<emailProvider id=\"x&amp;y\">") != NULL);
    CHECK(strstr(out, "x&y") == NULL);
}

static const char autodiscover_want[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/"
    "2006\">\n"
    "  <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/"
    "responseschema/2006a\">\n"
    "    <Account>\n"
    "      <AccountType>email</AccountType>\n"
    "      <Action>settings</Action>\n"
    "      <Protocol>\n"
    "        <Type>IMAP</Type>\n"
    "        <Server>mx.example.com</Server>\n"
    "        <Port>993</Port>\n"
    "        <DomainRequired>off</DomainRequired>\n"
    "        <LoginName>o&apos;brien&amp;co@example.com</LoginName>\n"
    "        <SPA>off</SPA>\n"
    "        <SSL>on</SSL>\n"
    "        <Encryption>SSL</Encryption>\n"
    "        <AuthRequired>on</AuthRequired>\n"
    "      </Protocol>\n"
    "      <Protocol>\n"
    "        <Type>SMTP</Type>\n"
    "        <Server>mx.example.com</Server>\n"
    "        <Port>465</Port>\n"
    "        <DomainRequired>off</DomainRequired>\n"
    "        <LoginName>o&apos;brien&amp;co@example.com</LoginName>\n"
    "        <SPA>off</SPA>\n"
    "        <SSL>on</SSL>\n"
    "        <Encryption>SSL</Encryption>\n"
    "        <AuthRequired>on</AuthRequired>\n"
    "      </Protocol>\n"
    "    </Account>\n"
    "  </Response>\n"
    "</Autodiscover>\n";

static void
test_autodiscover(void)
{
    int n = mail_autoconfig_autodiscover(&server, "o'brien&co@example.com", out, sizeof(out));
    CHECK(n > 0);
    CHECK_BYTES(out, (size_t)n, autodiscover_want, strlen(autodiscover_want));
    CHECK(mail_autoconfig_autodiscover(&server, "o'brien&co@example.com", out,
                                       strlen(autodiscover_want) - 1) == -ENOSPC);
    /* No implicit TLS ports: the STARTTLS ones, Encryption TLS. */
    struct mail_autoconfig_server starttls = server;
    starttls.imaps_port = 0;
    starttls.submissions_port = 0;
    n = mail_autoconfig_autodiscover(&starttls, "a@example.com", out, sizeof(out));
    CHECK(n > 0);
    out[n] = '\0';
    CHECK(strstr(out, "<Port>143</Port>") != NULL && strstr(out, "<Port>587</Port>") != NULL);
    CHECK(strstr(out, "<Encryption>TLS</Encryption>") != NULL);
    CHECK(strstr(out, "<Encryption>SSL</Encryption>") == NULL);

    /* The request (Microsoft's example shape), with and without prefixes. */
    char a[MAIL_AUTOCONFIG_ADDRESS_BYTES_MAX + 1];
    const char *request =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
        "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/"
        "requestschema/2006\">\r\n"
        "  <Request>\r\n"
        "    <EMailAddress>chris@example.com</EMailAddress>\r\n"
        "    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/"
        "outlook/responseschema/2006a</AcceptableResponseSchema>\r\n"
        "  </Request>\r\n"
        "</Autodiscover>\r\n";
    CHECK(mail_autoconfig_autodiscover_address(request, strlen(request), a, sizeof(a)) == 17);
    CHECK_STR(a, "chris@example.com");
    const char *prefixed = "<a:Autodiscover><a:Request><a:EMailAddress attr=\"1\">\n  "
                           "bob@example.com \n</a:EMailAddress></a:Request></a:Autodiscover>";
    CHECK(mail_autoconfig_autodiscover_address(prefixed, strlen(prefixed), a, sizeof(a)) == 15);
    CHECK_STR(a, "bob@example.com");
    /* Names that only look alike, and the closing tag first, are passed over. */
    const char *lookalike = "<EMailAddressX>no</EMailAddressX></EMailAddress>"
                            "<EMailAddress>yes@example.com</EMailAddress>";
    CHECK(mail_autoconfig_autodiscover_address(lookalike, strlen(lookalike), a, sizeof(a)) == 15);
    CHECK_STR(a, "yes@example.com");
    static const char *const refused[] = {
        "<Request></Request>",
        "<EMailAddress>a@example.com",
        "<EMailAddress/>",
        "<EMailAddress",
        "",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        CHECK(mail_autoconfig_autodiscover_address(refused[i], strlen(refused[i]), a,
                                                   sizeof(a)) == -ENOENT);
    }
    const char *entity = "<EMailAddress>a&amp;b@example.com</EMailAddress>";
    CHECK(mail_autoconfig_autodiscover_address(entity, strlen(entity), a, sizeof(a)) == -EINVAL);
    const char *nested = "<EMailAddress>a<b>@example.com</b></EMailAddress>";
    CHECK(mail_autoconfig_autodiscover_address(nested, strlen(nested), a, sizeof(a)) == 1);
    CHECK(mail_autoconfig_autodiscover_address(request, strlen(request), a, 17) == -ENOSPC);
    CHECK(mail_autoconfig_autodiscover_address(request, strlen(request), a, 18) == 17);
    /* Only the first MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX bytes are looked at. */
    static char big[MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX + 64];
    memset(big, ' ', sizeof(big));
    const char *tail = "<EMailAddress>late@example.com</EMailAddress>";
    memcpy(big + sizeof(big) - strlen(tail), tail, strlen(tail));
    CHECK(mail_autoconfig_autodiscover_address(big, sizeof(big), a, sizeof(a)) == -ENOENT);
    memcpy(big + 10, tail, strlen(tail));
    CHECK(mail_autoconfig_autodiscover_address(big, sizeof(big), a, sizeof(a)) == 16);
}

static void
test_uuid(void)
{
    char u[MAIL_AUTOCONFIG_UUID_BYTES];
    /* Python: str(uuid.uuid5(uuid.NAMESPACE_URL, name)).upper() */
    CHECK(mail_autoconfig_uuid("", u) == 0);
    CHECK_STR(u, "1B4DB7EB-4057-5DDF-91E0-36DEC72071F5");
    CHECK(mail_autoconfig_uuid("toaster:mobileconfig:alice@example.com:profile", u) == 0);
    CHECK_STR(u, "3B81B78E-83B2-5A39-87C2-814D3AF79F4B");
    CHECK(mail_autoconfig_uuid("toaster:mobileconfig:alice@example.com:account", u) == 0);
    CHECK_STR(u, "120FAD28-4350-52AE-9C22-D06E68EEF9F6");
}

static const char mobileconfig_want[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
    "<plist version=\"1.0\">\n"
    "<dict>\n"
    "\t<key>PayloadContent</key>\n"
    "\t<array>\n"
    "\t\t<dict>\n"
    "\t\t\t<key>EmailAccountDescription</key>\n"
    "\t\t\t<string>alice@example.com</string>\n"
    "\t\t\t<key>EmailAccountName</key>\n"
    "\t\t\t<string>alice@example.com</string>\n"
    "\t\t\t<key>EmailAccountType</key>\n"
    "\t\t\t<string>EmailTypeIMAP</string>\n"
    "\t\t\t<key>EmailAddress</key>\n"
    "\t\t\t<string>alice@example.com</string>\n"
    "\t\t\t<key>IncomingMailServerAuthentication</key>\n"
    "\t\t\t<string>EmailAuthPassword</string>\n"
    "\t\t\t<key>IncomingMailServerHostName</key>\n"
    "\t\t\t<string>mx.example.com</string>\n"
    "\t\t\t<key>IncomingMailServerPortNumber</key>\n"
    "\t\t\t<integer>993</integer>\n"
    "\t\t\t<key>IncomingMailServerUseSSL</key>\n"
    "\t\t\t<true/>\n"
    "\t\t\t<key>IncomingMailServerUsername</key>\n"
    "\t\t\t<string>alice@example.com</string>\n"
    "\t\t\t<key>OutgoingMailServerAuthentication</key>\n"
    "\t\t\t<string>EmailAuthPassword</string>\n"
    "\t\t\t<key>OutgoingMailServerHostName</key>\n"
    "\t\t\t<string>mx.example.com</string>\n"
    "\t\t\t<key>OutgoingMailServerPortNumber</key>\n"
    "\t\t\t<integer>465</integer>\n"
    "\t\t\t<key>OutgoingMailServerUseSSL</key>\n"
    "\t\t\t<true/>\n"
    "\t\t\t<key>OutgoingMailServerUsername</key>\n"
    "\t\t\t<string>alice@example.com</string>\n"
    "\t\t\t<key>OutgoingPasswordSameAsIncomingPassword</key>\n"
    "\t\t\t<true/>\n"
    "\t\t\t<key>PayloadDescription</key>\n"
    "\t\t\t<string>E-mail account settings</string>\n"
    "\t\t\t<key>PayloadDisplayName</key>\n"
    "\t\t\t<string>alice@example.com</string>\n"
    "\t\t\t<key>PayloadIdentifier</key>\n"
    "\t\t\t<string>com.apple.mail.managed.120FAD28-4350-52AE-9C22-D06E68EEF9F6</string>\n"
    "\t\t\t<key>PayloadType</key>\n"
    "\t\t\t<string>com.apple.mail.managed</string>\n"
    "\t\t\t<key>PayloadUUID</key>\n"
    "\t\t\t<string>120FAD28-4350-52AE-9C22-D06E68EEF9F6</string>\n"
    "\t\t\t<key>PayloadVersion</key>\n"
    "\t\t\t<integer>1</integer>\n"
    "\t\t\t<key>PreventAppSheet</key>\n"
    "\t\t\t<false/>\n"
    "\t\t\t<key>PreventMove</key>\n"
    "\t\t\t<false/>\n"
    "\t\t\t<key>SMIMEEnabled</key>\n"
    "\t\t\t<false/>\n"
    "\t\t</dict>\n"
    "\t</array>\n"
    "\t<key>PayloadDescription</key>\n"
    "\t<string>Sets up the mail account.</string>\n"
    "\t<key>PayloadDisplayName</key>\n"
    "\t<string>example.com mail</string>\n"
    "\t<key>PayloadIdentifier</key>\n"
    "\t<string>toaster.mobileconfig.3B81B78E-83B2-5A39-87C2-814D3AF79F4B</string>\n"
    "\t<key>PayloadOrganization</key>\n"
    "\t<string>example.com</string>\n"
    "\t<key>PayloadRemovalDisallowed</key>\n"
    "\t<false/>\n"
    "\t<key>PayloadType</key>\n"
    "\t<string>Configuration</string>\n"
    "\t<key>PayloadUUID</key>\n"
    "\t<string>3B81B78E-83B2-5A39-87C2-814D3AF79F4B</string>\n"
    "\t<key>PayloadVersion</key>\n"
    "\t<integer>1</integer>\n"
    "</dict>\n"
    "</plist>\n";

static void
test_mobileconfig(void)
{
    int n = mail_autoconfig_mobileconfig(&server, "alice@example.com", out, sizeof(out));
    CHECK(n > 0);
    CHECK_BYTES(out, (size_t)n, mobileconfig_want, strlen(mobileconfig_want));
    CHECK(mail_autoconfig_mobileconfig(&server, "alice@example.com", out,
                                       strlen(mobileconfig_want)) == (int)strlen(mobileconfig_want));
    CHECK(mail_autoconfig_mobileconfig(&server, "alice@example.com", out,
                                       strlen(mobileconfig_want) - 1) == -ENOSPC);
    /* The same address, the same profile; another address, other UUIDs; escaped. */
    static char again[MAIL_AUTOCONFIG_DOCUMENT_BYTES_MAX];
    CHECK(mail_autoconfig_mobileconfig(&server, "alice@example.com", again, sizeof(again)) == n);
    CHECK(memcmp(out, again, (size_t)n) == 0);
    n = mail_autoconfig_mobileconfig(&server, "o'brien&co@example.com", out, sizeof(out));
    CHECK(n > 0);
    out[n] = '\0';
    CHECK(strstr(out, "<string>o&apos;brien&amp;co@example.com</string>") != NULL);
    CHECK(strstr(out, "o'brien") == NULL);
    CHECK(strstr(out, "D74F65E0-1C16-544C-97ED-E8D4C65FBAF4") != NULL);
    CHECK(strstr(out, "3D47FA29-B425-5DC3-8497-41D0446960D5") != NULL);
    /* STARTTLS ports when there are no implicit TLS ones. */
    struct mail_autoconfig_server starttls = server;
    starttls.imaps_port = 0;
    starttls.submissions_port = 0;
    n = mail_autoconfig_mobileconfig(&starttls, "alice@example.com", out, sizeof(out));
    CHECK(n > 0);
    out[n] = '\0';
    CHECK(strstr(out, "<integer>143</integer>") != NULL);
    CHECK(strstr(out, "<integer>587</integer>") != NULL);
}

static void
test_mta_sts(void)
{
    char text[MTA_STS_POLICY_BYTES_MAX];
    char id[MTA_STS_POLICY_ID_BYTES];
    struct mta_sts_policy_config c = { .mode = "testing", .mx = "mx.example.com",
                                       .max_age_s = 604800 };
    const char *reason = NULL;
    CHECK(mta_sts_policy_config_ok(&c, &reason));
    int n = mta_sts_policy_text(&c, text, sizeof(text));
    const char *want = "version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\nmax_age: 604800\r\n";
    CHECK(n > 0);
    CHECK_BYTES(text, (size_t)n, want, strlen(want));
    CHECK(mta_sts_policy_id(text, (size_t)n, id) == 0);
    CHECK_STR(id, "862e2bab291cfe999cbb"); /* hashlib.sha256(policy).hexdigest()[:20] */
    c.mode = "enforce";
    c.mx = " MX1.example.com, *.example.net ";
    c.max_age_s = 86400;
    n = mta_sts_policy_text(&c, text, sizeof(text));
    want = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\n"
           "max_age: 86400\r\n";
    CHECK(n > 0);
    CHECK_BYTES(text, (size_t)n, want, strlen(want));
    CHECK(mta_sts_policy_id(text, (size_t)n, id) == 0);
    CHECK_STR(id, "0a57a00ae0a8fc206f83");
    CHECK(mta_sts_policy_text(&c, text, strlen(want) + 1) == (int)strlen(want));
    CHECK(mta_sts_policy_text(&c, text, strlen(want)) == -ENOSPC);
    /* What makes no policy. */
    static const struct mta_sts_policy_config bad[] = {
        { "Testing", "mx.example.com", 60 },
        { "report", "mx.example.com", 60 },
        { "none", "", 60 },
        { "none", " , ", 60 },
        { "none", "mx..example.com", 60 },
        { "none", "*.", 60 },
        { "none", "mx.*.example.com", 60 },
        { "none", "mx_1.example.com", 60 },
        { "none", "mx.example.com", 31557601 },
        { "none", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", 60 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!mta_sts_policy_config_ok(&bad[i], &reason));
        CHECK(mta_sts_policy_text(&bad[i], text, sizeof(text)) == -EINVAL);
    }
    struct mta_sts_policy_config sixteen = { "none", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p",
                                             31557600 };
    CHECK(mta_sts_policy_config_ok(&sixteen, &reason));
}

int
main(void)
{
    test_address();
    test_thunderbird();
    test_autodiscover();
    test_uuid();
    test_mobileconfig();
    test_mta_sts();
    UNIT_DONE();
}
