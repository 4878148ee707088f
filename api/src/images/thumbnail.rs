//! Makes a thumbnail. JPEGs, the common case, are decoded by libjpeg-turbo straight at 1/2, 1/4
//! or 1/8 size ("shrink-on-load": the DCT skips the detail the thumbnail cannot show), never
//! below twice the target so the final Lanczos3 pass (fast_image_resize, SIMD) keeps full
//! quality. PNG and WebP are decoded by the `image` crate. EXIF orientation is applied to the
//! small result, and alpha is resized premultiplied so that transparent edges keep their colour.

use std::io::Cursor;

use fast_image_resize::images::Image as Pixels;
use fast_image_resize::{PixelType, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};
use turbojpeg::{Decompressor, PixelFormat, ScalingFactor};

use super::upload::to_image;
use super::{ImageFormat, Picture};

/// How the thumbnail relates to its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// The whole picture, as large as fits inside the box, aspect ratio kept; never enlarged.
    Inside,
    /// Exactly the box: scaled to fill it and centre-cropped.
    Cover,
}

/// The thumbnail's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// JPEG, or PNG when the picture has transparent pixels.
    Auto,
    Jpeg,
    Png,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailSpec {
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    pub format: OutputFormat,
    /// JPEG quality, 1..=100.
    pub jpeg_quality: u8,
}

impl Default for ThumbnailSpec {
    fn default() -> Self {
        Self {
            width: 300,
            height: 300,
            fit: Fit::Inside,
            format: OutputFormat::Auto,
            jpeg_quality: 85,
        }
    }
}

pub struct Thumbnail {
    pub bytes: Vec<u8>,
    pub picture: Picture,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the image cannot be decoded: {0}")]
    Decode(String),
    #[error("the thumbnail cannot be made: {0}")]
    Resize(String),
    #[error("the thumbnail cannot be encoded: {0}")]
    Encode(String),
    #[error(
        "decoding the image needs {} MiB, more than the limit of {} MiB (worker.decode_max_bytes)",
        needed.div_ceil(MIB), limit / MIB
    )]
    TooMuchMemory { needed: u64, limit: u64 },
}

const MIB: u64 = 1024 * 1024;

/// What one decode may cost, so that a hostile file within the upload limits cannot take a
/// worker's memory or hold its thread for long.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Bytes the decoded pixels (and the decoder's own whole-image buffers) may take.
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    /// Every 8-bit picture within the 50 MP upload limit fits (RGBA: 200 MB).
    fn default() -> Self {
        Self {
            max_bytes: 256 * MIB,
        }
    }
}

/// Progressive JPEGs from real encoders have about ten scans; files with thousands of tiny
/// scans make libjpeg-turbo work for minutes (libjpeg-turbo's own advice: cap them).
const MAX_JPEG_SCANS: u32 = 100;

