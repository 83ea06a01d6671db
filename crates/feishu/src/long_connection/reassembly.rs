//! Reassembly of payloads the server splits over several data frames
//! (docs/long-connection.md, "Fragments"): fragments of one message share its
//! `message_id`; the payload is their bytes joined in `seq` order (a cut may fall inside a
//! UTF-8 character, so no fragment is ever read as text). Memory is bounded: at most `max_sum`
//! fragments a message, `max_bytes` a message, `max_partial` messages waiting, each for at
//! most `ttl` after its last fragment. A message that does not complete is dropped without an
//! acknowledgement, and the server pushes it again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::frame::{DataHeaders, Frame};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub ttl: Duration,
    pub max_sum: u32,
    pub max_bytes: usize,
    pub max_partial: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            max_sum: 64,
            max_bytes: 4 << 20,
            max_partial: 64,
        }
    }
}

/// Why a fragment was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FragmentError {
    #[error("fragment {seq} of a message in {sum}")]
    SeqOutOfRange { seq: u32, sum: u32 },
    #[error("a message in {sum} fragments (at most {max})")]
    TooManyFragments { sum: u32, max: u32 },
    #[error("a message of more than {max} bytes")]
    TooLarge { max: usize },
    #[error("fragment {seq} says the message has {sum} fragments, an earlier one {had}")]
    SumChanged { seq: u32, sum: u32, had: u32 },
}

struct Partial {
    parts: Vec<Option<Vec<u8>>>,
    filled: usize,
    bytes: usize,
    last: Instant,
}

/// The messages waiting for fragments, by `message_id`.
#[derive(Default)]
pub struct Reassembly {
    limits: Limits,
    partial: HashMap<String, Partial>,
}

/// A complete message: the frame that completed it (the acknowledgement is built from it)
/// and the whole payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete {
    pub frame: Frame,
    pub payload: Vec<u8>,
}

