//! Request plumbing on emukit (one port per host): request conversion, the emulator's own
//! faults, and routing by host.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::state::{AccessError, Inner, RateBucket};
use crate::util::{parse_form_body, parse_urlencoded, pass_err, pro_err, Req, Resp};
use crate::{auth, files, offline, upload, Fault, BROKER_HOST, PASSPORT_HOST, PROAPI_HOST, QRCODE_HOST};

fn is_passport_host(h: &str) -> bool {
    h == PASSPORT_HOST || h == QRCODE_HOST
}

/// Handle one request (emukit has logged it and applied the generic faults: reset, delay,
/// slow or cut bodies). `custom` is one of this emulator's own faults.
pub(crate) async fn handle(inner: Arc<Inner>, req: emukit::Request, custom: Option<Fault>) -> emukit::Reply {
    let host = req.host.clone();
    let mut expire_link = false;
    let early: Option<Resp> = match custom {
        Some(Fault::Status(s)) => Some(Resp::text(s, "injected error")),
        Some(Fault::Envelope { code, message }) => Some(envelope_err(&host, code, &message)),
        Some(Fault::RateLimit) => Some(envelope_err(&host, 770004, "访问频率过高")),
        Some(Fault::QuotaLimit) => Some(envelope_err(&host, 406, "已达到当前访问上限，请稍后再试")),
        Some(Fault::EmptyFailure) => Some(envelope_err(&host, 0, "")),
        Some(Fault::ExpireLink) => {
            expire_link = true;
            None
        }
        _ => None,
    };
    let method = req.method.as_str().to_string();
    let resp = match early {
        Some(r) => r,
        None => {
            let is_oss = {
                let st = inner.lock();
                host.ends_with(&format!(".{}", st.opts.oss_endpoint_host)) || host == st.opts.oss_endpoint_host
            };
            let form = if method == "GET" || is_oss {
                Vec::new()
            } else {
                let ct = req.header("content-type");
                parse_form_body(ct.as_deref(), &req.body)
            };
            let r = Req {
                method: method.clone(),
                host: host.clone(),
                path: req.path,
                query: parse_urlencoded(req.query.as_bytes()),
                raw_query: req.query,
                form,
                headers: req.headers,
                body: req.body,
            };
            dispatch(&inner, &r, expire_link).await
        }
    };
    to_reply(resp)
}

fn envelope_err(host: &str, code: i64, msg: &str) -> Resp {
    if is_passport_host(host) {
        pass_err(code, msg)
    } else {
        pro_err(code, msg)
    }
}

fn to_reply(resp: Resp) -> emukit::Reply {
    let mut r = emukit::Reply {
        status: resp.status,
        headers: resp.headers,
        body: emukit::Body::Full(resp.body),
        head_len: None,
    };
    if let Some(n) = resp.head_len {
        r = r.with_head_len(n);
    }
    r
}

/// The key requests are counted under: `host/path`, or just the host for the blob hosts
/// (CDN and OSS bucket).
pub(crate) fn counter_key(inner: &Inner, host: &str, path: &str) -> String {
    let st = inner.lock();
    let is_blob_host = host == st.opts.cdn_host || host.ends_with(&format!(".{}", st.opts.oss_endpoint_host));
    if is_blob_host {
        host.to_string()
    } else {
        format!("{host}{path}")
    }
}

/// Counts per key over the request log plus the requests 115 saw elsewhere.
pub(crate) fn counts(inner: &Inner, log: &[emukit::LoggedRequest]) -> BTreeMap<String, u64> {
    let mut m = inner.lock().counters.clone();
    for r in log {
        *m.entry(counter_key(inner, &r.host, &r.path)).or_insert(0) += 1;
    }
    m
}

async fn dispatch(inner: &Arc<Inner>, r: &Req, expire_link: bool) -> Resp {
    let (cdn, oss_ep) = {
        let st = inner.lock();
        (st.opts.cdn_host.clone(), st.opts.oss_endpoint_host.clone())
    };
    let h = r.host.as_str();
    if h == PASSPORT_HOST || h == QRCODE_HOST {
        return auth::passport(inner, r).await;
    }
    if h == PROAPI_HOST {
        return proapi(inner, r);
    }
    if h == BROKER_HOST {
        return auth::broker(inner, r);
    }
    if h == "__test" {
        return test_hooks(inner, r);
    }
    if h == cdn {
        return files::cdn(inner, r, expire_link);
    }
    if h == oss_ep {
        // Path-style addressing is refused by 115's OSS (ref §7.4, restic-115).
        return upload::oss_error(403, "SecondLevelDomainForbidden", "Please use virtual hosted style to access.", "");
    }
    if let Some(bucket) = h.strip_suffix(&format!(".{oss_ep}")) {
        return upload::oss(inner, r, bucket);
    }
    Resp::text(404, "unknown host")
}

