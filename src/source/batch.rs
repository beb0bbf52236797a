//! Batched lookups: requests of one `batch` route that would wait for a connection run as one
//! statement for all their keys, like group commit in a database log. No timer and no
//! window: a lookup that finds a free lane and a free connection runs alone, at once; only
//! requests that would have waited anyway are gathered, and the batch starts the moment a
//! connection is free. Each route (and each value of its other parameters: a claim-bound
//! parameter never mixes identities) has a few lanes, so that a burst becomes a few large
//! statements rather than many small ones.
//!
//! Each row of a batch is handed to the requests whose key it carries (the key column is
//! selected first); a request whose key matched no row gets a 404 when that is certain (an
//! integer key, every row accounted for) and otherwise runs alone, as do all requests of a
//! batch the database refused for a bound value, so every request gets exactly the answer it
//! would have got alone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::gate::Place;
use super::{Admitted, Queried, RowSink, SinkError, Source, SourceError};
use crate::codec::{BindValue, Cell};
use crate::dialect::Dialect;
use crate::shape::ColumnInfo;
use crate::sql::batch::Batched;

/// A lookup, as the route hands it over.
#[derive(Debug)]
pub struct Lookup {
    /// The route's own statement (one key).
    pub sql: Arc<str>,
    pub binds: Vec<BindValue>,
    pub max_rows: usize,
    pub timeout: Option<Duration>,
}

/// What a lookup got, and with how many others its statement ran (1: alone).
#[derive(Debug)]
pub struct Looked {
    pub result: Result<Queried, SourceError>,
    pub batch: usize,
}

/// The batches being gathered, per route and values of its other parameters.
#[derive(Debug)]
pub struct Batcher {
    groups: Mutex<HashMap<String, Group>>,
    /// Statements of one group at once.
    lanes: usize,
}

#[derive(Debug)]
struct Group {
    batched: Arc<Batched>,
    /// The first lookup's values: the others differ only in the key.
    template: Lookup,
    queue: VecDeque<Waiter>,
    running: usize,
}

struct Waiter {
    key: BindValue,
    sink: Box<dyn RowSink>,
    max_rows: usize,
    started: Instant,
    reply: oneshot::Sender<Answer>,
    _place: Place,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

enum Step {
    Now(OwnedSemaphorePermit, Box<dyn RowSink>),
    Wait(oneshot::Receiver<Answer>),
    Fail(SourceError),
}

enum Answer {
    Done(Looked),
    /// Run alone: the batch could not say for certain.
    Alone(Box<dyn RowSink>),
}

impl Default for Batcher {
    fn default() -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            lanes: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
        }
    }
}

impl Batcher {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The group a lookup belongs to: its statement and every value but the key.
fn group_key(batched: &Batched, l: &Lookup) -> String {
    let mut others = l.binds.clone();
    if batched.key_at < others.len() {
        others.remove(batched.key_at);
    }
    format!(
        "{:p}\u{1f}{:?}\u{1f}{:?}",
        Arc::as_ptr(&l.sql),
        others,
        l.timeout
    )
}

impl Source {
    /// The lookup as its own statement, through the gate like any other.
    async fn alone(&self, lookup: Lookup, sink: Box<dyn RowSink>) -> Looked {
        let result = self
            .query(
                lookup.sql,
                lookup.binds,
                lookup.max_rows,
                lookup.timeout,
                sink,
            )
            .await;
        Looked { result, batch: 1 }
    }

