//! [`SmallSet`]: a set that holds one element without a table of its own.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, RandomState};

/// A set for indexes where most entries hold one element (the Ingresses naming a Service, the
/// Ingresses that read an object): one element is kept inline, a second one moves them to a
/// hash set, so a popular entry still inserts and removes in constant time. At 10,000
/// Ingresses, a `HashSet` per entry of one took about 200 bytes more per entry than this.
#[derive(Debug, Clone, Default)]
pub enum SmallSet<T, S = RandomState> {
    /// No element.
    #[default]
    Empty,
    /// One element.
    One(T),
    /// More than one element (or one, after removals; none leaves [`SmallSet::Empty`]).
    Many(HashSet<T, S>),
}

impl<T: Hash + Eq, S: BuildHasher + Default> SmallSet<T, S> {
    /// Adds `value`; `false` when it was there already.
    pub fn insert(&mut self, value: T) -> bool {
        match self {
            Self::Empty => {
                *self = Self::One(value);
                true
            }
            Self::One(one) if *one == value => false,
            Self::One(_) => {
                let Self::One(one) = std::mem::take(self) else { return false };
                let mut many = HashSet::with_capacity_and_hasher(2, S::default());
                many.insert(one);
                many.insert(value);
                *self = Self::Many(many);
                true
            }
            Self::Many(many) => many.insert(value),
        }
    }

    /// Takes `value` out; `false` when it was not there.
    pub fn remove<Q>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Self::Empty => false,
            Self::One(one) if (*one).borrow() == value => {
                *self = Self::Empty;
                true
            }
            Self::One(_) => false,
            Self::Many(many) => {
                let removed = many.remove(value);
                if many.is_empty() {
                    *self = Self::Empty;
                }
                removed
            }
        }
    }
}

impl<T, S> SmallSet<T, S> {
    /// Whether it holds no element.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::One(_) => false,
            Self::Many(many) => many.is_empty(),
        }
    }

    /// The elements, in no particular order.
    pub fn iter(&self) -> SmallSetIter<'_, T> {
        SmallSetIter(match self {
            Self::Empty => Inner::Done,
            Self::One(one) => Inner::One(one),
            Self::Many(many) => Inner::Many(many.iter()),
        })
    }
}

/// The elements of a [`SmallSet`], in no particular order.
#[derive(Debug, Clone)]
pub struct SmallSetIter<'a, T>(Inner<'a, T>);

#[derive(Debug, Clone)]
enum Inner<'a, T> {
    Done,
    One(&'a T),
    Many(std::collections::hash_set::Iter<'a, T>),
}

impl<'a, T> Iterator for SmallSetIter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        match &mut self.0 {
            Inner::Done => None,
            Inner::One(one) => {
                let one = *one;
                self.0 = Inner::Done;
                Some(one)
            }
            Inner::Many(many) => many.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            Inner::Done => (0, Some(0)),
            Inner::One(_) => (1, Some(1)),
            Inner::Many(many) => many.size_hint(),
        }
    }
}

impl<'a, T, S> IntoIterator for &'a SmallSet<T, S> {
    type Item = &'a T;
    type IntoIter = SmallSetIter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::SmallSet;

    #[test]
    fn holds_each_element_once_inline_then_in_a_table() {
        let mut set: SmallSet<String> = SmallSet::default();
        assert!(set.is_empty() && set.iter().next().is_none());
        assert!(set.insert("a".into()));
        assert!(!set.insert("a".into()), "already there");
        assert!(matches!(set, SmallSet::One(_)));
        assert_eq!((set.iter().size_hint(), set.iter().count()), ((1, Some(1)), 1));
        assert!(set.insert("b".into()));
        assert!(matches!(set, SmallSet::Many(_)));
        let mut seen: Vec<&String> = set.iter().collect();
        seen.sort();
        assert_eq!(seen, ["a", "b"]);
        assert!(!set.remove("c"));
        assert!(set.remove("a") && set.remove("b"));
        assert!(matches!(set, SmallSet::Empty), "an empty table is let go");
        assert!(set.insert("c".into()));
        assert!(set.remove("c") && set.is_empty() && matches!(set, SmallSet::Empty));
        assert!(!set.remove("c"));
    }

    #[test]
    fn a_popular_entry_inserts_and_removes_in_constant_time() {
        // 100,000 inserts and removals: quadratic work would take minutes.
        let mut set: SmallSet<u32> = SmallSet::default();
        for i in 0..100_000 {
            assert!(set.insert(i));
        }
        assert_eq!(set.iter().count(), 100_000);
        for i in 0..100_000 {
            assert!(set.remove(&i));
        }
        assert!(set.is_empty());
    }
}
