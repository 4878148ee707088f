"""A client that writes its whole request before reading the answer, as Python's http.client
(and so `requests`) does. Prints the status line's code and the body; exits 1, naming the error,
when the connection breaks before the answer could be read.

    send_then_read.py HOST:PORT json|upload BYTES
"""

import http.client
import sys


def body(kind: str, size: int) -> tuple[bytes, str]:
    if kind == "json":
        return (b'{"product": "' + b"x" * size + b'"}', "application/json")
    boundary = "lingeringboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\n"
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return (head + b"\xff" * size + tail, f"multipart/form-data; boundary={boundary}")


def main() -> int:
    address, kind, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = address.rsplit(":", 1)
    payload, content_type = body(kind, size)
    path = "/orders" if kind == "json" else "/images"
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=payload, headers={"Content-Type": content_type})
        response = connection.getresponse()
        print(response.status)
        print(response.read().decode())
    except OSError as error:
        print(f"error: {error!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