impl Reassembly {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            partial: HashMap::new(),
        }
    }

    /// Messages waiting for fragments.
    pub fn waiting(&self) -> usize {
        self.partial.len()
    }

    /// Takes a data frame; returns the message once its last fragment is in. A repeated
    /// fragment is ignored.
    pub fn push(
        &mut self,
        mut frame: Frame,
        headers: &DataHeaders,
        now: Instant,
    ) -> Result<Option<Complete>, FragmentError> {
        self.expire(now);
        let (sum, seq) = (headers.sum, headers.seq);
        if seq >= sum {
            return Err(FragmentError::SeqOutOfRange { seq, sum });
        }
        let payload = frame.payload.take().unwrap_or_default();
        if payload.len() > self.limits.max_bytes {
            return Err(FragmentError::TooLarge {
                max: self.limits.max_bytes,
            });
        }
        if sum == 1 {
            return Ok(Some(Complete { frame, payload }));
        }
        if sum > self.limits.max_sum {
            return Err(FragmentError::TooManyFragments {
                sum,
                max: self.limits.max_sum,
            });
        }
        if !self.partial.contains_key(&headers.message_id)
            && self.partial.len() >= self.limits.max_partial
        {
            // The oldest waiting message gives way: it is likely the one that lost a fragment.
            if let Some(oldest) = self
                .partial
                .iter()
                .min_by_key(|(_, p)| p.last)
                .map(|(id, _)| id.clone())
            {
                self.partial.remove(&oldest);
            }
        }
        let entry = self
            .partial
            .entry(headers.message_id.clone())
            .or_insert_with(|| Partial {
                parts: vec![None; sum as usize],
                filled: 0,
                bytes: 0,
                last: now,
            });
        if entry.parts.len() != sum as usize {
            let had = entry.parts.len() as u32;
            return Err(FragmentError::SumChanged { seq, sum, had });
        }
        entry.last = now;
        let slot = &mut entry.parts[seq as usize];
        if slot.is_some() {
            return Ok(None);
        }
        if entry.bytes + payload.len() > self.limits.max_bytes {
            self.partial.remove(&headers.message_id);
            return Err(FragmentError::TooLarge {
                max: self.limits.max_bytes,
            });
        }
        entry.bytes += payload.len();
        *slot = Some(payload);
        entry.filled += 1;
        if entry.filled < entry.parts.len() {
            return Ok(None);
        }
        let done = self
            .partial
            .remove(&headers.message_id)
            .map(|p| p.parts.into_iter().flatten().flatten().collect())
            .unwrap_or_default();
        Ok(Some(Complete {
            frame,
            payload: done,
        }))
    }

    /// Drops the messages whose last fragment is older than the limit's TTL.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.limits.ttl;
        self.partial
            .retain(|_, p| now.saturating_duration_since(p.last) < ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::long_connection::vectors as v;

    fn push(r: &mut Reassembly, frame: Frame, now: Instant) -> Option<Complete> {
        let headers = frame.data_headers().unwrap();
        r.push(frame, &headers, now).unwrap()
    }

    #[test]
    fn the_split_vector_joins_bytes_cut_inside_a_character() {
        let [first, second] = v::split_event_frames();
        assert_eq!(prost::Message::encoded_len(&first), 544);
        assert_eq!(prost::Message::encoded_len(&second), 354);
        // The cut falls inside a character: the first fragment alone is not UTF-8.
        assert!(std::str::from_utf8(first.payload.as_deref().unwrap()).is_err());
        let now = Instant::now();
        let mut r = Reassembly::default();
        assert_eq!(push(&mut r, first, now), None);
        assert_eq!(r.waiting(), 1);
        let done = push(&mut r, second.clone(), now).unwrap();
        assert_eq!(done.payload, v::EVENT_PAYLOAD.as_bytes());
        // Acknowledged from the fragment that completed it.
        assert_eq!(done.frame.seq_id, 302);
        assert_eq!(done.frame.header("seq"), Some("1"));
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn fragments_in_any_order_repeats_ignored() {
        let [first, second] = v::split_event_frames();
        let now = Instant::now();
        let mut r = Reassembly::default();
        assert_eq!(push(&mut r, second.clone(), now), None);
        assert_eq!(push(&mut r, second, now), None, "a repeat");
        let done = push(&mut r, first, now).unwrap();
        assert_eq!(done.payload, v::EVENT_PAYLOAD.as_bytes());
        assert_eq!(done.frame.seq_id, 301);
    }

    #[test]
    fn a_message_missing_a_fragment_expires() {
        let [first, second] = v::split_event_frames();
        let now = Instant::now();
        let mut r = Reassembly::new(Limits {
            ttl: Duration::from_secs(5),
            ..Limits::default()
        });
        assert_eq!(push(&mut r, first, now), None);
        // Too late: the first fragment was dropped, this one waits alone.
        assert_eq!(push(&mut r, second, now + Duration::from_secs(6)), None);
        assert_eq!(r.waiting(), 1);
    }

    #[test]
    fn limits_bound_memory() {
        let [first, _] = v::split_event_frames();
        let now = Instant::now();
        let headers = first.data_headers().unwrap();
        let mut r = Reassembly::new(Limits {
            max_sum: 1,
            ..Limits::default()
        });
        assert!(matches!(
            r.push(first.clone(), &headers, now),
            Err(FragmentError::TooManyFragments { sum: 2, max: 1 })
        ));
        let mut r = Reassembly::new(Limits {
            max_bytes: 100,
            ..Limits::default()
        });
        assert!(matches!(
            r.push(first.clone(), &headers, now),
            Err(FragmentError::TooLarge { max: 100 })
        ));
        let mut bad = headers.clone();
        bad.seq = 2;
        assert!(matches!(
            Reassembly::default().push(first.clone(), &bad, now),
            Err(FragmentError::SeqOutOfRange { seq: 2, sum: 2 })
        ));
        // At most `max_partial` messages wait; the oldest gives way.
        let mut r = Reassembly::new(Limits {
            max_partial: 2,
            ..Limits::default()
        });
        for (n, id) in ["a", "b", "c"].into_iter().enumerate() {
            let mut h = headers.clone();
            h.message_id = id.into();
            let at = now + Duration::from_millis(n as u64);
            assert_eq!(r.push(first.clone(), &h, at), Ok(None));
        }
        assert_eq!(r.waiting(), 2);
    }
}
