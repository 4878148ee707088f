"""One anchor's resize, in this process: `python anchor.py TOOL IN OUT REPEAT SIZE`.

Reads IN into memory, then REPEAT times decodes, makes the thumbnail (fit inside SIZE x SIZE)
and encodes it (JPEG q85, or PNG when OUT ends in .png), printing each run's CPU time in ms
(the whole process's: libvips works on threads of its own).
Tools: pillow-resize (full decode + resize LANCZOS), pillow-thumbnail (Image.thumbnail(),
which shrinks JPEGs on load), vips (pyvips thumbnail_buffer, one thread, no cache).
"""

import io
import sys
import time


def fit(width, height, box):
    scale = min(box / width, box / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def pillow(bytes_, size, png, thumbnail):
    from PIL import Image
    image = Image.open(io.BytesIO(bytes_))
    if thumbnail:
        image.thumbnail((size, size))
    else:
        image.load()
        image = image.resize(fit(*image.size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if png:
        image.save(out, "PNG")
    else:
        image.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


def vips(bytes_, size, png):
    import pyvips
    image = pyvips.Image.thumbnail_buffer(bytes_, size, height=size, size="down")
    return image.write_to_buffer(".png" if png else ".jpg[Q=85]")


def main():
    tool, source, target, repeat, size = sys.argv[1:6]
    repeat, size = int(repeat), int(size)
    png = target.endswith(".png")
    if tool == "vips":
        import pyvips
        pyvips.cache_set_max(0)  # each run must do the work again
        make = lambda b: vips(b, size, png)  # noqa: E731
    elif tool in ("pillow-resize", "pillow-thumbnail"):
        make = lambda b: pillow(b, size, png, tool == "pillow-thumbnail")  # noqa: E731
    else:
        raise SystemExit(f"unknown tool {tool}")
    with open(source, "rb") as f:
        bytes_ = f.read()
    result = b""
    for _ in range(repeat):
        started = time.process_time()
        result = make(bytes_)
        print(f"{(time.process_time() - started) * 1000:.3f}", flush=True)
    with open(target, "wb") as f:
        f.write(result)


if __name__ == "__main__":
    main()
