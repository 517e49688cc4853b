//! Who may see a log entry: the feed's role filtering, computed once per entry, in `seq` order,
//! when the entry is appended (docs/feed-protocol.md, "Visibility").
//!
//! The result of [`Visibility::route`] is the entry's *audience*: the iAdvize operator ids whose
//! advisors receive it, and among them those whose advisors also get the `related` bundle (the
//! evidence stored before a push). Supervisors receive every entry and need no audience. The store
//! persists the audience beside the entry, so a desk resuming from any `after` gets exactly what a
//! desk connected all along got: visibility depends on the log, never on when a desk connected.
//!
//! Must not: do I/O or read the clock; depend on anything but the entries routed before (in
//! `seq` order).

use std::collections::{BTreeSet, HashMap};

/// The event types that move a conversation between operators.
pub use lockdesk_feed::payload::{CLOSED, PUSHED};

/// The routing fields of one entry (the store's routing columns).
#[derive(Clone, Copy, Debug)]
pub struct RoutingFields<'a> {
    pub is_evidence: bool,
    pub event_type: Option<&'a str>,
    pub conversation_id: Option<&'a str>,
    pub visitor_id: Option<&'a str>,
    pub operator_ids: &'a [u64],
}

/// Whose advisors receive an entry. Both lists are sorted and without duplicates;
/// `related` ⊆ `operators`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audience {
    pub operators: Vec<u64>,
    /// The operators a `v2.conversation.pushed` was pushed to: their advisors get the visitor's
    /// earlier evidence bundled with the push.
    pub related: Vec<u64>,
}

/// What [`Visibility::route_reading`] read of the state to route a run of entries: the
/// conversations whose operators or visitor it looked up, the visitors whose open conversations it
/// looked up, and those conversations (as they stood then). An entry routed on a copy of the
/// state is routed as on the current state when none of these changed in between (the
/// PostgreSQL store's one-round-trip group checks exactly that under its lock).
#[derive(Clone, Debug, Default)]
pub struct Reads {
    pub conversations: BTreeSet<String>,
    pub visitors: BTreeSet<String>,
}

/// `id`, first added to the set of `reads` that `set` picks when reads are kept (allocating only
/// when it is new): a lookup is recorded whether or not it finds anything.
fn noted<'i>(
    id: Option<&'i str>,
    reads: &mut Option<&mut Reads>,
    set: fn(&mut Reads) -> &mut BTreeSet<String>,
) -> Option<&'i str> {
    let id = id?;
    if let Some(r) = reads.as_deref_mut() {
        let set = set(r);
        if !set.contains(id) {
            set.insert(id.to_owned());
        }
    }
    Some(id)
}

#[derive(Clone, Debug)]
struct Conversation {
    owners: Vec<u64>,
    visitor: Option<String>,
}

/// The open conversations, their current operators and visitors, as of the last routed entry.
/// Closed conversations are forgotten.
#[derive(Clone, Debug, Default)]
pub struct Visibility {
    conversations: HashMap<String, Conversation>,
    /// visitor id -> that visitor's open conversations.
    visitors: HashMap<String, BTreeSet<String>>,
}

impl Visibility {
    /// Open conversations tracked (for metrics and tests).
    pub fn open_conversations(&self) -> usize {
        self.conversations.len()
    }

    /// A conversation's current operators and visitor, when it is open (a shared store keeps
    /// the open conversations in a table and writes back the one an entry changed).
    pub fn conversation(&self, id: &str) -> Option<(&[u64], Option<&str>)> {
        self.conversations
            .get(id)
            .map(|c| (c.owners.as_slice(), c.visitor.as_deref()))
    }

    /// Rebuilds the state from the open conversations as stored (`owners` sorted, without
    /// duplicates, as [`Visibility::conversation`] returns them).
    pub fn restore(open: impl IntoIterator<Item = (String, Vec<u64>, Option<String>)>) -> Self {
        let mut vis = Visibility::default();
        for (id, owners, visitor) in open {
            vis.set_open(id, owners, visitor);
        }
        vis
    }