    /// Look one key up, in a batch with the lookups that wait beside it, or alone.
    pub async fn lookup(
        self: &Arc<Self>,
        batched: &Arc<Batched>,
        lookup: Lookup,
        sink: Box<dyn RowSink>,
    ) -> Looked {
        let Some(key) = lookup.binds.get(batched.key_at).cloned() else {
            return self.alone(lookup, sink).await;
        };
        let name = group_key(batched, &lookup);
        let started = Instant::now();
        let rx = match self.admit(batched, &name, &lookup, key, sink, started) {
            Step::Fail(e) => {
                return Looked {
                    result: Err(e),
                    batch: 1,
                };
            }
            Step::Now(permit, sink) => {
                let lane = Lane {
                    source: Arc::clone(self),
                    name,
                };
                let result = self.run(lookup, started, permit, sink).await;
                drop(lane);
                return Looked { result, batch: 1 };
            }
            Step::Wait(rx) => rx,
        };
        match rx.await {
            Ok(Answer::Done(looked)) => looked,
            Ok(Answer::Alone(sink)) => self.alone(lookup, sink).await,
            Err(_) => Looked {
                result: Err(SourceError::Closed),
                batch: 1,
            },
        }
    }

    /// Run now (a free lane and connection), or queue for a batch.
    fn admit(
        self: &Arc<Self>,
        batched: &Arc<Batched>,
        name: &str,
        lookup: &Lookup,
        key: BindValue,
        sink: Box<dyn RowSink>,
        started: Instant,
    ) -> Step {
        let mut groups = self.batches.lock();
        let group = groups.entry(name.to_string()).or_insert_with(|| Group {
            batched: Arc::clone(batched),
            template: Lookup {
                sql: Arc::clone(&lookup.sql),
                binds: lookup.binds.clone(),
                max_rows: lookup.max_rows,
                timeout: lookup.timeout,
            },
            queue: VecDeque::new(),
            running: 0,
        });
        if group.queue.is_empty() && group.running < self.batches.lanes {
            match self.gate.try_enter() {
                Err(e) => {
                    if group.running == 0 {
                        groups.remove(name);
                    }
                    return Step::Fail(e);
                }
                Ok(Some(permit)) => {
                    group.running += 1;
                    return Step::Now(permit, sink);
                }
                Ok(None) => {}
            }
        }
        let Some(place) = self.gate.hold_place() else {
            // The queue is full (or `max_waiting = 0`): a free connection still serves this
            // lookup alone, as it would without `batch`.
            let refused = match self.gate.try_enter() {
                Ok(Some(permit)) => {
                    group.running += 1;
                    return Step::Now(permit, sink);
                }
                Ok(None) => SourceError::QueueFull,
                Err(e) => e,
            };
            if group.running == 0 && group.queue.is_empty() {
                groups.remove(name);
            }
            return Step::Fail(refused);
        };
        let (reply, rx) = oneshot::channel();
        group.queue.push_back(Waiter {
            key,
            sink,
            max_rows: lookup.max_rows,
            started,
            reply,
            _place: place,
        });
        if group.running < self.batches.lanes {
            group.running += 1;
            tokio::spawn(Arc::clone(self).drive(name.to_string()));
        }
        Step::Wait(rx)
    }

    /// Run one admitted statement and tell the breaker how it went.
    async fn run(
        &self,
        l: Lookup,
        started: Instant,
        permit: OwnedSemaphorePermit,
        sink: Box<dyn RowSink>,
    ) -> Result<Queried, SourceError> {
        let admitted = Admitted {
            sql: l.sql,
            binds: l.binds,
            max_rows: l.max_rows,
            timeout: l.timeout,
            started,
            permit,
        };
        let result = match &self.pool {
            super::Pool::Odbc(p) => p.query(admitted, sink).await,
            super::Pool::Mssql(p) => p.query(admitted, sink).await,
        };
        self.gate.report(&result);
        result
    }

