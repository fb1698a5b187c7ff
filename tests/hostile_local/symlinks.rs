//! Issue 9, items 3 and 4: symbolic links. With `follow_symlinks = true` a DELETE or MOVE
//! of a link acts on the link; with `follow_symlinks = false` a folder swapped for a link
//! while requests run never leads outside the root.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::helpers::*;

struct Linked {
    dir: TestDir,
    root: PathBuf,
    outside: PathBuf,
}

/// `root/` with a folder `dir/` holding `own.txt` and `ln` (a link to `outside/`), a
/// link `top` to `outside/`, and `outside/` with a file and a folder.
fn linked_tree() -> Linked {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    let outside = dir.mkdir("outside");
    dir.write("outside/precious.txt", "precious");
    dir.write("outside/sub/deep.txt", "deep");
    dir.write("root/dir/own.txt", "own");
    std::os::unix::fs::symlink(&outside, root.join("dir/ln")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("top")).unwrap();
    Linked { dir, root, outside }
}

fn send(server: &Server, method: &str, path: &str, headers: &str) -> u16 {
    let got = exchange(server.addr(), &request(method, path, headers, b""));
    status_of(&got).unwrap_or_else(|| panic!("{method} {path}: no answer: {}", String::from_utf8_lossy(&got)))
}

/// MOVE of a link to a folder moves the link; DELETE of it removes the link, not what
/// is in the folder; so does DELETE of a folder holding such a link.
///
/// dav-server deleted a folder's entries one by one before the folder itself, and a link
/// to a folder looks like a folder to it; pandav now hands DELETE to the drive as one
/// `Mount::remove` (dav/copymove.rs), which removes a link as a link.
#[test]
fn following_links_delete_and_move_act_on_the_link() {
    let t = linked_tree();
    let mut server = follow_server(&t);
    let outside_before = snapshot(&t.outside);
    let s = send(&server, "DELETE", "/local/top", "");
    assert!(s == 204 || s == 200, "DELETE of a link: {s}");
    assert_eq!(snapshot(&t.outside), outside_before, "DELETE of a link emptied its target");
    assert!(std::fs::symlink_metadata(t.root.join("top")).is_err(), "the link is still there");

    let s = send(&server, "DELETE", "/local/dir", "");
    assert!(s == 204 || s == 200, "DELETE of a folder holding a link: {s}");
    assert_eq!(snapshot(&t.outside), outside_before, "DELETE of a folder went through a link in it");
    assert!(!t.root.join("dir").exists(), "the folder is still there");
    assert_sound(&mut server);
}

/// A link is followed for reading, and MOVE of it moves the link.
#[test]
fn following_links_move_moves_the_link() {
    let t = linked_tree();
    let mut server = follow_server(&t);
    let outside_before = snapshot(&t.outside);
    let got = exchange(server.addr(), &request("GET", "/local/top/precious.txt", "", b""));
    assert!(got.ends_with(b"precious"), "{}", String::from_utf8_lossy(&got));
    let s = send(&server, "MOVE", "/local/top", "Destination: http://t/local/moved\r\n");
    assert!(s == 201 || s == 204, "MOVE of a link: {s}");
    assert_eq!(snapshot(&t.outside), outside_before, "MOVE of a link changed its target");
    assert!(std::fs::symlink_metadata(t.root.join("moved")).unwrap().file_type().is_symlink(), "the link moved");
    assert_sound(&mut server);
}

fn follow_server(t: &Linked) -> Server {
    let cfg = ConfigBuilder::new().local("/local", &t.root);
    let text =
        cfg.build(&t.dir.mkdir("state")).replace("[mounts.options]\n", "[mounts.options]\nfollow_symlinks = true\n");
    let config = t.dir.write("pandav.toml", &text);
    Server::start_file(&config, t.dir.path())
}

