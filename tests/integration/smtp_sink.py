"""A scripted SMTP server on loopback for the relay's tests: the remote MX.

`SmtpSink` listens on one or more 127.x.y.z addresses (never anything but
loopback), speaks RFC 5321 ESMTP with PIPELINING (replies in order, reading
ahead), CHUNKING (BDAT), STARTTLS (when given a certificate) and AUTH PLAIN
(when given users), and records what arrives. One thread accepts, one
thread serves each connection; the standard library only.

What it records (under one lock; read them after `wait_for`):
  .messages       accepted transactions (a 2xx after the data), `Received`
                  records in the order their final 250 was decided
  .transactions   every transaction that reached the end of its data,
                  with the final reply given (accepted or not)
  .sessions       one `Session` per connection: peer, local address,
                  EHLO name, TLS, AUTH user, commands, message count
  .connections    the number of connections accepted
  .max_parallel   the most connections open at once, per local address (a
                  session ends at QUIT or at the close); .max_parallel_total
                  the same over all addresses
  .cuts           how many times close_in_data cut a transfer

What it does is scripted, and may be changed while it runs:
  greeting        the 220 line; None: accept and never say anything (a
                  silent remote); a "421 ..." line is sent, then the
                  connection is closed; another non-2xx greeting answers
                  every command but QUIT with 503
  delay_s         seconds to wait before every reply
  data_delay_s    more seconds to wait before the reply after the data
  set_rcpt_replies(address, [replies])   consumed one per RCPT of that
                  address (case-insensitive), the last one repeats
  set_mail_replies([replies]), set_data_replies([replies])   the same for
                  MAIL and for the reply after the data (final dot or
                  BDAT LAST), per transaction
  close_in_data   close the connection, without a reply, once this many
                  bytes of message data arrived (None: never), for the
                  next close_in_data_times transfers (None: every one)
A reply is "250 2.1.5 ok" or several lines joined by "\n" (sent as a
multi-line reply).
"""

import base64
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_EXTENSIONS = ("PIPELINING", "SIZE 52428800", "8BITMIME", "SMTPUTF8", "CHUNKING",
                      "ENHANCEDSTATUSCODES", "DSN")

LINE_MAX_BYTES = 1000  # RFC 5321 4.5.3.1.4/6: command and text lines, CRLF included
RECV_BYTES = 65536


@dataclass
class Received:
    """One transaction as the sink saw it."""
    mail_from: str                 # "" for the null sender
    mail_params: dict              # {"SIZE": "123", "SMTPUTF8": None, ...}, keys upper case
    rcpts: list                    # the recipients accepted (250 to RCPT), in order
    data: bytes                    # the message: dot-unstuffed, or the BDAT chunks joined
    is_tls: bool
    auth_user: str                 # None without AUTH
    peer: tuple                    # (ip, port) of the client
    local: tuple = None            # (ip, port) the client connected to
    rcpt_params: list = field(default_factory=list)  # one dict per accepted rcpt
    session: int = 0               # index into .sessions
    helo: str = None               # the EHLO/HELO argument
    via: str = "DATA"              # "DATA" or "BDAT"
    reply: str = ""                # the final reply given
    accepted_at: float = 0.0       # time.time() just before the final reply was sent


@dataclass
class Session:
    """One connection."""
    index: int
    peer: tuple
    local: tuple
    started_at: float
    ended_at: float = None
    helo: str = None
    is_tls: bool = False
    auth_user: str = None
    messages: int = 0              # transactions accepted on this connection
    commands: list = field(default_factory=list)  # every command line, decoded


class _Closed(Exception):
    """The peer closed, or the sink decided to close."""


def make_cert(directory, name="sink.test"):
    """A self-signed EC certificate for name (openssl); returns (cert, key) paths."""
    directory = Path(directory)
    key = directory / (name + ".key")
    cert = directory / (name + ".pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=" + name,
         "-addext", "subjectAltName=DNS:" + name],
        check=True, capture_output=True)
    return cert, key


def _check_loopback(host):
    parts = host.split(".")
    ok = len(parts) == 4 and parts[0] == "127" and all(p.isdigit() and int(p) < 256
                                                       for p in parts)
    if not ok:
        raise ValueError("smtp_sink listens on 127.0.0.0/8 only, not %r" % host)


