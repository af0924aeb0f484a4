"""Test fixture: parse an RFC 5322 message with Python's email package.

Prints JSON: decoded headers and the MIME tree, each leaf with its decoded
text (text parts) or the SHA-256 of its decoded bytes (other parts).
"""
import email
import email.policy
import hashlib
import json
import sys


def part_tree(part):
    node = {
        "content_type": part.get_content_type(),
        "filename": part.get_filename(),
        "disposition": part.get_content_disposition(),
        "transfer_encoding": part.get("Content-Transfer-Encoding"),
    }
    if part.is_multipart():
        node["parts"] = [part_tree(p) for p in part.iter_parts()]
    else:
        data = part.get_payload(decode=True) or b""
        node["sha256"] = hashlib.sha256(data).hexdigest()
        node["size"] = len(data)
        if part.get_content_maintype() == "text":
            node["text"] = part.get_content()
    return node


def main() -> None:
    with open(sys.argv[1], "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    headers = {}
    for name, value in msg.items():
        headers.setdefault(name.lower(), []).append(str(value))
    print(json.dumps({
        "headers": headers,
        "defects": [str(d) for d in msg.defects],
        "tree": part_tree(msg),
    }))


if __name__ == "__main__":
    main()
