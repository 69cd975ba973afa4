"""Fixtures for the end-to-end tests: toasterd, Debian's Roundcube and a
headless Chromium, all on 127.0.0.1, one set per test session.

- `toaster`: the real toasterd, started with the integration suite's
  `Toaster` class (imported from tests/integration/conftest.py, not copied):
  users alice and bob on example.com from its users file, a self-signed
  certificate made with openssl, SMTP, IMAP, submission (STARTTLS) and
  ManageSieve on free loopback ports, Sieve at delivery on.
- `roundcube`: Debian's roundcube (/usr/share/roundcube, /var/lib/roundcube)
  served by `php -S` from its public_html, with its own configuration
  directory in a temporary folder (ROUNDCUBE_CONFIG_DIR): SQLite database,
  IMAP in plain text on loopback (as a webmail on the mail host runs),
  submission and ManageSieve with STARTTLS (the certificate verified against
  the one made here), the managesieve and markasjunk plugins, the IMAP, SMTP
  and ManageSieve conversations logged to files, nothing fetched from
  outside.
- `browser`: Chromium under chromedriver (python3-selenium), headless.
- `shot(name)`: a numbered screenshot in the artifacts folder:
  $TOASTER_ARTIFACTS, else e2e-artifacts/ beside the toasterd binary. At the
  end of the session Roundcube's logs and toasterd's log are copied there.
"""

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# The integration suite's fixtures module, under a name of its own so that it
# does not clash with this conftest.
_spec = importlib.util.spec_from_file_location(
    "toaster_integration_conftest", HERE.parent / "integration" / "conftest.py")
integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration)
Toaster = integration.Toaster
free_ports = integration.free_ports
wait_until = integration.wait_until
PASSWORDS = integration.IMAP_PASSWORDS

ROUNDCUBE_PUBLIC = Path("/var/lib/roundcube/public_html")
ROUNDCUBE_DEFAULTS = Path("/etc/roundcube/defaults.inc.php")
PHP = "/usr/bin/php"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NEEDED = (ROUNDCUBE_PUBLIC / "index.php", ROUNDCUBE_DEFAULTS,
          Path("/usr/share/roundcube/plugins/managesieve/managesieve.php"),
          Path("/usr/share/roundcube/plugins/markasjunk/markasjunk.php"),
          Path("/usr/share/php/Net/Sieve.php"), Path(PHP), Path(CHROMIUM), Path(CHROMEDRIVER))

SERVER_NAME = "mx.example.com"
START_TIMEOUT_S = 20.0


def artifacts_dir():
    """Where screenshots and logs go (made, and emptied of our old files)."""
    env = os.environ.get("TOASTER_ARTIFACTS")
    path = Path(env) if env else Path(integration.TOASTERD).resolve().parent / "e2e-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    for old in list(path.glob("*.png")) + list(path.glob("*.log")):
        old.unlink()
    return path


def make_cert(directory, name):
    """A self-signed ECDSA certificate for name (as tests/integration/test_tls.py)."""
    key = directory / (name + ".key")
    cert = directory / (name + ".pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=" + name,
         "-addext", "subjectAltName=DNS:" + name],
        check=True, capture_output=True)
    return cert, key


