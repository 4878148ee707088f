//! Checks an upload before anything is stored: the format is sniffed from the bytes (never the
//! file name or the declared type) and the dimensions are read from the header alone, so that a
//! small file declaring a huge canvas is refused before any pixel is decoded.

use std::io::Cursor;

use super::{ImageFormat, Picture};

#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest canvas accepted, in pixels (width × height).
    pub max_pixels: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a JPEG, PNG or WebP image")]
    UnsupportedFormat,
    #[error("the {0} header cannot be read: {1}")]
    UnreadableHeader(&'static str, String),
    #[error("the image is {width}x{height} pixels, more than the limit of {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("the image has no pixels ({width}x{height})")]
    NoPixels { width: u32, height: u32 },
}

/// The original's format and size, read from its header.
pub fn inspect(bytes: &[u8], limits: UploadLimits) -> Result<Picture, UploadError> {
    if bytes.is_empty() {
        return Err(UploadError::Empty);
    }
    let format = match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) => ImageFormat::Jpeg,
        Ok(image::ImageFormat::Png) => ImageFormat::Png,
        Ok(image::ImageFormat::WebP) => ImageFormat::Webp,
        _ => return Err(UploadError::UnsupportedFormat),
    };
    let (width, height) = match format {
        // libjpeg-turbo reads the header in place; the `image` crate would copy the whole file.
        ImageFormat::Jpeg => turbojpeg::read_header(bytes)
            .map(|header| (header.width as u32, header.height as u32))
            .map_err(|e| UploadError::UnreadableHeader("jpeg", e.to_string()))?,
        _ => image::ImageReader::with_format(Cursor::new(bytes), to_image(format))
            .into_dimensions()
            .map_err(|e| UploadError::UnreadableHeader(format.as_str(), e.to_string()))?,
    };
    if width == 0 || height == 0 {
        return Err(UploadError::NoPixels { width, height });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(UploadError::TooManyPixels {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    Ok(Picture {
        format,
        width,
        height,
        bytes: bytes.len() as u64,
    })
}

pub(super) fn to_image(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::pictures::png_declaring;

    const LIMITS: UploadLimits = UploadLimits {
        max_pixels: 50_000_000,
    };

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbaImage::new(width, height)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_real_png_is_measured() {
        let picture = inspect(&png(40, 30), LIMITS).unwrap();
        assert_eq!(
            (picture.format, picture.width, picture.height),
            (ImageFormat::Png, 40, 30)
        );
    }

    #[test]
    fn a_huge_declared_canvas_is_refused_from_the_header() {
        let bytes = png_declaring(30_000, 30_000);
        assert!(bytes.len() < 100);
        assert_eq!(
            inspect(&bytes, LIMITS),
            Err(UploadError::TooManyPixels {
                width: 30_000,
                height: 30_000,
                limit: LIMITS.max_pixels
            })
        );
    }

    #[test]
    fn text_named_like_a_picture_is_not_an_image() {
        assert_eq!(
            inspect(b"hello, I am a .jpg", LIMITS),
            Err(UploadError::UnsupportedFormat)
        );
        assert_eq!(inspect(b"", LIMITS), Err(UploadError::Empty));
        assert_eq!(
            inspect(b"GIF89a....", LIMITS),
            Err(UploadError::UnsupportedFormat)
        );
    }

    #[test]
    fn a_magic_number_with_a_broken_header_is_unreadable() {
        assert!(matches!(
            inspect(b"\xff\xd8\xff\xe0garbage", LIMITS),
            Err(UploadError::UnreadableHeader("jpeg", _))
        ));
        assert!(matches!(
            inspect(b"\x89PNG\r\n\x1a\n\0\0", LIMITS),
            Err(UploadError::UnreadableHeader("png", _))
        ));
    }
}
