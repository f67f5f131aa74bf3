//! From text to groups of adjacent atoms: scan with every rule, keep the
//! leftmost-longest non-overlapping atoms, group neighbours into
//! `[marker] [date] [time] [marker]`.

use super::atoms::{DateSpec, DurUnit, Item, Made, TimeSpec};
use super::{en, zh};

#[derive(Debug, Clone)]
pub(super) struct Atom {
    start: usize,
    end: usize,
    made: Made,
}

pub(super) fn scan(text: &str) -> Vec<Atom> {
    let mut atoms = Vec::new();
    for rule in zh::rules().iter().chain(en::rules().iter()) {
        for caps in rule.re.captures_iter(text) {
            let m = caps.get(0).expect("group 0");
            if m.is_empty() {
                continue;
            }
            if let Some(made) = (rule.make)(&caps, &text[m.end()..]) {
                atoms.push(Atom {
                    start: m.start(),
                    end: m.end(),
                    made,
                });
            }
        }
    }
    atoms
}

/// Leftmost, then longest, non-overlapping.
pub(super) fn select(mut atoms: Vec<Atom>) -> Vec<Atom> {
    atoms.sort_by_key(|a| (a.start, std::cmp::Reverse(a.end)));
    let mut out: Vec<Atom> = Vec::new();
    for mut atom in atoms {
        if let Some(last) = out.last()
            && atom.start < last.end
        {
            // "今晚8点": the time rule matched "晚8点"; keep its "8点".
            match &mut atom.made.item {
                Item::Time(TimeSpec::At { pod, .. }) if pod.is_some() && atom.end > last.end => {
                    *pod = None;
                    atom.start = last.end;
                }
                _ => continue,
            }
        }
        out.push(atom);
    }
    out
}

#[derive(Debug, Default, Clone)]
pub(super) struct Group {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) before: bool,
    pub(super) after: bool,
    pub(super) deadline: bool,
    pub(super) date: Option<DateSpec>,
    pub(super) time: Option<TimeSpec>,
    pub(super) duration: Option<(i64, DurUnit)>,
    pub(super) special: Option<Item>,
    pub(super) strong: bool,
    pub(super) members: usize,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.members == 0
    }
    fn add(&mut self, atom: &Atom) {
        if self.members == 0 {
            self.start = atom.start;
        }
        self.end = atom.end;
        self.members += 1;
        self.deadline |= atom.made.deadline;
        if !atom.made.weak && !matches!(atom.made.item, Item::Before | Item::After) {
            self.strong = true;
        }
    }
    fn has_value(&self) -> bool {
        self.date.is_some() || self.time.is_some() || self.duration.is_some()
    }
}

fn gap_joins(gap: &str) -> bool {
    matches!(gap.trim(), "" | "的" | ",")
}

/// "周四上午可以吗，十点", "tomorrow morning works? say ten o'clock": a bare
/// hour said just after a part of the day, across a short question, sets
/// that part of the day's hour.
fn hour_follows_part_of_day(g: &Group, atom: &Atom, gap: &str) -> bool {
    matches!(g.time, Some(TimeSpec::Pod(_)))
        && matches!(atom.made.item, Item::Time(TimeSpec::At { pod: None, .. }))
        && gap.chars().count() <= 8
        && !gap.contains(['。', '！', '!', '.', '\n', '不', '没'])
}

pub(super) fn group(text: &str, atoms: Vec<Atom>) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut cur = Group::default();
    for atom in atoms {
        let gap = &text[cur.end..atom.start];
        if !cur.is_empty() && !gap_joins(gap) && !hour_follows_part_of_day(&cur, &atom, gap) {
            groups.push(std::mem::take(&mut cur));
        }
        // Try to add to the current group; otherwise start a new one.
        for attempt in 0..2 {
            if attempt == 1 {
                groups.push(std::mem::take(&mut cur));
            }
            if try_add(&mut cur, &atom) {
                break;
            }
        }
    }
    groups.push(cur);
    groups
        .into_iter()
        .filter(|g| g.special.is_some() || (g.has_value() && (g.strong || g.before || g.after)))
        .collect()
}

fn try_add(g: &mut Group, atom: &Atom) -> bool {
    if g.special.is_some() || g.after {
        return false;
    }
    match &atom.made.item {
        Item::Before => {
            if !g.is_empty() {
                return false;
            }
            g.before = true;
        }
        Item::After => {
            if !g.has_value() {
                return false;
            }
            g.after = true;
        }
        Item::Date(d) => {
            if g.date.is_some() || g.duration.is_some() {
                return false;
            }
            g.date = Some(*d);
        }
        Item::DateTime(d, t) => {
            if g.date.is_some() || g.time.is_some() || g.duration.is_some() {
                return false;
            }
            g.date = Some(*d);
            g.time = Some(*t);
        }
        Item::Time(t) => {
            if g.duration.is_some() {
                return false;
            }
            match (g.time, *t) {
                (None, _) => g.time = Some(*t),
                // "下午" + "三点", "tomorrow afternoon" + "at 3".
                (
                    Some(TimeSpec::Pod(p)),
                    TimeSpec::At {
                        hour,
                        minute,
                        pod: None,
                    },
                ) => {
                    g.time = Some(TimeSpec::At {
                        hour,
                        minute,
                        pod: Some(p),
                    })
                }
                _ => return false,
            }
        }
        Item::Duration { amount, unit } => {
            if g.has_value() {
                return false;
            }
            g.duration = Some((*amount, *unit));
        }
        Item::Asap | Item::Unresolved(_) => {
            if g.has_value() {
                return false;
            }
            g.special = Some(atom.made.item.clone());
        }
    }
    g.add(atom);
    true
}