    /// One lane of a group: wait for a connection, take what waits (up to `max`), run it,
    /// and go on while more waits.
    async fn drive(self: Arc<Self>, name: String) {
        let mut lane = Driving {
            source: Arc::clone(&self),
            name: name.clone(),
            armed: true,
        };
        loop {
            let deadline = {
                let mut groups = self.batches.lock();
                let Some(group) = groups.get_mut(&name) else {
                    lane.armed = false;
                    return;
                };
                let Some(oldest) = group.queue.front() else {
                    lane.armed = false;
                    give_back(&mut groups, &name);
                    return;
                };
                oldest.started + self.gate.acquire_timeout()
            };
            // The waiters hold their places in the queue already: the lane takes none.
            let permit = self.gate.enter_held(deadline).await;
            let (batched, template, waiters) = {
                let mut groups = self.batches.lock();
                let Some(group) = groups.get_mut(&name) else {
                    lane.armed = false;
                    return;
                };
                let take = match &permit {
                    Ok(_) => group.queue.len().min(group.batched.max),
                    // No connection in time: the lookups whose own wait is over get what they
                    // would have got alone; the others wait on.
                    Err(SourceError::Busy(_)) => group
                        .queue
                        .iter()
                        .take_while(|w| w.started + self.gate.acquire_timeout() <= Instant::now())
                        .count(),
                    // The breaker is open or the source closed: every lookup waiting here.
                    Err(_) => group.queue.len(),
                };
                let waiters: Vec<Waiter> = group.queue.drain(..take).collect();
                if waiters.is_empty() && group.queue.is_empty() {
                    lane.armed = false;
                    give_back(&mut groups, &name);
                    return;
                }
                let template = Lookup {
                    sql: Arc::clone(&group.template.sql),
                    binds: group.template.binds.clone(),
                    max_rows: group.template.max_rows,
                    timeout: group.template.timeout,
                };
                (Arc::clone(&group.batched), template, waiters)
            };
            match permit {
                Err(e) => {
                    for w in waiters {
                        let _ = w.reply.send(Answer::Done(Looked {
                            result: Err(e.clone()),
                            batch: 1,
                        }));
                    }
                }
                Ok(permit) => self.run_batch(&batched, template, waiters, permit).await,
            }
        }
    }

    async fn run_batch(
        &self,
        batched: &Batched,
        mut template: Lookup,
        mut waiters: Vec<Waiter>,
        permit: OwnedSemaphorePermit,
    ) {
        let n = waiters.len();
        if n == 1 {
            let w = waiters.pop().expect("one waiter");
            template.binds[batched.key_at] = w.key;
            template.max_rows = w.max_rows;
            let result = self.run(template, w.started, permit, w.sink).await;
            let _ = w.reply.send(Answer::Done(Looked { result, batch: 1 }));
            return;
        }
        let Some((arity, sql)) = batched.form(n) else {
            return;
        };
        let mut binds = Vec::with_capacity(template.binds.len() + arity);
        binds.extend_from_slice(&template.binds[..batched.key_at]);
        for i in 0..arity {
            binds.push(waiters[i.min(n - 1)].key.clone());
        }
        binds.extend_from_slice(&template.binds[batched.key_at + 1..]);
        let per = waiters.iter().map(|w| w.max_rows).max().unwrap_or(1).max(1);
        let cap = per.saturating_mul(n).saturating_add(1);
        let started = waiters
            .iter()
            .map(|w| w.started)
            .min()
            .unwrap_or_else(Instant::now);
        let waited: Vec<Duration> = waiters.iter().map(|w| w.started.elapsed()).collect();
        let shared = Arc::new(Mutex::new(Demux {
            slots: Vec::with_capacity(n),
            columns: Vec::new(),
            fixed: false,
            unmatched: 0,
            rows: 0,
        }));
        let mut replies = Vec::with_capacity(n);
        {
            let mut d = shared.lock().unwrap_or_else(PoisonError::into_inner);
            for w in waiters {
                d.slots.push(Slot {
                    key: w.key,
                    sink: Some(w.sink),
                    began: false,
                    rows: 0,
                    max_rows: w.max_rows,
                    error: None,
                });
                replies.push(w.reply);
            }
        }
        let result = self
            .run(
                Lookup {
                    sql: Arc::clone(sql),
                    binds,
                    max_rows: cap,
                    timeout: template.timeout,
                },
                started,
                permit,
                Box::new(BatchSink(Arc::clone(&shared), batched.dialect)),
            )
            .await;
        let mut d = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let certain = d.unmatched == 0 && d.rows < cap;
        let ran = result.as_ref().map(|_| ());
        for ((slot, reply), waited) in d.slots.drain(..).zip(replies).zip(waited) {
            let Some(sink) = slot.sink else { continue };
            let answer = match &ran {
                // A bound value the database refused, or a stored value that could not be
                // read, fails the whole statement: each lookup runs alone and gets its own
                // answer (one whose sink already took rows cannot start again: it gets the
                // error).
                Err(
                    SourceError::OutOfRange { .. }
                    | SourceError::BadValue(_)
                    | SourceError::Decode(_),
                ) if !slot.began => Answer::Alone(sink),
                Err(e) => Answer::Done(Looked {
                    result: Err((*e).clone()),
                    batch: n,
                }),
                Ok(()) => match slot.error {
                    Some(e) => Answer::Done(Looked {
                        result: Err(SourceError::Decode(e)),
                        batch: n,
                    }),
                    // Only an integer key's missing row is certain: text and floats may
                    // compare equal in ways the bytes do not show.
                    None if slot.rows > 0
                        || (certain
                            && matches!(slot.key, BindValue::Int(_) | BindValue::Null(_))) =>
                    {
                        Answer::Done(Looked {
                            result: Ok(Queried { sink, waited }),
                            batch: n,
                        })
                    }
                    None => Answer::Alone(sink),
                },
            };
            let _ = reply.send(answer);
        }
    }
}

/// A lane's `drive` task, dropped before it returned (its runtime shut down): the lane is
/// given back, and when it was the group's last, the lookups still queued are let go (each
/// answers 503, its place in the queue given back) rather than wait for a lane that never
/// comes.
struct Driving {
    source: Arc<Source>,
    name: String,
    armed: bool,
}

impl Drop for Driving {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        give_back(&mut self.source.batches.lock(), &self.name);
    }
}

