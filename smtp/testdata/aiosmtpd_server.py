"""Test fixture: an aiosmtpd server on loopback for smtp/*_test.ts.

Run with /usr/bin/python3 (Debian python3-aiosmtpd). It listens on a free
port, prints "READY <port>" on stdout, saves each delivered message as
<dir>/<n>.eml with an <n>.json envelope beside it, appends each AUTH attempt
to <dir>/auth.log as "<mechanism> <ok|refused>", and exits when stdin closes.
"""
import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main() -> None:
    # aiosmtpd 1.4 warns about its own deprecated attribute on every login, and logs a
    # traceback for each refused TLS handshake, which the tests cause on purpose.
    warnings.simplefilter("ignore")
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--mode", choices=["plain", "starttls", "implicit"], default="plain")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()

    counter = {"n": 0}

    def record_auth(mechanism: str, ok: bool) -> None:
        # Written before the reply goes out, so a client that has its answer
        # finds its attempt in the log.
        with open(os.path.join(args.dir, "auth.log"), "a") as f:
            f.write(f"{mechanism} {'ok' if ok else 'refused'}\n")

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            counter["n"] += 1
            base = os.path.join(args.dir, str(counter["n"]))
            with open(base + ".json", "w") as f:
                json.dump({
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "mail_options": envelope.mail_options,
                    "authenticated": bool(session.authenticated),
                    "tls": session.ssl is not None,
                }, f)
            # The test counts .eml files as delivered messages: the name appears
            # only once the message and its envelope are complete on disk.
            with open(base + ".eml.part", "wb") as f:
                f.write(envelope.original_content)
            os.rename(base + ".eml.part", base + ".eml")
            return "250 2.0.0 Message accepted for delivery"

        # aiosmtpd has PLAIN and LOGIN built in; CRAM-MD5 (RFC 2195) is added
        # through its handler hook (auth_<NAME>, "__" standing for "-").
        async def auth_CRAM__MD5(self, server, cmd_args):
            challenge = f"<{secrets.token_hex(8)}@aiosmtpd.fixture>"
            blob = await server.challenge_auth(challenge)
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=False)
            try:
                user, digest = blob.decode().rsplit(" ", 1)
            except ValueError:
                return AuthResult(success=False, handled=False)
            want = hmac.new((args.password or "").encode(), challenge.encode(), hashlib.md5).hexdigest()
            ok = user == args.user and hmac.compare_digest(digest, want)
            record_auth("CRAM-MD5", ok)
            return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == args.user
              and auth_data.password.decode() == args.password)
        record_auth(mechanism, ok)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    tls_context = None
    if args.mode != "plain":
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)

    def factory():
        kwargs = {"enable_SMTPUTF8": True, "hostname": "aiosmtpd.fixture"}
        if args.user is not None:
            kwargs.update(authenticator=authenticator, auth_require_tls=False)
        if args.mode == "starttls":
            kwargs.update(tls_context=tls_context, require_starttls=True)
        return SMTP(Handler(), **kwargs)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, "127.0.0.1", 0,
            ssl=tls_context if args.mode == "implicit" else None,
        )
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await loop.run_in_executor(None, sys.stdin.buffer.read)
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
