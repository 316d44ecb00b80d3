//! What the bytes are: the type by magic numbers (`infer`), image dimensions from the header
//! (`imagesize`), video duration from the MP4/QuickTime movie header (`moov/mvhd`) or the WebM
//! segment's `Info/Duration`. Every parser here reads bounded slices and loops a bounded number
//! of times; anything it cannot read is `None`, never a panic.

/// The types crier accepts, as sniffed.
pub const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];
pub const VIDEO_TYPES: [&str; 3] = ["video/mp4", "video/quicktime", "video/webm"];

pub fn accepted(content_type: &str) -> bool {
    IMAGE_TYPES.contains(&content_type) || VIDEO_TYPES.contains(&content_type)
}

pub fn is_video(content_type: &str) -> bool {
    VIDEO_TYPES.contains(&content_type)
}

/// How many leading bytes the sniffers look at.
pub const HEAD_BYTES: u64 = 1024 * 1024;
/// The largest `moov` box read to find the duration.
pub const MAX_MOOV_BYTES: u64 = 16 * 1024 * 1024;
/// Top-level boxes walked before giving up.
pub const MAX_BOXES: usize = 1024;

/// The accepted type the bytes are, if any (`None` for anything else, including types
/// `infer` knows but crier does not take).
pub fn content_type(head: &[u8]) -> Option<&'static str> {
    let kind = infer::get(head)?;
    let t = match kind.mime_type() {
        "image/png" => "image/png",
        "image/jpeg" => "image/jpeg",
        "image/gif" => "image/gif",
        "image/webp" => "image/webp",
        "video/mp4" => "video/mp4",
        "video/quicktime" => "video/quicktime",
        "video/webm" => "video/webm",
        _ => return None,
    };
    Some(t)
}

/// Width and height of an image from its header.
pub fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    let s = imagesize::blob_size(head).ok()?;
    Some((u32::try_from(s.width).ok()?, u32::try_from(s.height).ok()?))
}

/// An ISO BMFF box header: (total size, type, header length). A size of 0 runs to the end of
/// the file (`file_rest`).
pub fn box_header(b: &[u8], file_rest: u64) -> Option<(u64, [u8; 4], u64)> {
    let size32 = u32::from_be_bytes(b.get(0..4)?.try_into().ok()?);
    let kind: [u8; 4] = b.get(4..8)?.try_into().ok()?;
    let (size, header) = match size32 {
        0 => (file_rest, 8),
        1 => (u64::from_be_bytes(b.get(8..16)?.try_into().ok()?), 16),
        n => (u64::from(n), 8),
    };
    (size >= header).then_some((size, kind, header))
}

/// The duration in milliseconds from a `moov` box's payload (its `mvhd`).
pub fn mvhd_duration(moov: &[u8]) -> Option<u64> {
    let mut at = 0usize;
    for _ in 0..MAX_BOXES {
        let rest = moov.get(at..)?;
        let (size, kind, header) = box_header(rest, rest.len() as u64)?;
        if &kind == b"mvhd" {
            let body = rest.get(header as usize..size.min(rest.len() as u64) as usize)?;
            let (timescale, duration) = match *body.first()? {
                0 => (
                    u32::from_be_bytes(body.get(12..16)?.try_into().ok()?),
                    u64::from(u32::from_be_bytes(body.get(16..20)?.try_into().ok()?)),
                ),
                1 => (
                    u32::from_be_bytes(body.get(20..24)?.try_into().ok()?),
                    u64::from_be_bytes(body.get(24..32)?.try_into().ok()?),
                ),
                _ => return None,
            };
            if timescale == 0 {
                return None;
            }
            return Some(
                (u128::from(duration) * 1000 / u128::from(timescale)).min(u64::MAX as u128) as u64,
            );
        }
        at = at.checked_add(usize::try_from(size).ok()?)?;
    }
    None
}

/// An EBML variable-length integer at `b[0..]`: (value, length). With `marker`, the length
/// marker bit stays (element ids); without, it is cleared (sizes).
fn vint(b: &[u8], marker: bool) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut v = if marker {
        u64::from(first)
    } else {
        u64::from(first) & ((1u64 << (8 - len)) - 1)
    };
    for i in 1..len {
        v = (v << 8) | u64::from(*b.get(i)?);
    }
    Some((v, len))
}