/// `/__test/qr/{uid}/{scan|confirm|cancel|expire}[?user=<id>]` (ref §2.1 suggests such hooks).
fn test_hooks(inner: &Arc<Inner>, r: &Req) -> Resp {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["qr", uid, action] => {
            let ok = match *action {
                "scan" => {
                    let user = r
                        .any("user")
                        .and_then(|u| u.parse().ok())
                        .or_else(|| inner.lock().users.keys().next().copied());
                    match user {
                        Some(u) => inner.qr_set(uid, |q| {
                            if q.status == 0 {
                                q.status = 1;
                                q.user = Some(u);
                                true
                            } else {
                                false
                            }
                        }),
                        None => false,
                    }
                }
                "confirm" => inner.qr_set(uid, |q| {
                    if q.status == 1 {
                        q.status = 2;
                        true
                    } else {
                        false
                    }
                }),
                "cancel" => inner.qr_set(uid, |q| {
                    q.status = -2;
                    true
                }),
                "expire" => inner.qr_set(uid, |q| {
                    q.status = -1;
                    true
                }),
                _ => return Resp::text(404, "unknown hook"),
            };
            if ok {
                Resp::text(200, "ok")
            } else {
                Resp::text(409, "not applicable")
            }
        }
        _ => Resp::text(404, "unknown hook"),
    }
}

/// Handler context for proapi calls.
pub(crate) struct Ctx<'a> {
    pub now_ms: u64,
    pub user: u64,
    pub inner: &'a Inner,
}

impl Ctx<'_> {
    pub fn now(&self) -> u64 {
        self.now_ms / 1000
    }
}

fn proapi(inner: &Arc<Inner>, r: &Req) -> Resp {
    let now_ms = inner.now_ms();
    let mut st = inner.lock();
    // Bearer check (ref §1.2, §13.2).
    let auth = r.header("authorization").unwrap_or_default();
    let token = auth.strip_prefix("Bearer ").map(str::trim).unwrap_or("");
    let (user, grant) = match st.check_access(token, now_ms) {
        Ok(x) => x,
        Err(AccessError::Malformed) => return pro_err(40140123, "access_token 格式错误"),
        Err(AccessError::Invalid) => return pro_err(40140125, "access_token 无效（已过期或者已解除授权）"),
    };
    // Rate limits (ref §10 fake-server knobs).
    if let Some((rate, burst)) = st.opts.qps_limit {
        let now = Instant::now();
        let b = st.buckets.entry(grant).or_insert(RateBucket { tokens: burst, last: now });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(burst);
        b.last = now;
        if b.tokens < 1.0 {
            return pro_err(770004, "访问频率过高");
        }
        b.tokens -= 1.0;
    }
    if let Some(budget) = st.opts.daily_budget {
        let day = now_ms / 86_400_000;
        let c = st.daily.entry((user, day)).or_insert(0);
        *c += 1;
        if *c > budget {
            return pro_err(406, "已达到当前访问上限，请稍后再试");
        }
    }
    let ctx = Ctx { now_ms, user, inner };
    let m = r.method.as_str();
    let st = &mut *st;
    macro_rules! only {
        ($($meth:literal)|+, $e:expr) => {
            if [$($meth),+].contains(&m) { $e } else { Resp::text(405, "method not allowed") }
        };
    }
    match r.path.as_str() {
        "/open/user/info" => only!("GET", files::user_info(st, &ctx)),
        "/open/ufile/files" => only!("GET", files::list(st, &ctx, r)),
        "/open/folder/get_info" => only!("GET" | "POST", files::get_info(st, &ctx, r)),
        "/open/ufile/search" => only!("GET", files::search(st, &ctx, r)),
        "/open/ufile/downurl" => only!("POST", files::downurl(st, &ctx, r)),
        "/open/folder/add" => only!("POST", files::mkdir(st, &ctx, r)),
        "/open/ufile/update" => only!("POST", files::update(st, &ctx, r)),
        "/open/ufile/move" => only!("POST", files::mv(st, &ctx, r)),
        "/open/ufile/copy" => only!("POST", files::copy(st, &ctx, r)),
        "/open/ufile/delete" => only!("POST", files::delete(st, &ctx, r)),
        "/open/rb/list" => only!("GET", files::rb_list(st, &ctx, r)),
        "/open/rb/revert" => only!("POST", files::rb_revert(st, &ctx, r)),
        "/open/rb/del" => only!("POST", files::rb_del(st, &ctx, r)),
        "/open/upload/init" => only!("POST", upload::init(st, &ctx, r)),
        "/open/upload/resume" => only!("POST", upload::resume(st, &ctx, r)),
        "/open/upload/get_token" => only!("GET", upload::get_token(st, &ctx)),
        "/open/offline/add_task_urls" => only!("POST", offline::add(st, &ctx, r)),
        "/open/offline/get_task_list" => only!("GET" | "POST", offline::list(st, &ctx, r)),
        "/open/offline/del_task" => only!("POST", offline::del(st, &ctx, r)),
        "/open/offline/clear_task" => only!("POST", offline::clear(st, &ctx, r)),
        "/open/offline/get_quota_info" => only!("GET", offline::quota(st, &ctx)),
        _ => Resp::text(404, "not found"),
    }
}