def _reply_bytes(text):
    """"250 ok" or "250-a\\n250 b" or "250 a\\nb" -> wire bytes (a multi-line reply)."""
    lines = text.split("\n")
    code = lines[0][:3]
    out = []
    for i, line in enumerate(lines):
        if line[:3] != code or line[3:4] not in (" ", "-", ""):
            line = code + " " + line
        sep = "-" if i < len(lines) - 1 else " "
        out.append(code + sep + line[4:])
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def _parse_path(arg, keyword):
    """"FROM:<a@b> SIZE=1" -> ("a@b", {"SIZE": "1"}) or None when malformed."""
    if not arg.upper().startswith(keyword):
        return None
    rest = arg[len(keyword):].lstrip(" ")
    if not rest.startswith("<") or ">" not in rest:
        return None
    end = rest.index(">")
    address = rest[1:end]
    params = {}
    for word in rest[end + 1:].split():
        key, eq, value = word.partition("=")
        params[key.upper()] = value if eq else None
    return address, params


class _Script:
    """A list of replies consumed one per use; the last one repeats."""

    def __init__(self, replies):
        assert replies, "an empty reply script"
        self.replies = list(replies)
        self.used = 0

    def next(self):
        reply = self.replies[min(self.used, len(self.replies) - 1)]
        self.used += 1
        return reply


class SmtpSink:
    def __init__(self, host="127.0.0.1", port=0, hostname="sink.test", tls_cert=None,
                 tls_key=None, extensions=DEFAULT_EXTENSIONS, auth=None):
        hosts = [host] if isinstance(host, str) else list(host)
        assert hosts
        for h in hosts:
            _check_loopback(h)
        self.hosts = hosts
        self.host = hosts[0]
        self.port = port
        self.hostname = hostname
        self.extensions = tuple(extensions)
        self.auth = dict(auth) if auth else None
        self.tls_context = None
        if tls_cert is not None:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(str(tls_cert), str(tls_key))
        self.size_limit = None
        for ext in self.extensions:
            if ext.upper().startswith("SIZE ") and ext[5:].strip().isdigit():
                self.size_limit = int(ext[5:].strip()) or None

        self.lock = threading.Condition()
        # behaviour (under self.lock)
        self.greeting = "220 %s ESMTP smtp_sink" % hostname
        self.delay_s = 0.0
        self.data_delay_s = 0.0
        self.close_in_data = None
        self.close_in_data_times = None
        self._rcpt_scripts = {}
        self._mail_script = None
        self._data_script = None
        # records (under self.lock)
        self.messages = []
        self.transactions = []
        self.sessions = []
        self.cuts = 0
        self.parallel = {}
        self.max_parallel = {}
        self.max_parallel_total = 0

        self._listeners = []
        self._threads = []
        self._conns = set()
        self._stopping = False

    # ---- behaviour -------------------------------------------------------------

    def configure(self, **settings):
        """Set greeting, delay_s, data_delay_s, close_in_data, close_in_data_times."""
        with self.lock:
            for key, value in settings.items():
                if key not in ("greeting", "delay_s", "data_delay_s", "close_in_data",
                               "close_in_data_times"):
                    raise TypeError("unknown sink setting %r" % key)
                setattr(self, key, value)

    def set_rcpt_replies(self, address, replies):
        with self.lock:
            self._rcpt_scripts[address.lower()] = _Script(replies)

    def set_mail_replies(self, replies):
        with self.lock:
            self._mail_script = _Script(replies) if replies else None

    def set_data_replies(self, replies):
        with self.lock:
            self._data_script = _Script(replies) if replies else None

    def _setting(self, name):
        with self.lock:
            return getattr(self, name)

    # ---- records ---------------------------------------------------------------

    @property
    def connections(self):
        with self.lock:
            return len(self.sessions)

    def wait_for(self, count, timeout=10.0):
        """Wait until at least count messages were accepted; True when they were."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def wait_sessions(self, count, timeout=10.0):
        """Wait until at least count connections were accepted."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.sessions) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def snapshot(self):
        """A copy of .messages, taken under the lock."""
        with self.lock:
            return list(self.messages)

    # ---- life ------------------------------------------------------------------

    def start(self):
        assert not self._listeners, "started twice"
        port = self.port
        for h in self.hosts:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((h, port))
            except OSError:
                s.close()
                self._close_listeners()
                raise
            s.listen(128)
            port = s.getsockname()[1]
            self._listeners.append(s)
        self.port = port
        for s in self._listeners:
            t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True,
                                 name="sink-accept-%s" % s.getsockname()[0])
            t.start()
            self._threads.append(t)
        return self

    def _close_listeners(self):
        for s in self._listeners:
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        """Stop listening, cut every open connection, wait for the threads."""
        with self.lock:
            self._stopping = True
            conns = list(self._conns)
            self.lock.notify_all()
        for s in self._listeners:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._close_listeners()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(10)
        self._listeners = []
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self, listener):
        while True:
            try:
                conn, peer = listener.accept()
            except OSError:
                return
            with self.lock:
                if self._stopping:
                    conn.close()
                    return
                index = len(self.sessions)
                local = conn.getsockname()
                session = Session(index=index, peer=peer, local=local, started_at=time.time())
                self.sessions.append(session)
                self._conns.add(conn)
                now = self.parallel.get(local[0], 0) + 1
                self.parallel[local[0]] = now
                self.max_parallel[local[0]] = max(self.max_parallel.get(local[0], 0), now)
                self.max_parallel_total = max(self.max_parallel_total,
                                              sum(self.parallel.values()))
                self.lock.notify_all()
            t = threading.Thread(target=self._serve, args=(conn, session), daemon=True,
                                 name="sink-session-%d" % index)
            with self.lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _serve(self, conn, session):
        handler = _Handler(self, conn, session)
        try:
            handler.run()
        except (_Closed, OSError, ssl.SSLError):
            pass
        finally:
            try:
                handler.sock.close()
            except OSError:
                pass
            handler.leave()
            with self.lock:
                self._conns.discard(conn)
                self._conns.discard(handler.sock)
                self.lock.notify_all()


