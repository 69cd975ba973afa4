#!/usr/bin/python3
"""bench/imap_tls_memory.py - what an IDLE IMAP session costs toasterd
over plaintext and over implicit TLS (imaps), side by side in one run.

Starts toasterd (TOASTERD, default ./build/toasterd) on high loopback ports
with 2 reactors and 100 users, opens COUNT sessions (LOGIN, SELECT INBOX,
IDLE) with Python's asyncio (and ssl for imaps), waits for jemalloc to give
back the login storm's pages, and reads toasterd's VmRSS: (RSS with every
session idling - RSS before) / COUNT. Plaintext first, then TLS, each on a
fresh daemon. Usage: bench/imap_tls_memory.py [COUNT] (default 3000; the
process's open-file limit must hold COUNT + 100).
"""
import asyncio
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
TOASTERD = os.environ.get("TOASTERD", "./build/toasterd")
PORTS = {"smtp_listen": 32525, "submission_listen": 32587, "submissions_listen": 32465,
         "imap_listen": 32143, "imaps_listen": 32993, "managesieve_listen": 34190,
         "http_listen": 38080}


def start(work):
    with open(os.path.join(work, "users"), "w") as f:
        f.writelines("u%d@example.test:{PLAIN}x\n" % i for i in range(100))
    conf = os.path.join(work, "toasterd.conf")
    with open(conf, "w") as f:
        for key, port in PORTS.items():
            f.write("%s = 127.0.0.1:%d\n" % (key, port))
        f.write("data_dir = %s\nmax_connections = %d\nmax_connections_per_ip = %d\n"
                "reactor_threads = 2\nlog_level = warning\nfsync = no\n"
                % (work, COUNT + 100, COUNT + 100))
    proc = subprocess.Popen([TOASTERD, "-c", conf], stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    return proc


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1])


async def session(i, port, ctx, gate):
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        await reader.readline()
        writer.write(b"a LOGIN u%d@example.test x\r\nb SELECT INBOX\r\nc IDLE\r\n" % (i % 100))
        while not (await reader.readline()).startswith(b"+ "):
            pass
        return writer


async def measure(pid, port, ctx):
    before = rss_kib(pid)
    gate = asyncio.Semaphore(200)
    writers = await asyncio.gather(*[session(i, port, ctx, gate) for i in range(COUNT)])
    await asyncio.sleep(12)  # jemalloc returns dirty pages after about 10 s
    after = rss_kib(pid)
    for writer in writers:
        writer.close()
    return before, after


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    print("| transport | sessions | toasterd RSS before | with them | per session |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, port, client_ctx in (("IMAP", PORTS["imap_listen"], None),
                                   ("IMAPS (TLS 1.3)", PORTS["imaps_listen"], ctx)):
        work = tempfile.mkdtemp(prefix="toaster-tls-mem.")
        proc = start(work)
        try:
            before, after = asyncio.run(measure(proc.pid, port, client_ctx))
        finally:
            proc.terminate()
            proc.wait()
            shutil.rmtree(work, ignore_errors=True)
        print("| %s | %d | %.1f MiB | %.1f MiB | %.2f KiB |"
              % (name, COUNT, before / 1024, after / 1024, (after - before) / COUNT))


main()
