"""Writes COUNT signed deliveries for the inbox benchmark, one per line:
`message id <TAB> token <TAB> body`, each with its own message id and token (as QStash's
deliveries), signed with the local dev server's public key for URL."""

import base64
import hashlib
import hmac
import json
import secrets
import sys
import time

DEV_KEY = b"sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    url, count, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    now = int(time.time())
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    out = sys.stdout
    for i in range(1, count + 1):
        body = json.dumps({"order": i, "item": "bench"}, separators=(",", ":")).encode()
        claims = {
            "aud": "",
            "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode(),
            "exp": now + 300, "iat": now, "iss": "Upstash",
            "jti": "jwt_" + secrets.token_hex(12), "nbf": now, "sub": url,
        }
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(DEV_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        out.write(f"{prefix}{i}\t{header}.{payload}.{b64url(mac)}\t{body.decode()}\n")


if __name__ == "__main__":
    main()
