//! Test pictures, made in memory: real encoders' output, plus the broken and hostile kinds.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// A `side`x`side` RGB PNG of noise: it does not compress, so the file is about 3 x side² bytes.
pub fn noise_png(side: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_u32;
    let image = RgbImage::from_fn(side, side, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        Rgb([next(), next(), next()])
    });
    encode(DynamicImage::ImageRgb8(image), ImageFormat::Png)
}

/// A `side`x`side` RGB PNG of a pattern that compresses well: a small file that takes long to
/// decode (a 7000-pixel side is 49 MP, about 150 MB of pixels, in a few MB).
pub fn patterned_png(side: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(side, side, |x, y| Rgb([(x / 64) as u8, (y / 64) as u8, 0]));
    encode(DynamicImage::ImageRgb8(image), ImageFormat::Png)
}

/// A baseline JPEG with a gradient, `width`x`height`.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    encode(DynamicImage::ImageRgb8(image), ImageFormat::Jpeg)
}

/// A JPEG whose top half is red and bottom half blue, stored sideways: EXIF orientation 6
/// says "rotate 90° clockwise to show". Shown upright it is `height`x`width`, red on the right.
pub fn sideways_jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |_, y| {
        if y < height / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let plain = encode(DynamicImage::ImageRgb8(image), ImageFormat::Jpeg);
    with_orientation(&plain, 6)
}

/// Inserts an EXIF APP1 segment holding only `Orientation` after the JPEG's SOI marker.
pub fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8u32.to_le_bytes()); // first IFD at offset 8
    tiff.extend(1u16.to_le_bytes()); // one entry
    tiff.extend(0x0112u16.to_le_bytes()); // Orientation
    tiff.extend(3u16.to_le_bytes()); // SHORT
    tiff.extend(1u32.to_le_bytes()); // one value
    tiff.extend(orientation.to_le_bytes());
    tiff.extend([0, 0]);
    tiff.extend(0u32.to_le_bytes()); // no next IFD
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((segment.len() + 2) as u16).to_be_bytes());
    out.extend(segment);
    out.extend(&jpeg[2..]);
    out
}

/// A PNG with transparency: an opaque green disc on a transparent square.
pub fn png_with_alpha(size: u32) -> Vec<u8> {
    let centre = size as f64 / 2.0;
    let image = RgbaImage::from_fn(size, size, |x, y| {
        let d = ((x as f64 - centre).powi(2) + (y as f64 - centre).powi(2)).sqrt();
        if d < centre * 0.8 {
            Rgba([0, 200, 0, 255])
        } else {
            Rgba([0, 0, 0, 0])
        }
    });
    encode(DynamicImage::ImageRgba8(image), ImageFormat::Png)
}

/// A PNG whose header declares `width`x`height` with almost no data: a decompression bomb's
/// shape without its payload.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend(height.to_be_bytes());
    header.extend([8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunks: [(&[u8; 4], Vec<u8>); 3] = [
        (b"IHDR", header),
        (b"IDAT", vec![0x78, 0x9c, 0x03, 0]),
        (b"IEND", vec![]),
    ];
    for (kind, data) in chunks {
        let mut chunk = kind.to_vec();
        chunk.extend(&data);
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(&chunk);
        out.extend(crc32(&chunk).to_be_bytes());
    }
    out
}

/// A JPEG cut in half: its header reads fine, its pixels do not.
pub fn truncated_jpeg() -> Vec<u8> {
    let whole = jpeg(640, 480);
    whole[..whole.len() / 2].to_vec()
}

pub fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("a decodable image")
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A multipart form with the picture as field `file`.
pub fn form(bytes: &[u8], file_name: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file_name.to_owned()),
    )
}
