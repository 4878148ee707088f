"""A client that writes its whole request before reading the answer, as Python's http.client
(and so `requests`) does. Prints the status line's code and the body; exits 1, naming the error,
when the connection breaks before the answer could be read.

    send_then_read.py HOST:PORT json|upload BYTES

With ORDERS_API_KEY set, the request carries it (Authorization: Bearer).
"""

import http.client
import os
import struct
import sys
import zlib


def png_header() -> bytes:
    """A PNG's signature, header (10x10 RGB) and the start of its pixel data: the file passes
    the first look at its header, so the upload streams on until the size limit stops it."""
    ihdr = struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    signature = b"\x89PNG\r\n\x1a\n"
    header = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    # The start of a (long) pixel data chunk: where a reader of the header stops.
    return signature + header + struct.pack(">I", 0x7FFFFFFF) + b"IDAT"


def body(kind: str, size: int) -> tuple[bytes, str]:
    if kind == "json":
        return (b'{"product": "' + b"x" * size + b'"}', "application/json")
    boundary = "lingeringboundary"
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return (head + png_header() + b"\xff" * size + tail, f"multipart/form-data; boundary={boundary}")


def main() -> int:
    address, kind, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    host, port = address.rsplit(":", 1)
    payload, content_type = body(kind, size)
    path = "/orders" if kind == "json" else "/images"
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"Content-Type": content_type}
        if os.environ.get("ORDERS_API_KEY"):
            headers["Authorization"] = "Bearer " + os.environ["ORDERS_API_KEY"]
        connection.request("POST", path, body=payload, headers=headers)
        response = connection.getresponse()
        print(response.status)
        print(response.read().decode())
    except OSError as error:
        print(f"error: {error!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