impl DecodeLimits {
    fn check(&self, needed: u64) -> Result<(), RenderError> {
        if needed > self.max_bytes {
            return Err(RenderError::TooMuchMemory {
                needed,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// Decoded pixels, 3 (RGB) or 4 (RGBA) bytes each, as stored (before orientation).
struct Decoded {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    alpha: bool,
}

pub fn render(
    bytes: &[u8],
    spec: &ThumbnailSpec,
    limits: DecodeLimits,
) -> Result<Thumbnail, RenderError> {
    let format = match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) => ImageFormat::Jpeg,
        Ok(image::ImageFormat::Png) => ImageFormat::Png,
        Ok(image::ImageFormat::WebP) => ImageFormat::Webp,
        _ => return Err(RenderError::Decode("not a JPEG, PNG or WebP image".into())),
    };
    let (decoded, orientation) = match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, spec, limits)?,
        other => decode_other(bytes, other, limits)?,
    };
    let (width, height) = stored_target(decoded.width, decoded.height, orientation, spec);
    let alpha = decoded.alpha;
    let resized = resize(decoded, width, height, spec.fit)?;
    let mut picture = to_dynamic(resized, width, height, alpha)?;
    picture.apply_orientation(orientation);
    encode(picture, spec)
}

/// The thumbnail's size in the stored (unrotated) orientation.
fn stored_target(
    width: u32,
    height: u32,
    orientation: Orientation,
    spec: &ThumbnailSpec,
) -> (u32, u32) {
    let swaps = swaps_axes(orientation);
    let (shown_w, shown_h) = if swaps {
        (height, width)
    } else {
        (width, height)
    };
    let (w, h) = match spec.fit {
        Fit::Inside => fit_inside(shown_w, shown_h, spec.width, spec.height),
        Fit::Cover => (spec.width, spec.height),
    };
    if swaps { (h, w) } else { (w, h) }
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// The largest size with the picture's aspect ratio inside the box, never larger than it is.
fn fit_inside(width: u32, height: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    if width <= box_w && height <= box_h {
        return (width, height);
    }
    let scale = (f64::from(box_w) / f64::from(width)).min(f64::from(box_h) / f64::from(height));
    let w = (f64::from(width) * scale)
        .round()
        .clamp(1.0, f64::from(box_w));
    let h = (f64::from(height) * scale)
        .round()
        .clamp(1.0, f64::from(box_h));
    (w as u32, h as u32)
}

fn jpeg_orientation(bytes: &[u8]) -> Orientation {
    jpeg_exif(bytes)
        .and_then(|exif| exif::Reader::new().read_raw(exif.to_vec()).ok())
        .and_then(|exif| {
            exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
                .and_then(|field| field.value.get_uint(0))
        })
        .and_then(|value| u8::try_from(value).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

/// The EXIF block of a JPEG (its APP1 segment that starts with `Exif\0\0`).
fn jpeg_exif(bytes: &[u8]) -> Option<&[u8]> {
    jpeg_segments(bytes)
        .find(|(marker, payload)| *marker == 0xE1 && payload.starts_with(b"Exif\0\0"))
        .map(|(_, payload)| &payload[6..])
}

/// Whether the frame header says progressive (SOF2, SOF6, SOF10, SOF14): such a JPEG is
/// decoded through a buffer of the whole image's coefficients.
fn jpeg_is_progressive(bytes: &[u8]) -> bool {
    jpeg_segments(bytes).any(|(marker, _)| matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE))
}

/// The marker segments before the image data, as (marker, payload): a few hundred bytes read
/// instead of the file. Stops at the first scan, the end of the image or anything malformed.
fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut at = 2; // after SOI
    std::iter::from_fn(move || {
        loop {
            if at + 4 > bytes.len() || bytes[at] != 0xFF {
                return None;
            }
            match bytes[at + 1] {
                0xFF => at += 1,            // fill byte
                0xDA | 0xD9 => return None, // start of scan, end of image: no metadata after
                marker => {
                    let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
                    let payload = bytes.get(at + 4..at + 2 + length.max(2))?;
                    at += 2 + length.max(2);
                    return Some((marker, payload));
                }
            }
        }
    })
}

fn decode_jpeg(
    bytes: &[u8],
    spec: &ThumbnailSpec,
    limits: DecodeLimits,
) -> Result<(Decoded, Orientation), RenderError> {
    let orientation = jpeg_orientation(bytes);
    let decode_error = |e: turbojpeg::Error| RenderError::Decode(e.to_string());
    let mut decompressor = Decompressor::new().map_err(decode_error)?;
    decompressor
        .set_scan_limit(MAX_JPEG_SCANS)
        .map_err(decode_error)?;
    let header = decompressor.read_header(bytes).map_err(decode_error)?;
    let (target_w, target_h) =
        stored_target(header.width as u32, header.height as u32, orientation, spec);
    // The smallest DCT scale that still leaves at least twice the target in both directions.
    let factor = [
        ScalingFactor::ONE_EIGHTH,
        ScalingFactor::ONE_QUARTER,
        ScalingFactor::ONE_HALF,
    ]
    .into_iter()
    .find(|factor| {
        let scaled = header.scaled(*factor);
        scaled.width >= 2 * target_w as usize && scaled.height >= 2 * target_h as usize
    })
    .unwrap_or(ScalingFactor::ONE);
    decompressor
        .set_scaling_factor(factor)
        .map_err(decode_error)?;
    let scaled = header.scaled(factor);
    let output = 3 * scaled.width as u64 * scaled.height as u64;
    // At most 2 bytes per coefficient, 3 full-size components (4:4:4, the worst case).
    let coefficients = if jpeg_is_progressive(bytes) {
        6 * header.width as u64 * header.height as u64
    } else {
        0
    };
    limits.check(output + coefficients)?;
    let mut image = turbojpeg::Image {
        pixels: vec![0u8; 3 * scaled.width * scaled.height],
        width: scaled.width,
        pitch: 3 * scaled.width,
        height: scaled.height,
        format: PixelFormat::RGB,
    };
    match decompressor.decompress(bytes, image.as_deref_mut()) {
        Ok(()) => Ok((
            Decoded {
                width: scaled.width as u32,
                height: scaled.height as u32,
                pixels: image.pixels,
                alpha: false,
            },
            orientation,
        )),
        // libjpeg-turbo cannot turn CMYK into RGB; the `image` crate can.
        Err(_)
            if header.colorspace == turbojpeg::Colorspace::CMYK
                || header.colorspace == turbojpeg::Colorspace::YCCK =>
        {
            let (decoded, _) = decode_other(bytes, ImageFormat::Jpeg, limits)?;
            Ok((decoded, orientation))
        }
        Err(error) => Err(decode_error(error)),
    }
}

fn decode_other(
    bytes: &[u8],
    format: ImageFormat,
    limits: DecodeLimits,
) -> Result<(Decoded, Orientation), RenderError> {
    let decode_error = |e: image::ImageError| RenderError::Decode(e.to_string());
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), to_image(format));
    let mut bound = image::Limits::default();
    bound.max_alloc = Some(limits.max_bytes);
    reader.limits(bound);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let color = decoder.color_type();
    let alpha = color.has_alpha();
    // Anything but 8-bit RGB(A) is converted, a second whole-image buffer.
    let (width, height) = decoder.dimensions();
    let converted = match color {
        image::ColorType::Rgb8 | image::ColorType::Rgba8 => 0,
        _ => u64::from(width) * u64::from(height) * if alpha { 4 } else { 3 },
    };
    limits.check(decoder.total_bytes().saturating_add(converted))?;
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    let pixels = if alpha {
        image.into_rgba8().into_raw()
    } else {
        image.into_rgb8().into_raw()
    };
    Ok((
        Decoded {
            width,
            height,
            pixels,
            alpha,
        },
        orientation,
    ))
}

