//! Placeholder avatars: `GET /avatar/{key}/{size}` answers an SVG with the user's initials on
//! a colour derived from the user's key, so the avatar URLs in user objects (see
//! [`crate::tenant::Tenant::avatar_base`]) show an image in a browser, as Feishu's CDN does.
//! Public like Feishu's avatar links: no token needed.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};

use crate::server::EmulatorState;
use crate::tenant::UserKey;

pub fn routes() -> Router<Arc<EmulatorState>> {
    Router::new().route("/avatar/{key}/{size}", get(avatar))
}

/// The sizes Feishu offers (`avatar_72`, `avatar_240`, `avatar_640`, `avatar_origin`), in pixels.
fn pixels(size: &str) -> Option<u32> {
    match size {
        "72" => Some(72),
        "240" => Some(240),
        "640" | "origin" => Some(640),
        _ => None,
    }
}

async fn avatar(
    State(state): State<Arc<EmulatorState>>,
    Path((key, size)): Path<(String, String)>,
) -> Response {
    let found = key.parse::<UserKey>().ok().and_then(|key| {
        let name = state.with_tenant(|t| t.users.get(&key).map(|u| u.name.clone()))?;
        Some((key, name, pixels(&size)?))
    });
    let Some((key, name, px)) = found else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such avatar: /avatar/{user key}/{72|240|640|origin}",
        )
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Opened directly, the image may not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        svg(key, &name, px),
    )
        .into_response()
}

/// A round-cornered square of `px` pixels with the initials in white.
pub fn svg(key: UserKey, name: &str, px: u32) -> String {
    let text = escape(&initials(name));
    let hue = hue(key);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{px}" height="{px}" viewBox="0 0 100 100" role="img" aria-label="{text}"><rect width="100" height="100" rx="12" fill="hsl({hue},55%,45%)"/><text x="50" y="50" dy=".35em" text-anchor="middle" font-family="system-ui,sans-serif" font-size="38" fill="#fff">{text}</text></svg>"##
    )
}

/// A hue from the key, spread around the wheel (golden-ratio hashing) so neighbours differ.
fn hue(key: UserKey) -> u64 {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % 360
}

/// What Feishu shows on a default avatar: the first letters of the first and last word of a
/// Latin name ("Ada Lovelace" → "AL"), the last two characters of a Chinese one ("欧阳娜娜"
/// → "娜娜").
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let (Some(first), Some(last)) = (words.first(), words.last()) else {
        return "?".to_owned();
    };
    if name.is_ascii() {
        let mut out: String = first.chars().take(1).collect();
        if words.len() > 1 {
            out.extend(last.chars().take(1));
        }
        return out.to_uppercase();
    }
    let chars: Vec<char> = words.concat().chars().collect();
    chars[chars.len().saturating_sub(2)..].iter().collect()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_as_feishu_shows_them() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("ada  byron lovelace"), "AL");
        assert_eq!(initials("Plato"), "P");
        assert_eq!(initials("张伟"), "张伟");
        assert_eq!(initials("欧阳娜娜"), "娜娜");
        assert_eq!(initials("李"), "李");
        assert_eq!(initials("  "), "?");
        assert_eq!(initials(""), "?");
    }

    #[test]
    fn the_image_escapes_the_name_and_keeps_its_colour() {
        let image = svg(7, "<b> & \"x\"", 72);
        assert!(image.starts_with("<svg "), "{image}");
        assert!(image.contains(r#"width="72""#), "{image}");
        assert!(image.contains("&lt;"), "{image}");
        assert!(!image.contains("<b>"), "{image}");
        assert_eq!(svg(7, "Ada", 72), svg(7, "Ada", 72));
        assert_ne!(hue(7), hue(8));
    }
}