    /// Sets an open conversation as stored (`owners` sorted, without duplicates): a shared store
    /// applying what another instance changed since its copy was valid.
    pub fn set_open(&mut self, id: String, owners: Vec<u64>, visitor: Option<String>) {
        self.forget(&id);
        if let Some(v) = &visitor {
            self.visitors
                .entry(v.clone())
                .or_default()
                .insert(id.clone());
        }
        self.conversations
            .insert(id, Conversation { owners, visitor });
    }

    /// Forgets a conversation another instance closed (nothing when it is not open).
    pub fn set_closed(&mut self, id: &str) {
        self.forget(id);
    }

    fn owners_of_conversation(
        &self,
        id: Option<&str>,
        into: &mut BTreeSet<u64>,
        reads: &mut Option<&mut Reads>,
    ) {
        let Some(id) = noted(id, reads, |r| &mut r.conversations) else {
            return;
        };
        if let Some(c) = self.conversations.get(id) {
            into.extend(c.owners.iter().copied());
        }
    }

    fn owners_of_visitor(
        &self,
        id: Option<&str>,
        into: &mut BTreeSet<u64>,
        reads: &mut Option<&mut Reads>,
    ) {
        let Some(id) = noted(id, reads, |r| &mut r.visitors) else {
            return;
        };
        if let Some(convs) = self.visitors.get(id) {
            for c in convs {
                self.owners_of_conversation(Some(c), into, reads);
            }
        }
    }

    fn forget(&mut self, conversation: &str) {
        if let Some(old) = self.conversations.remove(conversation) {
            if let Some(v) = old.visitor {
                if let Some(set) = self.visitors.get_mut(&v) {
                    set.remove(conversation);
                    if set.is_empty() {
                        self.visitors.remove(&v);
                    }
                }
            }
        }
    }

    /// The audience of the next entry of the log, and the state after it.
    ///
    /// - `v2.conversation.pushed` (conversation `c` to operator(s) `o`): the previous operators of
    ///   `c` (a transfer out is the last event they get about it) and `o`, who also get the
    ///   `related` bundle; `c` is now `o`'s.
    /// - `v2.conversation.closed`: the operators of `c` and those the event names; `c` is
    ///   forgotten.
    /// - any other webhook: the operators it names (`operatorId(s)`), the operators of its
    ///   conversation, and the operators of its visitor's open conversations (`visitor.updated`).
    /// - evidence: the operators of its visitor's open conversations and of its conversation.
    pub fn route(&mut self, e: RoutingFields<'_>) -> Audience {
        self.route_reading(e, None)
    }

