//! `pandav login <provider>`: runs the registry's login flow, with the mount resolved
//! from the config here and QR codes drawn here (terminal or PNG), so that every
//! provider's flow is the same to the user.

use std::path::Path;

use anyhow::{anyhow, Context, Result};

use super::init_logging;
use crate::drivers::{self, LoginCommon, LoginHost, MountRef};

/// `pandav login <provider> [its options…]`
pub fn login(provider: String, args: Vec<String>) -> Result<()> {
    init_logging("warn");
    let entry = drivers::login(&provider).ok_or_else(|| {
        let known: Vec<&str> = drivers::logins().map(|l| l.command).collect();
        anyhow!("no login called {provider:?} (known: {})", known.join(", "))
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on((entry.run)(args, &Terminal))
}

/// The terminal side of a login flow.
struct Terminal;

impl LoginHost for Terminal {
    fn mount(&self, common: &LoginCommon) -> Result<MountRef> {
        super::find_mount(&common.config, &common.mount)
    }

    fn show_qr(&self, text: &str, png: Option<&Path>) -> Result<()> {
        match png {
            Some(file) => {
                write_qr_png(text, file)?;
                eprintln!("QR code written to {}: open it and scan it with the app.", file.display());
            }
            None => {
                let code = qrcode::QrCode::new(text.as_bytes())?;
                let art = code
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .dark_color(qrcode::render::unicode::Dense1x2::Light)
                    .light_color(qrcode::render::unicode::Dense1x2::Dark)
                    .quiet_zone(true)
                    .build();
                println!("{art}");
                println!("(QR content: {text})");
            }
        }
        Ok(())
    }

    fn say(&self, line: &str) {
        eprintln!("{line}");
    }
}

/// A QR code as a black-on-white PNG, 8 px per module, with a 4-module quiet zone.
fn write_qr_png(text: &str, file: &std::path::Path) -> Result<()> {
    let code = qrcode::QrCode::new(text.as_bytes())?;
    let w = code.width();
    let colors = code.to_colors();
    let (scale, quiet) = (8usize, 4usize);
    let side = (w + 2 * quiet) * scale;
    let mut px = vec![255u8; side * side];
    for y in 0..w {
        for x in 0..w {
            if colors[y * w + x] == qrcode::Color::Dark {
                for dy in 0..scale {
                    let row = ((y + quiet) * scale + dy) * side;
                    for dx in 0..scale {
                        px[row + (x + quiet) * scale + dx] = 0;
                    }
                }
            }
        }
    }
    let f = std::fs::File::create(file).with_context(|| format!("cannot write {}", file.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), side as u32, side as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header()?;
    wr.write_image_data(&px)?;
    wr.finish()?;
    Ok(())
}