fn resize(mut decoded: Decoded, width: u32, height: u32, fit: Fit) -> Result<Vec<u8>, RenderError> {
    let pixel_type = if decoded.alpha {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let error = |e: &dyn std::fmt::Display| RenderError::Resize(e.to_string());
    let source = Pixels::from_slice_u8(
        decoded.width,
        decoded.height,
        &mut decoded.pixels,
        pixel_type,
    )
    .map_err(|e| error(&e))?;
    let mut target = Pixels::new(width, height, pixel_type);
    let mut options = ResizeOptions::new();
    if fit == Fit::Cover {
        options = options.fit_into_destination(Some((0.5, 0.5)));
    }
    Resizer::new()
        .resize(&source, &mut target, &options)
        .map_err(|e| error(&e))?;
    Ok(target.into_vec())
}

fn to_dynamic(
    pixels: Vec<u8>,
    width: u32,
    height: u32,
    alpha: bool,
) -> Result<DynamicImage, RenderError> {
    let wrong = || RenderError::Resize("the resized buffer has the wrong size".into());
    Ok(if alpha {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, pixels).ok_or_else(wrong)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, pixels).ok_or_else(wrong)?)
    })
}

fn encode(picture: DynamicImage, spec: &ThumbnailSpec) -> Result<Thumbnail, RenderError> {
    let transparent = match &picture {
        DynamicImage::ImageRgba8(rgba) => rgba.pixels().any(|p| p.0[3] < 255),
        _ => false,
    };
    let format = match spec.format {
        OutputFormat::Jpeg => ImageFormat::Jpeg,
        OutputFormat::Png => ImageFormat::Png,
        OutputFormat::Auto if transparent => ImageFormat::Png,
        OutputFormat::Auto => ImageFormat::Jpeg,
    };
    let (width, height) = (picture.width(), picture.height());
    let bytes = match format {
        ImageFormat::Jpeg => {
            let rgb = picture.into_rgb8();
            let image = turbojpeg::Image {
                pixels: rgb.as_raw().as_slice(),
                width: width as usize,
                pitch: 3 * width as usize,
                height: height as usize,
                format: PixelFormat::RGB,
            };
            turbojpeg::compress(
                image,
                i32::from(spec.jpeg_quality),
                turbojpeg::Subsamp::Sub2x2,
            )
            .map_err(|e| RenderError::Encode(e.to_string()))?
            .to_vec()
        }
        _ => {
            let mut out = Vec::new();
            let picture = if transparent {
                picture
            } else {
                DynamicImage::ImageRgb8(picture.into_rgb8())
            };
            picture
                .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
                .map_err(|e| RenderError::Encode(e.to_string()))?;
            out
        }
    };
    Ok(Thumbnail {
        picture: Picture {
            format,
            width,
            height,
            bytes: bytes.len() as u64,
        },
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DecodeLimits = DecodeLimits {
        max_bytes: 256 * MIB,
    };

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(image)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .unwrap();
        out
    }

    fn size(thumbnail: &Thumbnail) -> (u32, u32) {
        (thumbnail.picture.width, thumbnail.picture.height)
    }

    fn decode(bytes: &[u8]) -> DynamicImage {
        image::load_from_memory(bytes).unwrap()
    }

    #[test]
    fn a_large_jpeg_fits_inside_the_box_keeping_its_aspect_ratio() {
        let thumbnail = render(&jpeg(2000, 1000), &ThumbnailSpec::default(), LIMITS).unwrap();
        assert_eq!(size(&thumbnail), (300, 150));
        assert_eq!(thumbnail.picture.format, ImageFormat::Jpeg);
        let decoded = decode(&thumbnail.bytes);
        assert_eq!((decoded.width(), decoded.height()), (300, 150));
    }

    #[test]
    fn cover_fills_the_box_exactly() {
        let spec = ThumbnailSpec {
            fit: Fit::Cover,
            ..ThumbnailSpec::default()
        };
        let thumbnail = render(&jpeg(1200, 500), &spec, LIMITS).unwrap();
        assert_eq!(size(&thumbnail), (300, 300));
    }

    #[test]
    fn a_small_picture_is_not_enlarged() {
        let thumbnail = render(&jpeg(120, 80), &ThumbnailSpec::default(), LIMITS).unwrap();
        assert_eq!(size(&thumbnail), (120, 80));
    }

    #[test]
    fn transparency_makes_a_png_and_keeps_the_colour_of_edges() {
        // Left half opaque red, right half fully transparent (its stored colour is green and
        // must not bleed into the red edge).
        let image = RgbaImage::from_fn(800, 400, |x, _| {
            if x < 400 {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 255, 0, 0])
            }
        });
        let mut png = Vec::new();
        DynamicImage::ImageRgba8(image)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let thumbnail = render(&png, &ThumbnailSpec::default(), LIMITS).unwrap();
        assert_eq!(thumbnail.picture.format, ImageFormat::Png);
        let decoded = decode(&thumbnail.bytes).into_rgba8();
        assert_eq!(decoded.dimensions(), (300, 150));
        let edge = decoded.get_pixel(149, 75).0;
        assert!(
            edge[3] > 0 && edge[0] > 200 && edge[1] < 40,
            "edge pixel {edge:?}"
        );
        assert_eq!(decoded.get_pixel(299, 75).0[3], 0);
    }

    #[test]
    fn metadata_is_read_safely_from_any_prefix_of_a_file() {
        let bytes = jpeg(64, 48);
        for end in 0..bytes.len().min(700) {
            assert_eq!(jpeg_orientation(&bytes[..end]), Orientation::NoTransforms);
        }
        let hostile = b"\xff\xd8\xff\xe1\xff\xffExif\0\0II*\0";
        assert_eq!(jpeg_orientation(hostile), Orientation::NoTransforms);
        assert_eq!(jpeg_exif(b"\xff\xd8\xff\xe1\x00\x00"), None);
    }

    #[test]
    fn a_truncated_jpeg_is_a_decode_error() {
        let bytes = jpeg(800, 600);
        let truncated = &bytes[..bytes.len() / 2];
        assert!(matches!(
            render(truncated, &ThumbnailSpec::default(), LIMITS),
            Err(RenderError::Decode(_))
        ));
    }

    fn progressive_jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = turbojpeg::Image::mandelbrot(width as usize, height as usize, PixelFormat::RGB);
        let mut compressor = turbojpeg::Compressor::new().unwrap();
        compressor.set_progressive(true).unwrap();
        compressor.compress_to_vec(image.as_deref()).unwrap()
    }

    #[test]
    fn a_progressive_jpeg_with_thousands_of_scans_fails_quickly() {
        // The last scan repeated: each copy is another pass over the whole image.
        let jpeg = progressive_jpeg(256, 256);
        let last_scan = jpeg.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let end = jpeg.len() - 2; // before EOI
        let mut hostile = jpeg[..end].to_vec();
        for _ in 0..3000 {
            hostile.extend_from_slice(&jpeg[last_scan..end]);
        }
        hostile.extend_from_slice(&jpeg[end..]);
        assert!(render(&jpeg, &ThumbnailSpec::default(), LIMITS).is_ok());
        let started = std::time::Instant::now();
        let error = render(&hostile, &ThumbnailSpec::default(), LIMITS).err();
        assert!(
            matches!(&error, Some(RenderError::Decode(reason)) if reason.contains("scans")),
            "{error:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_picture_that_needs_more_memory_than_the_bound_is_refused_before_decoding() {
        let tight = DecodeLimits { max_bytes: MIB };
        let mut png = Vec::new();
        DynamicImage::ImageRgb8(RgbImage::new(1000, 1000))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let error = render(&png, &ThumbnailSpec::default(), tight).err();
        assert!(
            matches!(error, Some(RenderError::TooMuchMemory { needed: 3_000_000, limit }) if limit == MIB),
            "{error:?}"
        );
        // 16-bit pixels are converted to 8 bits: both buffers count.
        let mut deep = Vec::new();
        DynamicImage::ImageRgb16(image::ImageBuffer::new(400, 400))
            .write_to(&mut Cursor::new(&mut deep), image::ImageFormat::Png)
            .unwrap();
        let error = render(&deep, &ThumbnailSpec::default(), tight).err();
        assert!(
            matches!(error, Some(RenderError::TooMuchMemory { needed, .. }) if needed == 400 * 400 * 9),
            "{error:?}"
        );
        assert!(render(&deep, &ThumbnailSpec::default(), LIMITS).is_ok());
        // A progressive JPEG counts its whole-image coefficient buffer, a baseline one does not.
        let small = DecodeLimits {
            max_bytes: 3 * 1000 * 1000,
        };
        assert!(render(&jpeg(1000, 1000), &ThumbnailSpec::default(), small).is_ok());
        let error = render(
            &progressive_jpeg(1000, 1000),
            &ThumbnailSpec::default(),
            small,
        )
        .err();
        assert!(
            matches!(error, Some(RenderError::TooMuchMemory { .. })),
            "{error:?}"
        );
    }
}
