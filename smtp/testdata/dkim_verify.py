"""Test fixture: verifies a message's DKIM signature with dkimpy (Debian python3-dkim).

Usage: dkim_verify.py MESSAGE_FILE DNS_TXT_RECORD

The DNS lookup is a function that serves DNS_TXT_RECORD for any name, so no
resolver is involved. Prints a JSON object: {"ok": bool, "error": str|null}.
"""
import json
import logging
import sys

import dkim


def main() -> None:
    path, record = sys.argv[1], sys.argv[2].encode()
    with open(path, "rb") as f:
        message = f.read()
    names = []

    def dnsfunc(name, timeout=5):
        names.append(name.decode() if isinstance(name, bytes) else name)
        return record

    logger = logging.getLogger("dkim_verify")
    try:
        ok = dkim.verify(message, dnsfunc=dnsfunc, logger=logger)
        error = None
    except dkim.DKIMException as e:
        ok, error = False, str(e)
    print(json.dumps({"ok": bool(ok), "error": error, "names": names}))


if __name__ == "__main__":
    main()