/// Folder `d` swapped again and again for a link to a folder outside while GETs, PUTs,
/// PROPFINDs, MKCOLs, MOVEs and DELETEs run through it: no outside byte is served or
/// listed, no 200 has a body shorter than its Content-Length, nothing outside changes.
#[test]
fn a_folder_swapped_for_a_link_never_leads_outside() {
    let dir = TestDir::new();
    let root = dir.mkdir("root");
    let outside = dir.mkdir("outside");
    let inside_body = "inside.".repeat(2000);
    dir.write("root/d/f.txt", &inside_body);
    dir.write("outside/f.txt", "OUTSIDE!".repeat(100));
    dir.write("outside/outside-only.txt", "OUTSIDE!");
    let mut server = Server::start(&dir, &ConfigBuilder::new().local("/local", &root));
    let outside_before = snapshot(&outside);
    let addr = server.addr();

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (root, outside, stop, swaps) = (root.clone(), outside.clone(), Arc::clone(&stop), Arc::clone(&swaps));
        std::thread::spawn(move || {
            let (d, real) = (root.join("d"), root.join("d.real"));
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&d, &real).unwrap();
                std::os::unix::fs::symlink(&outside, &d).unwrap();
                std::thread::yield_now();
                std::fs::remove_file(&d).unwrap();
                std::fs::rename(&real, &d).unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
                // Mostly a folder, so that requests also get through.
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };

    #[derive(Default)]
    struct Seen {
        leaks: Vec<String>,
        short: Vec<String>,
        ok: usize,
    }
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let worker = |kind: usize, n: usize| {
        let (seen, inside_body) = (Arc::clone(&seen), inside_body.clone());
        std::thread::spawn(move || {
            for i in 0..n {
                let (req, what) = match kind {
                    0 => (request("GET", "/local/d/f.txt", "", b""), "GET".to_string()),
                    1 => (request("PUT", &format!("/local/d/new-{i}.txt"), "", b"PUT body"), format!("PUT {i}")),
                    2 => (request("PROPFIND", "/local/d/", "Depth: 1\r\n", b""), "PROPFIND".to_string()),
                    3 => (request("MKCOL", &format!("/local/d/sub-{i}"), "", b""), format!("MKCOL {i}")),
                    4 => (
                        request(
                            "MOVE",
                            &format!("/local/d/new-{i}.txt"),
                            &format!("Destination: http://t/local/moved-{i}.txt\r\n"),
                            b"",
                        ),
                        format!("MOVE {i}"),
                    ),
                    _ => (request("DELETE", &format!("/local/d/sub-{i}"), "", b""), format!("DELETE {i}")),
                };
                let got = exchange(addr, &req);
                let text = String::from_utf8_lossy(&got).into_owned();
                let mut s = seen.lock().unwrap();
                if text.contains("OUTSIDE") || text.contains("outside-only") {
                    s.leaks.push(format!("{what}: {}", &text[..text.len().min(300)]));
                }
                if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = text[..head_end].to_ascii_lowercase();
                    let body = &got[head_end + 4..];
                    if head.starts_with("http/1.1 200") && kind == 0 {
                        let cl: usize = between(&head, "content-length: ", "\r\n")
                            .or_else(|| head.split("content-length: ").nth(1).map(str::to_string))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(usize::MAX);
                        if body.len() < cl {
                            s.short.push(format!("{what}: {} of {cl} bytes: {}", body.len(), &text[..head_end]));
                        } else if body != inside_body.as_bytes() {
                            s.leaks.push(format!("{what}: unexpected body of {} bytes", body.len()));
                        } else {
                            s.ok += 1;
                        }
                    }
                }
            }
        })
    };
    let workers: Vec<_> = [(0, 600), (0, 600), (1, 150), (2, 150), (3, 100), (4, 150), (5, 100)]
        .iter()
        .map(|&(k, n)| worker(k, n))
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let s = seen.lock().unwrap();
    eprintln!(
        "{} swaps; {} whole GETs; {} leaks; {} short",
        swaps.load(Ordering::Relaxed),
        s.ok,
        s.leaks.len(),
        s.short.len()
    );
    assert!(
        s.leaks.is_empty(),
        "{} answers showed the outside folder, e.g. {:?}",
        s.leaks.len(),
        &s.leaks[..s.leaks.len().min(3)]
    );
    assert!(s.short.is_empty(), "{} short 200 bodies, e.g. {:?}", s.short.len(), &s.short[..s.short.len().min(3)]);
    assert!(s.ok > 0, "no GET got through the whole time: the test proves nothing");
    assert_eq!(snapshot(&outside), outside_before, "something changed outside the root");
    assert_no_temp_left(&root);
    assert_sound(&mut server);
}

/// No `.pandav-tmp-*` is left anywhere below `root`.
fn assert_no_temp_left(root: &Path) {
    let left: Vec<_> = walk(root).into_iter().filter(|p| p.contains(".pandav-tmp-")).collect();
    assert!(left.is_empty(), "temp files left: {left:?}");
}
