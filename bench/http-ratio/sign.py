"""Writes COUNT signed deliveries for scripts/http-ratio.sh, one per line:
`message id <TAB> token <TAB> body`. Each body is a 1024-byte JSON `Order`
(`{"order":N,"item":"xxx..."}`), each token is signed as QStash signs (HS256, claims in
QStash's order, `body` with padding, `exp` 300 s after now) with the local dev server's public
current key, for URL (its `sub`)."""

import base64
import hashlib
import hmac
import json
import secrets
import sys
import time

DEV_KEY = b"sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
BODY_BYTES = 1024


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def body(order):
    bare = json.dumps({"order": order, "item": ""}, separators=(",", ":"))
    pad = BODY_BYTES - len(bare)
    text = json.dumps({"order": order, "item": "x" * pad}, separators=(",", ":")).encode()
    assert len(text) == BODY_BYTES
    return text


def main():
    url, count = sys.argv[1], int(sys.argv[2])
    now = int(time.time())
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    out = sys.stdout
    for i in range(1, count + 1):
        data = body(i)
        claims = {
            "aud": "",
            "body": base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode(),
            "exp": now + 300, "iat": now, "iss": "Upstash",
            "jti": "jwt_" + secrets.token_hex(12), "nbf": now, "sub": url,
        }
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(DEV_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        token = f"{header}.{payload}.{b64url(mac)}"
        out.write(f"msg_{secrets.token_hex(8)}_{i}\t{token}\t{data.decode()}\n")


if __name__ == "__main__":
    main()
