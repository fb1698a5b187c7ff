//! Injected faults.

use std::time::Duration;

use http::Method;

use crate::http::Reply;
use crate::util::glob_match;

/// What a fault does to a matching request.
#[derive(Clone, Debug)]
pub enum Action<X> {
    /// Answer with this reply instead of the emulator (e.g. 503, 429 + `Retry-After`).
    Reply(Reply),
    /// Close the connection without any response.
    Reset,
    /// Wait, then answer normally.
    Delay(Duration),
    /// Answer normally but send the body in `chunk`-byte pieces, waiting `delay` before each.
    SlowBody { chunk: usize, delay: Duration },
    /// Answer normally but cut the connection after `n` body bytes.
    DropAfter(u64),
    /// Emulator-specific fault, handed to the emulator's handler (which decides what it means).
    Custom(X),
}

impl<X> Action<X> {
    pub(crate) fn is_body(&self) -> bool {
        matches!(self, Action::SlowBody { .. } | Action::DropAfter(_))
    }

    pub(crate) fn label(&self) -> &'static str {
        match self {
            Action::Reply(_) => "reply",
            Action::Reset => "reset",
            Action::Delay(_) => "delay",
            Action::SlowBody { .. } => "slow-body",
            Action::DropAfter(_) => "drop-after",
            Action::Custom(_) => "custom",
        }
    }
}

/// A fault to inject on requests whose `host/path` matches a pattern.
#[derive(Clone, Debug)]
pub struct Fault<X> {
    pub action: Action<X>,
    /// How many matching requests it affects; `None` = until removed.
    pub times: Option<u32>,
    /// Only requests with this method.
    pub method: Option<Method>,
    /// Let this many matching requests pass untouched first.
    pub skip: u32,
}

impl<X> Fault<X> {
    pub fn new(action: Action<X>) -> Fault<X> {
        Fault { action, times: None, method: None, skip: 0 }
    }

    pub fn reply(r: Reply) -> Fault<X> {
        Fault::new(Action::Reply(r))
    }

    /// Plain-text error with this status.
    pub fn status(code: u16) -> Fault<X> {
        Fault::reply(Reply::text(code, &format!("emulated HTTP {code}")))
    }

    pub fn reset() -> Fault<X> {
        Fault::new(Action::Reset)
    }

    pub fn delay(d: Duration) -> Fault<X> {
        Fault::new(Action::Delay(d))
    }

    pub fn slow_body(chunk: usize, delay: Duration) -> Fault<X> {
        Fault::new(Action::SlowBody { chunk: chunk.max(1), delay })
    }

    pub fn drop_after(n: u64) -> Fault<X> {
        Fault::new(Action::DropAfter(n))
    }

    pub fn custom(x: X) -> Fault<X> {
        Fault::new(Action::Custom(x))
    }

    /// Affect only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault<X> {
        self.times = Some(n);
        self
    }

    /// Only for this HTTP method.
    pub fn method(mut self, m: Method) -> Fault<X> {
        self.method = Some(m);
        self
    }

    /// Let the first `n` matching requests through.
    pub fn after(mut self, n: u32) -> Fault<X> {
        self.skip = n;
        self
    }
}

/// Handle of an injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultId(pub u64);

pub(crate) struct Entry<X> {
    pub id: u64,
    /// `host/path` pattern: a glob with `*` if it contains one, else a prefix.
    pub pattern: String,
    pub fault: Fault<X>,
    pub fired: u32,
}

impl<X> Entry<X> {
    pub fn matches(&self, method: &Method, key: &str) -> bool {
        if self.fault.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        if self.pattern.contains('*') {
            glob_match(&self.pattern, key)
        } else {
            key.starts_with(&self.pattern)
        }
    }
}

/// Faults chosen for one request.
pub(crate) struct Chosen<X> {
    pub primary: Option<Action<X>>,
    pub body: Vec<Action<X>>,
}

pub(crate) fn choose<X: Clone>(faults: &mut Vec<Entry<X>>, method: &Method, key: &str) -> Chosen<X> {
    let mut out = Chosen { primary: None, body: Vec::new() };
    for e in faults.iter_mut() {
        if !e.matches(method, key) {
            continue;
        }
        let is_body = e.fault.action.is_body();
        if !is_body && out.primary.is_some() {
            continue;
        }
        if e.fault.skip > 0 {
            e.fault.skip -= 1;
            continue;
        }
        if e.fault.times.is_some_and(|t| e.fired >= t) {
            continue;
        }
        e.fired += 1;
        if is_body {
            out.body.push(e.fault.action.clone());
        } else {
            out.primary = Some(e.fault.action.clone());
        }
    }
    faults.retain(|e| e.fault.times.is_none_or(|t| e.fired < t));
    out
}

/// Normalise a user-given pattern: no leading `/`.
pub(crate) fn normalise(pattern: &str) -> String {
    pattern.trim_start_matches('/').to_string()
}