    /// [`Visibility::route`], adding to `reads` what of the state the audience and the new
    /// state depend on: the entry's conversation (a push also keeps its visitor), and for
    /// evidence and other webhooks its visitor and that visitor's open conversations.
    pub fn route_reading(
        &mut self,
        e: RoutingFields<'_>,
        mut reads: Option<&mut Reads>,
    ) -> Audience {
        let reads = &mut reads;
        let mut operators = BTreeSet::new();
        let mut related = Vec::new();
        if e.is_evidence {
            self.owners_of_visitor(e.visitor_id, &mut operators, reads);
            self.owners_of_conversation(e.conversation_id, &mut operators, reads);
        } else {
            match (e.event_type, e.conversation_id) {
                (Some(PUSHED), Some(c)) if !e.operator_ids.is_empty() => {
                    self.owners_of_conversation(Some(c), &mut operators, reads);
                    operators.extend(e.operator_ids.iter().copied());
                    related = e.operator_ids.to_vec();
                    related.sort_unstable();
                    related.dedup();
                    let visitor = e.visitor_id.map(str::to_owned).or_else(|| {
                        self.conversations
                            .get(c)
                            .and_then(|old| old.visitor.clone())
                    });
                    self.forget(c);
                    if let Some(v) = &visitor {
                        self.visitors
                            .entry(v.clone())
                            .or_default()
                            .insert(c.to_owned());
                    }
                    self.conversations.insert(
                        c.to_owned(),
                        Conversation {
                            owners: related.clone(),
                            visitor,
                        },
                    );
                }
                (Some(CLOSED), Some(c)) => {
                    self.owners_of_conversation(Some(c), &mut operators, reads);
                    operators.extend(e.operator_ids.iter().copied());
                    self.forget(c);
                }
                _ => {
                    operators.extend(e.operator_ids.iter().copied());
                    self.owners_of_conversation(e.conversation_id, &mut operators, reads);
                    self.owners_of_visitor(e.visitor_id, &mut operators, reads);
                }
            }
        }
        Audience {
            operators: operators.into_iter().collect(),
            related,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook<'a>(t: &'a str, c: &'a str, v: &'a str, ops: &'a [u64]) -> RoutingFields<'a> {
        RoutingFields {
            is_evidence: false,
            event_type: Some(t),
            conversation_id: Some(c),
            visitor_id: Some(v),
            operator_ids: ops,
        }
    }

    fn evidence(v: &str) -> RoutingFields<'_> {
        RoutingFields {
            is_evidence: true,
            event_type: None,
            conversation_id: None,
            visitor_id: Some(v),
            operator_ids: &[],
        }
    }

    fn ops(a: &Audience) -> Vec<u64> {
        a.operators.clone()
    }

    #[test]
    fn push_transfer_close_and_evidence() {
        let mut vis = Visibility::default();
        // Evidence before any conversation: nobody's yet (it reaches advisors in `related`).
        assert_eq!(ops(&vis.route(evidence("v1"))), Vec::<u64>::new());
        let push = vis.route(hook(PUSHED, "c1", "v1", &[101]));
        assert_eq!(
            push,
            Audience {
                operators: vec![101],
                related: vec![101]
            }
        );
        assert_eq!(ops(&vis.route(evidence("v1"))), vec![101]);
        assert_eq!(
            ops(&vis.route(hook("visitor.updated", "", "v1", &[999]))),
            vec![101, 999]
        );
        // Transfer to 202: both see the push, only 202 gets the bundle; then only 202.
        let transfer = vis.route(hook(PUSHED, "c1", "v1", &[202]));
        assert_eq!(
            transfer,
            Audience {
                operators: vec![101, 202],
                related: vec![202]
            }
        );
        assert_eq!(ops(&vis.route(evidence("v1"))), vec![202]);
        // Closed names both operators: both get it; afterwards the visitor is nobody's.
        assert_eq!(
            ops(&vis.route(hook(CLOSED, "c1", "v1", &[101, 202]))),
            vec![101, 202]
        );
        assert_eq!(ops(&vis.route(evidence("v1"))), Vec::<u64>::new());
        assert_eq!(vis.open_conversations(), 0);
        // Unknown types reach the operators they name.
        assert_eq!(
            ops(&vis.route(hook("brand.new", "c9", "v9", &[5]))),
            vec![5]
        );
    }

    #[test]
    fn a_state_restored_from_its_open_conversations_routes_alike() {
        let mut vis = Visibility::default();
        vis.route(hook(PUSHED, "a", "v", &[1]));
        vis.route(hook(PUSHED, "b", "v", &[2, 3]));
        vis.route(hook(PUSHED, "a", "v", &[4]));
        vis.route(hook(PUSHED, "c", "w", &[5]));
        vis.route(hook(CLOSED, "c", "w", &[]));
        let open: Vec<_> = ["a", "b", "c"]
            .iter()
            .filter_map(|id| {
                vis.conversation(id)
                    .map(|(o, v)| (id.to_string(), o.to_vec(), v.map(str::to_owned)))
            })
            .collect();
        assert_eq!(open.len(), 2);
        let mut restored = Visibility::restore(open);
        for e in [evidence("v"), evidence("w"), hook(CLOSED, "b", "v", &[])] {
            assert_eq!(restored.route(e), vis.route(e));
        }
        assert_eq!(ops(&restored.route(evidence("v"))), vec![4]);
    }

    #[test]
    fn a_visitor_with_two_conversations() {
        let mut vis = Visibility::default();
        vis.route(hook(PUSHED, "a", "v", &[1]));
        vis.route(hook(PUSHED, "b", "v", &[2]));
        assert_eq!(ops(&vis.route(evidence("v"))), vec![1, 2]);
        vis.route(hook(CLOSED, "a", "v", &[]));
        assert_eq!(ops(&vis.route(evidence("v"))), vec![2]);
        // Evidence naming a conversation reaches its operator even for another visitor id.
        let e = RoutingFields {
            conversation_id: Some("b"),
            ..evidence("other")
        };
        assert_eq!(ops(&vis.route(e)), vec![2]);
    }

    #[test]
    fn route_reading_names_what_the_audience_depends_on() {
        let mut vis = Visibility::default();
        vis.route(hook(PUSHED, "a", "v", &[1]));
        vis.route(hook(PUSHED, "b", "v", &[2]));
        vis.route(hook(PUSHED, "c", "w", &[3]));
        let reads_of = |vis: &mut Visibility, e: RoutingFields<'_>| {
            let mut r = Reads::default();
            vis.route_reading(e, Some(&mut r));
            (
                r.conversations.into_iter().collect::<Vec<_>>(),
                r.visitors.into_iter().collect::<Vec<_>>(),
            )
        };
        // Evidence: its visitor, that visitor's conversations, and the one it names.
        let e = RoutingFields {
            conversation_id: Some("c"),
            ..evidence("v")
        };
        assert_eq!(
            reads_of(&mut vis.clone(), e),
            (vec!["a".into(), "b".into(), "c".into()], vec!["v".into()])
        );
        // A push or a close: its conversation only (the push's visitor is written, not read).
        assert_eq!(
            reads_of(&mut vis.clone(), hook(PUSHED, "a", "w", &[9])),
            (vec!["a".into()], vec![])
        );
        assert_eq!(
            reads_of(&mut vis.clone(), hook(CLOSED, "c", "w", &[])),
            (vec!["c".into()], vec![])
        );
        // Any other webhook: its conversation, its visitor and that visitor's conversations.
        assert_eq!(
            reads_of(&mut vis.clone(), hook("visitor.updated", "x", "w", &[])),
            (vec!["c".into(), "x".into()], vec!["w".into()])
        );
        // Whatever another copy changes outside those reads, the audience is the same.
        let mut other = vis.clone();
        other.route(hook(PUSHED, "c", "w", &[7]));
        other.route(hook(PUSHED, "d", "z", &[8]));
        for e in [
            evidence("v"),
            hook(PUSHED, "a", "w", &[9]),
            hook(CLOSED, "b", "v", &[]),
        ] {
            assert_eq!(other.clone().route(e), vis.clone().route(e));
        }
    }