/// A lane of group `name` is given back; the group goes with its last lane (and with it any
/// lookup still queued, which then answers 503).
fn give_back(groups: &mut HashMap<String, Group>, name: &str) {
    if let Some(group) = groups.get_mut(name) {
        group.running -= 1;
        if group.running == 0 {
            groups.remove(name);
        }
    }
}

/// Gives a lane back when its lookup ends (also when the request went away), and starts a
/// lane for lookups that queued meanwhile.
struct Lane {
    source: Arc<Source>,
    name: String,
}

impl Drop for Lane {
    fn drop(&mut self) {
        let mut groups = self.source.batches.lock();
        let Some(group) = groups.get_mut(&self.name) else {
            return;
        };
        // The lane passes to the lookups that queued meanwhile (on a runtime: a request
        // dropped while the runtime shuts down has nobody to pass it to).
        if !group.queue.is_empty()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(Arc::clone(&self.source).drive(self.name.clone()));
            return;
        }
        group.running -= 1;
        if group.running == 0 && group.queue.is_empty() {
            groups.remove(&self.name);
        }
    }
}

/// One request of a batch: its key and its own sink, begun when its first row comes.
struct Slot {
    key: BindValue,
    sink: Option<Box<dyn RowSink>>,
    began: bool,
    rows: usize,
    max_rows: usize,
    error: Option<SinkError>,
}

struct Demux {
    slots: Vec<Slot>,
    /// The route's own columns (the batch's without the key in front).
    columns: Vec<ColumnInfo>,
    /// The database ignores the key's trailing spaces when it compares.
    fixed: bool,
    /// Rows whose key matched no request.
    unmatched: usize,
    rows: usize,
}

/// Hands each row of a batch to the requests whose key it carries.
struct BatchSink(Arc<Mutex<Demux>>, Dialect);

impl RowSink for BatchSink {
    fn begin(&mut self, columns: &[ColumnInfo]) -> Result<(), SinkError> {
        let mut d = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        d.columns = columns.get(1..).unwrap_or_default().to_vec();
        // Keys compare with or without trailing spaces, as the database compares them.
        d.fixed = self
            .1
            .pads_trailing_spaces(columns.first().is_some_and(|c| c.fixed));
        if d.fixed {
            for s in &mut d.slots {
                if let BindValue::Text(t) = &mut s.key {
                    let n = t.trim_end_matches(' ').len();
                    t.truncate(n);
                }
            }
        }
        Ok(())
    }