def php_string(value):
    """A PHP single-quoted string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture(scope="session")
def e2e_root():
    missing = [str(p) for p in NEEDED if not p.exists()]
    if missing:
        pytest.fail("missing (run ./scripts/install-deps.sh test): " + ", ".join(missing),
                    pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="toaster-e2e-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts():
    return artifacts_dir()


@pytest.fixture(scope="session")
def toaster(e2e_root, artifacts):
    cert, key = make_cert(e2e_root, SERVER_NAME)
    daemon = Toaster(
        e2e_root / "toaster",
        config={
            "myhostname": SERVER_NAME,
            "tls_cert": str(cert),
            "tls_key": str(key),
            # The filter rule made in Roundcube must run at delivery. The
            # builtin global script stays in front of it, as in production.
            "sieve": "yes",
            # Nothing here is about scanning or scoring: a bare test message
            # must not be judged spam (the builtin script files spam into
            # Junk) and ClamAV's database load would only slow the start.
            "clamav": "no",
            "spam": "no",
        },
    )
    daemon.cert_file = cert
    daemon.start()
    yield daemon
    try:
        daemon.stop()
    finally:
        shutil.copy(daemon.log_file, artifacts / "toasterd.log")


def roundcube_config(root, toaster, des_key):
    """config.inc.php for this session (the rest comes from defaults.inc.php)."""
    ports = toaster.ports
    settings = [
        ("db_dsnw", "sqlite:///%s?mode=0600" % (root / "roundcube.db")),
        ("log_driver", "file"),
        ("log_dir", str(root / "logs") + "/"),
        ("temp_dir", str(root / "temp") + "/"),
        ("imap_host", "127.0.0.1:%d" % ports["imap_listen"]),
        ("smtp_host", "tls://127.0.0.1:%d" % ports["submission_listen"]),
        ("smtp_user", "%u"),
        ("smtp_pass", "%p"),
        # Roundcube 1.6 takes the port and STARTTLS from the URI (the old
        # managesieve_port and managesieve_usetls are gone).
        ("managesieve_host", "tls://127.0.0.1:%d" % ports["managesieve_listen"]),
        ("des_key", des_key),
        ("product_name", "Roundcube on toaster"),
        ("skin", "elastic"),
        ("junk_mbox", "Junk"),
        ("language", "en_US"),
    ]
    lines = ["<?php", "$config = [];"]
    lines += ["$config[%s] = %s;" % (php_string(k), php_string(v)) for k, v in settings]
    lines += [
        "$config['plugins'] = ['managesieve', 'markasjunk'];",
        "$config['markasjunk_learning_driver'] = null;",
        # STARTTLS on submission and ManageSieve, with the certificate made
        # for this session as the only trust anchor and its name checked.
        "$tls = ['ssl' => ['verify_peer' => true, 'verify_peer_name' => true, "
        "'peer_name' => %s, 'cafile' => %s, 'allow_self_signed' => true]];" % (
            php_string(SERVER_NAME), php_string(toaster.cert_file)),
        "$config['smtp_conn_options'] = $tls;",
        "$config['managesieve_conn_options'] = $tls;",
        # Every conversation with toasterd, for the report when a step fails
        # (and for test_07, which reads them).
        "$config['imap_debug'] = true;",
        "$config['smtp_debug'] = true;",
        "$config['managesieve_debug'] = true;",
        # No periodic refresh: the IMAP log holds only what the steps did.
        "$config['refresh_interval'] = 0;",
        # Many logins in a few seconds from one address are the test, not
        # an attack.
        "$config['login_rate_limit'] = 0;",
        # Nothing fetched from outside: no spell checker service, no remote
        # images (both are Roundcube's defaults; said here so they stay).
        "$config['enable_spellcheck'] = false;",
        "$config['show_images'] = 0;",
    ]
    return "\n".join(lines) + "\n"


class Roundcube:
    """`php -S` serving Debian's Roundcube with a configuration of its own."""

    def __init__(self, root, toaster):
        self.root = root
        self.config_dir = root / "config"
        self.log_dir = root / "logs"
        for d in (self.config_dir, self.log_dir, root / "temp"):
            d.mkdir(parents=True, exist_ok=True)
        os.symlink(ROUNDCUBE_DEFAULTS, self.config_dir / "defaults.inc.php")
        (self.config_dir / "config.inc.php").write_text(
            roundcube_config(root, toaster, secrets.token_urlsafe(18)[:24]))
        self.server_log = root / "php-server.log"
        self.proc = None
        self.port = None

    def start(self):
        env = dict(os.environ)
        env.update({"ROUNDCUBE_CONFIG_DIR": str(self.config_dir),
                    "PHP_CLI_SERVER_WORKERS": "4"})
        for _attempt in range(5):
            self.port = free_ports(1)[0]
            log = open(self.server_log, "ab")
            # Its own process group: the workers it forks stop with it.
            self.proc = subprocess.Popen(
                [PHP, "-d", "opcache.enable_cli=1", "-d", "display_errors=0",
                 "-S", "127.0.0.1:%d" % self.port, "-t", str(ROUNDCUBE_PUBLIC)],
                cwd=str(ROUNDCUBE_PUBLIC), env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True)
            log.close()
            if wait_until(self._answers, START_TIMEOUT_S, 0.1) and self.proc.poll() is None:
                return self
            self.stop()  # the port was taken meanwhile, or it did not answer
        raise AssertionError("php -S did not serve Roundcube:\n" + self.server_log.read_text())

    def _answers(self):
        if self.proc.poll() is not None:
            return True  # stop waiting: start() sees that it exited
        try:
            with urllib.request.urlopen(self.url, timeout=5) as resp:
                return resp.status == 200 and b"rcmloginuser" in resp.read()
        except OSError:
            return False

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def logs(self):
        """Roundcube's own logs (errors, imap, smtp, sieve), name -> text."""
        return {p.name: p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*"))}


@pytest.fixture(scope="session")
def roundcube(e2e_root, toaster, artifacts):
    rc = Roundcube(e2e_root / "roundcube", toaster)
    rc.start()
    yield rc
    rc.stop()
    for name, text in rc.logs().items():
        (artifacts / ("roundcube-" + name + ("" if name.endswith(".log") else ".log"))
         ).write_text(text)
    shutil.copy(rc.server_log, artifacts / "roundcube-php-server.log")


@pytest.fixture(scope="session")
def browser(e2e_root):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--user-data-dir=%s" % (e2e_root / "chromium-profile"),
                 "--lang=en-US"):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, log_path=str(e2e_root / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def shot(browser, artifacts):
    """shot("login") saves NN-login.png, numbered in the order taken."""
    count = [0]

    def take(name):
        count[0] += 1
        path = artifacts / ("%02d-%s.png" % (count[0], name))
        browser.save_screenshot(str(path))
        return path

    return take


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, for the screenshot on failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "report_" + report.when, report)


@pytest.fixture(autouse=True)
def failure_screenshot(request, artifacts):
    """A test that fails leaves FAILED-<test>.png of the page it was on."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or "browser" not in request.fixturenames:
        return
    browser = request.getfixturevalue("browser")
    try:
        browser.switch_to.default_content()
        browser.save_screenshot(str(artifacts / ("FAILED-%s.png" % request.node.name)))
    except Exception as exc:  # the browser itself may be what failed
        print("no failure screenshot: %r" % exc)