    #[test]
    fn deltas_bring_a_copy_to_the_same_state() {
        // Instance A routes; instance B's copy was restored before A's entries and catches up
        // with what A changed (set_open / set_closed), as the PostgreSQL store does.
        let mut a = Visibility::default();
        a.route(hook(PUSHED, "a", "v", &[1]));
        a.route(hook(PUSHED, "b", "v", &[2]));
        let mut b = a.clone();
        a.route(hook(PUSHED, "a", "w", &[3, 4]));
        a.route(hook(CLOSED, "b", "v", &[]));
        a.route(hook(PUSHED, "c", "v", &[5]));
        for id in ["a", "c"] {
            let (owners, visitor) = a.conversation(id).unwrap();
            b.set_open(id.into(), owners.to_vec(), visitor.map(str::to_owned));
        }
        b.set_closed("b");
        b.set_closed("never-open");
        assert_eq!(b.open_conversations(), 2);
        // "a" moved from visitor v to w: v's evidence no longer reaches 3 and 4.
        for e in [evidence("v"), evidence("w"), hook(CLOSED, "a", "w", &[])] {
            assert_eq!(b.route(e), a.route(e));
        }
        assert_eq!(ops(&b.route(evidence("v"))), vec![5]);
        assert!(b.route(evidence("w")).operators.is_empty());
    }
}