const EBML_SEGMENT: u64 = 0x1853_8067;
const EBML_INFO: u64 = 0x1549_A966;
const EBML_TIMESCALE: u64 = 0x2A_D7B1;
const EBML_DURATION: u64 = 0x4489;

/// The duration in milliseconds of a WebM file from its first bytes (`Segment/Info`).
pub fn webm_duration(head: &[u8]) -> Option<u64> {
    // Walk: top level until Segment, into it until Info, into Info for the two fields.
    let mut at = 0usize;
    let mut scale_ns: u64 = 1_000_000;
    let mut duration: Option<f64> = None;
    let mut depth = 0; // 0 top, 1 in Segment, 2 in Info
    let mut info_end = usize::MAX;
    for _ in 0..4096 {
        if at >= head.len() || at >= info_end {
            break;
        }
        let (id, il) = vint(head.get(at..)?, true)?;
        let (size, sl) = vint(head.get(at + il..)?, false)?;
        let body = at + il + sl;
        let unknown = size == (1u64 << (7 * sl)) - 1;
        match (depth, id) {
            (0, EBML_SEGMENT) => {
                depth = 1;
                at = body;
                continue;
            }
            (1, EBML_INFO) => {
                depth = 2;
                info_end = if unknown {
                    head.len()
                } else {
                    body.saturating_add(usize::try_from(size).ok()?)
                };
                at = body;
                continue;
            }
            (2, EBML_TIMESCALE) => {
                let b = head.get(body..body + usize::try_from(size).ok()?)?;
                if b.is_empty() || b.len() > 8 {
                    return None;
                }
                scale_ns = b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
            }
            (2, EBML_DURATION) => {
                let b = head.get(body..body + usize::try_from(size).ok()?)?;
                duration = Some(match b.len() {
                    4 => f64::from(f32::from_be_bytes(b.try_into().ok()?)),
                    8 => f64::from_be_bytes(b.try_into().ok()?),
                    _ => return None,
                });
            }
            _ => {}
        }
        if unknown {
            return None;
        }
        at = body.checked_add(usize::try_from(size).ok()?)?;
    }
    let d = duration?;
    let ms = d * scale_ns as f64 / 1_000_000.0;
    (ms.is_finite() && ms >= 0.0 && ms < u64::MAX as f64).then(|| ms.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mvhd_versions_and_garbage() {
        let mut v0 = vec![0u8; 8 + 100];
        v0[0..4].copy_from_slice(&108u32.to_be_bytes());
        v0[4..8].copy_from_slice(b"mvhd");
        v0[8 + 12..8 + 16].copy_from_slice(&1000u32.to_be_bytes());
        v0[8 + 16..8 + 20].copy_from_slice(&2500u32.to_be_bytes());
        assert_eq!(mvhd_duration(&v0), Some(2500));
        let mut v1 = vec![0u8; 8 + 112];
        v1[0..4].copy_from_slice(&120u32.to_be_bytes());
        v1[4..8].copy_from_slice(b"mvhd");
        v1[8] = 1;
        v1[8 + 20..8 + 24].copy_from_slice(&600u32.to_be_bytes());
        v1[8 + 24..8 + 32].copy_from_slice(&(600u64 * 61).to_be_bytes());
        assert_eq!(mvhd_duration(&v1), Some(61_000));
        assert_eq!(mvhd_duration(&v0[..20]), None, "truncated");
        assert_eq!(
            mvhd_duration(b"\0\0\0\x01free"),
            None,
            "a box smaller than its header"
        );
        assert_eq!(mvhd_duration(&[]), None);
        let mut zero = v0.clone();
        zero[8 + 12..8 + 16].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(mvhd_duration(&zero), None, "timescale 0");
    }

    #[test]
    fn vints() {
        assert_eq!(vint(&[0x81], false), Some((1, 1)));
        assert_eq!(vint(&[0x40, 0x02], false), Some((2, 2)));
        assert_eq!(
            vint(&[0x1A, 0x45, 0xDF, 0xA3], true),
            Some((0x1A45_DFA3, 4))
        );
        assert_eq!(vint(&[0x00], false), None);
        assert_eq!(vint(&[0x40], false), None);
    }

    #[test]
    fn webm_garbage_is_none() {
        assert_eq!(webm_duration(&[]), None);
        assert_eq!(webm_duration(&[0xFF; 64]), None);
        assert_eq!(webm_duration(&[0x1A, 0x45, 0xDF, 0xA3, 0x00]), None);
    }
}