    fn row(&mut self, cells: &[Cell<'_>]) -> Result<(), SinkError> {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let d = &mut *guard;
        d.rows += 1;
        let Some((key, rest)) = cells.split_first() else {
            d.unmatched += 1;
            return Ok(());
        };
        let mut matched = false;
        for slot in &mut d.slots {
            if !same_key(&slot.key, key, d.fixed) {
                continue;
            }
            matched = true;
            if slot.error.is_some() || slot.rows >= slot.max_rows {
                continue;
            }
            let Some(sink) = slot.sink.as_mut() else {
                continue;
            };
            if !slot.began {
                slot.began = true;
                if let Err(e) = sink.begin(&d.columns) {
                    slot.error = Some(e);
                    continue;
                }
            }
            match sink.row(rest) {
                Ok(()) => slot.rows += 1,
                Err(e) => slot.error = Some(e),
            }
        }
        if !matched {
            d.unmatched += 1;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> (Vec<u8>, usize) {
        (Vec::new(), 0)
    }
}

/// Whether a stored key is the value a request bound: integers by value (whatever the
/// column's type), text byte for byte (a CHAR column's padding trimmed; anything the
/// database's collation calls equal beyond that runs alone).
// Exact float equality is what the database's `=` does.
#[allow(clippy::float_cmp)]
fn same_key(bound: &BindValue, stored: &Cell<'_>, fixed: bool) -> bool {
    match (bound, stored) {
        (BindValue::Int(b), Cell::Int(s)) => b == s,
        (BindValue::Int(b), Cell::Decimal { digits, scale }) => {
            i128::from(*b).checked_mul(10i128.pow(u32::from(*scale))) == Some(*digits)
        }
        (BindValue::Int(b), Cell::Text(t)) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| integer_text(t.trim()))
            .is_some_and(|s| s == *b),
        (BindValue::Float(b), Cell::Float(s)) => b == s,
        (BindValue::Float(b), Cell::Text(t)) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| t.trim().parse::<f64>().ok())
            .is_some_and(|s| s == *b),
        (BindValue::Text(b), Cell::Text(t)) if fixed => {
            let n = t.iter().rposition(|c| *c != b' ').map_or(0, |i| i + 1);
            b.as_bytes() == &t[..n]
        }
        (BindValue::Text(b), Cell::Text(t)) => b.as_bytes() == *t,
        _ => false,
    }
}

/// An integer written as text, also with a zero fraction (`100001.000`, how drivers write a
/// NUMERIC(p, s) key).
fn integer_text(t: &str) -> Option<i64> {
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    frac.bytes()
        .all(|c| c == b'0')
        .then(|| whole.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_as_the_database_compares_them() {
        let int = |v: i64, c: &Cell<'_>| same_key(&BindValue::Int(v), c, false);
        assert!(int(7, &Cell::Text(b"7")));
        assert!(int(7, &Cell::Text(b" 7.000")));
        assert!(!int(7, &Cell::Text(b"7.5")));
        assert!(!int(7, &Cell::Text(b"70")));
        assert!(int(-7, &Cell::Int(-7)));
        let decimal = Cell::Decimal {
            digits: 1200,
            scale: 2,
        };
        assert!(int(12, &decimal));
        let text =
            |v: &str, c: &[u8], fixed| same_key(&BindValue::Text(v.into()), &Cell::Text(c), fixed);
        assert!(text("AB", b"AB  ", true), "CHAR padding");
        assert!(!text("AB", b"AB  ", false), "VARCHAR keeps its spaces");
        assert!(text("AB", b"AB", false));
        assert!(!text("AB", b"ab", true));
        assert!(!text("AB", b"ABC", true));
        assert!(!same_key(
            &BindValue::Null(crate::codec::BindKind::Int),
            &Cell::Null,
            false
        ));
    }
}