class _Handler:
    """One SMTP server session."""

    def __init__(self, sink, sock, session):
        self.sink = sink
        self.sock = sock
        self.session = session
        self.buf = b""
        self.pos = 0
        self.is_tls = False
        self.helo = None
        self.auth_user = None
        self.bad_greeting = False
        self.has_left = False
        self.reset()

    def leave(self):
        """The session is over for .parallel (at QUIT, before the 221, so a
        client that opens its next connection on the 221 is not counted twice)."""
        with self.sink.lock:
            if not self.has_left:
                self.has_left = True
                self.sink.parallel[self.session.local[0]] -= 1
                self.session.ended_at = time.time()

    def reset(self):
        self.mail_from = None
        self.mail_params = None
        self.rcpts = []
        self.rcpt_params = []
        self.chunks = []
        self.bdat_failed = False

    # ---- bytes -------------------------------------------------------------

    # Input is self.buf from offset self.pos on (no copying per line).

    def fill(self):
        chunk = self.sock.recv(RECV_BYTES)
        if not chunk:
            raise _Closed()
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0

    def drop_input(self):
        self.buf = b""
        self.pos = 0

    def readline(self):
        """One line with its ending (CRLF or a bare LF); None when longer than
        LINE_MAX_BYTES (the rest of that line is read and dropped)."""
        too_long = False
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end + 1]
                self.pos = end + 1
                if too_long or len(line) > LINE_MAX_BYTES:
                    return None
                return line
            if len(self.buf) - self.pos > LINE_MAX_BYTES:
                too_long = True
                self.drop_input()
            self.fill()

    def read_bytes(self, count):
        """Exactly count bytes (BDAT)."""
        parts = []
        while count > 0:
            if self.pos >= len(self.buf):
                self.fill()
            take = min(count, len(self.buf) - self.pos)
            parts.append(self.buf[self.pos:self.pos + take])
            self.pos += take
            count -= take
        return b"".join(parts)

    def reply(self, text):
        delay = self.sink._setting("delay_s")
        if delay:
            time.sleep(delay)
        self.sock.sendall(_reply_bytes(text))

    # ---- session -----------------------------------------------------------

    def run(self):
        greeting = self.sink._setting("greeting")
        if greeting is None:
            # A silent remote: read and drop whatever comes until the peer
            # (or stop()) closes the connection.
            while True:
                self.drop_input()
                self.fill()
        self.reply(greeting)
        if greeting.startswith("421"):
            return
        self.bad_greeting = not greeting.startswith("2")
        while True:
            line = self.readline()
            if line is None:
                self.reply("500 5.5.2 Line too long")
                continue
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            with self.sink.lock:
                self.session.commands.append(text)
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            if self.bad_greeting and verb != "QUIT":
                self.reply("503 5.5.1 No service")
                continue
            handler = getattr(self, "cmd_" + verb, None)
            if handler is None:
                self.reply("500 5.5.2 Command unrecognized")
                continue
            if handler(arg) == "quit":
                return

    def cmd_EHLO(self, arg):
        if not arg.strip():
            self.reply("501 5.5.4 EHLO needs a domain")
            return
        self.helo = arg.strip()
        with self.sink.lock:
            self.session.helo = self.helo
        self.reset()
        lines = ["250-%s" % self.sink.hostname]
        exts = list(self.sink.extensions)
        if self.sink.tls_context is not None and not self.is_tls:
            exts.append("STARTTLS")
        if self.sink.auth is not None:
            exts.append("AUTH PLAIN")
        lines += ["250-" + e for e in exts]
        lines[-1] = "250 " + lines[-1][4:]
        self.reply("\n".join(lines))

    def cmd_HELO(self, arg):
        if not arg.strip():
            self.reply("501 5.5.4 HELO needs a domain")
            return
        self.helo = arg.strip()
        with self.sink.lock:
            self.session.helo = self.helo
        self.reset()
        self.reply("250 %s" % self.sink.hostname)

    def cmd_STARTTLS(self, arg):
        if self.sink.tls_context is None or self.is_tls:
            self.reply("502 5.5.1 STARTTLS not available")
            return
        if arg:
            self.reply("501 5.5.4 No parameters allowed")
            return
        self.reply("220 2.0.0 Ready to start TLS")
        # Bytes pipelined behind STARTTLS are plaintext injection (CVE-2011-0411):
        # drop them.
        self.drop_input()
        self.sock.settimeout(30)
        tls = self.sink.tls_context.wrap_socket(self.sock, server_side=True)
        tls.settimeout(None)
        with self.sink.lock:
            self.sink._conns.add(tls)
            self.session.is_tls = True
        self.sock = tls
        self.is_tls = True
        self.helo = None
        self.auth_user = None
        self.reset()

    def cmd_AUTH(self, arg):
        if self.sink.auth is None:
            self.reply("502 5.5.1 AUTH not available")
            return
        if self.helo is None:
            self.reply("503 5.5.1 EHLO first")
            return
        if self.auth_user is not None or self.mail_from is not None:
            self.reply("503 5.5.1 Already authenticated or in a transaction")
            return
        mech, _, initial = arg.partition(" ")
        if mech.upper() != "PLAIN":
            self.reply("504 5.5.4 Unrecognized authentication type")
            return
        if not initial:
            self.reply("334 ")
            line = self.readline()
            if line is None:
                self.reply("500 5.5.2 Line too long")
                return
            initial = line.rstrip(b"\r\n").decode("ascii", "replace")
        if initial == "*":
            self.reply("501 5.0.0 Authentication cancelled")
            return
        try:
            fields = base64.b64decode(initial, validate=True).split(b"\0")
        except ValueError:
            self.reply("501 5.5.2 Bad base64")
            return
        if len(fields) != 3:
            self.reply("501 5.5.2 Bad PLAIN response")
            return
        user = fields[1].decode("utf-8", "replace")
        password = fields[2].decode("utf-8", "replace")
        if self.sink.auth.get(user) != password:
            self.reply("535 5.7.8 Authentication credentials invalid")
            return
        self.auth_user = user
        with self.sink.lock:
            self.session.auth_user = user
        self.reply("235 2.7.0 Authentication successful")

    def cmd_MAIL(self, arg):
        if self.helo is None:
            self.reply("503 5.5.1 EHLO first")
            return
        if self.mail_from is not None:
            self.reply("503 5.5.1 Nested MAIL command")
            return
        if self.sink.auth is not None and self.auth_user is None:
            self.reply("530 5.7.0 Authentication required")
            return
        parsed = _parse_path(arg, "FROM:")
        if parsed is None:
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        address, params = parsed
        size = params.get("SIZE")
        if size is not None and self.sink.size_limit is not None:
            if not size.isdigit():
                self.reply("501 5.5.4 Bad SIZE")
                return
            if int(size) > self.sink.size_limit:
                self.reply("552 5.3.4 Message size exceeds fixed limit")
                return
        with self.sink.lock:
            script = self.sink._mail_script
            text = script.next() if script else "250 2.1.0 Ok"
        if text.startswith("2"):
            self.mail_from = address
            self.mail_params = params
        self.reply(text)

    def cmd_RCPT(self, arg):
        if self.mail_from is None:
            self.reply("503 5.5.1 Need MAIL first")
            return
        parsed = _parse_path(arg, "TO:")
        if parsed is None:
            self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        address, params = parsed
        with self.sink.lock:
            script = self.sink._rcpt_scripts.get(address.lower())
            text = script.next() if script else "250 2.1.5 Ok"
        if text.startswith("2"):
            self.rcpts.append(address)
            self.rcpt_params.append(params)
        self.reply(text)

    def _cut_now(self, received_bytes):
        """Whether close_in_data says to cut the transfer at this point."""
        with self.sink.lock:
            limit = self.sink.close_in_data
            times = self.sink.close_in_data_times
            if limit is None or received_bytes < limit or times == 0:
                return False
            if times is not None:
                self.sink.close_in_data_times = times - 1
            self.sink.cuts += 1
            return True

    def _cut(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Closed()

    def cmd_DATA(self, arg):
        if self.chunks or self.bdat_failed:
            self.reply("503 5.5.1 DATA after BDAT")
            return
        if self.mail_from is None:
            self.reply("503 5.5.1 Need MAIL first")
            return
        if not self.rcpts:
            self.reply("554 5.5.1 No valid recipients")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        lines = []
        received = 0
        too_long = False
        while True:
            line = self.readline()
            if line is None:
                too_long = True
                received += LINE_MAX_BYTES
            else:
                received += len(line)
                if line == b".\r\n":
                    break
                lines.append(line[1:] if line.startswith(b".") else line)
            if self._cut_now(received):
                self._cut()
        data = b"".join(lines)
        if too_long:
            self.reply("500 5.5.2 Line too long")
            self.reset()
            return
        self.finish(data, "DATA")

    def cmd_BDAT(self, arg):
        words = arg.split()
        if not words or not words[0].isdigit() or len(words) > 2 or \
                (len(words) == 2 and words[1].upper() != "LAST"):
            self.reply("501 5.5.4 Syntax: BDAT <size> [LAST]")
            return
        size = int(words[0])
        is_last = len(words) == 2
        received = sum(len(c) for c in self.chunks)
        limit = self.sink._setting("close_in_data")
        if limit is not None and received + size >= limit:
            # Read up to the cut, then cut (when close_in_data_times allows).
            head = self.read_bytes(max(0, limit - received))
            if self._cut_now(limit):
                self._cut()
            chunk = head + self.read_bytes(size - len(head))
        else:
            chunk = self.read_bytes(size)
        if self.mail_from is None or not self.rcpts or self.bdat_failed:
            self.bdat_failed = not is_last
            if is_last:
                self.reset()
            self.reply("503 5.5.1 No valid transaction for BDAT")
            return
        self.chunks.append(chunk)
        if not is_last:
            self.reply("250 2.0.0 %d octets received" % size)
            return
        self.finish(b"".join(self.chunks), "BDAT")

    def finish(self, data, via):
        """The end of the data: the final reply, the record."""
        sink = self.sink
        data_delay = sink._setting("data_delay_s")
        if data_delay:
            time.sleep(data_delay)
        with sink.lock:
            if sink.size_limit is not None and len(data) > sink.size_limit:
                text = "552 5.3.4 Message size exceeds fixed limit"
            else:
                script = sink._data_script
                text = script.next() if script else "250 2.0.0 Ok: queued"
            record = Received(
                mail_from=self.mail_from, mail_params=self.mail_params, rcpts=list(self.rcpts),
                data=data, is_tls=self.is_tls, auth_user=self.auth_user, peer=self.session.peer,
                local=self.session.local, rcpt_params=list(self.rcpt_params),
                session=self.session.index, helo=self.helo, via=via, reply=text,
                accepted_at=time.time())
            sink.transactions.append(record)
            if text.startswith("2"):
                sink.messages.append(record)
                self.session.messages += 1
            sink.lock.notify_all()
        self.reset()
        self.reply(text)

    def cmd_RSET(self, arg):
        self.reset()
        self.reply("250 2.0.0 Ok")

    def cmd_NOOP(self, arg):
        self.reply("250 2.0.0 Ok")

    def cmd_VRFY(self, arg):
        self.reply("252 2.0.0 Cannot VRFY user")

    def cmd_QUIT(self, arg):
        self.leave()
        self.reply("221 2.0.0 Bye")
        return "quit"
