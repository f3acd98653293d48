//! The translation's sets (used and referenced Services, Secrets, ConfigMaps), counted per
//! name over the Ingresses that add them, so one Ingress translated again or gone takes back
//! what it added without the others being visited.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::objects::Key;
use crate::translate::ingress::Names;

/// The four sets of a [`Translation`](crate::Translation), each a count per name so that an
/// Ingress translated again, or gone, takes back what it added.
#[derive(Debug, Default)]
pub(super) struct Sets {
    pub(super) referenced_config_maps: CountedSet,
    pub(super) referenced_secrets: CountedSet,
    pub(super) used_services: CountedSet,
    pub(super) used_secrets: CountedSet,
}

impl Sets {
    /// Counts in what one Ingress (or the controller settings) names.
    pub(super) fn add(&mut self, names: &Names) {
        self.referenced_config_maps.add(&names.referenced_config_maps);
        self.referenced_secrets.add(&names.referenced_secrets);
        self.used_services.add(&names.used_services);
        self.used_secrets.add(&names.used_secrets);
    }

    /// Takes back what [`add`](Self::add) counted in.
    pub(super) fn remove(&mut self, names: &Names) {
        self.referenced_config_maps.remove(&names.referenced_config_maps);
        self.referenced_secrets.remove(&names.referenced_secrets);
        self.used_services.remove(&names.used_services);
        self.used_secrets.remove(&names.used_secrets);
    }
}

/// A set whose names are counted: a name leaves the set when its count drops to zero. The set
/// is shared with translations, and copied only when it changes while one holds it.
#[derive(Debug, Default)]
pub(super) struct CountedSet {
    /// How many times each name in `set` was added beyond the first, for names added more
    /// than once only: most names (a Service, a TLS Secret) have one Ingress naming them, and
    /// are then kept once, in `set`.
    more: HashMap<Key, usize>,
    pub(super) set: Arc<BTreeSet<Key>>,
}

impl CountedSet {
    fn add(&mut self, keys: &[Key]) {
        for key in keys {
            if let Some(more) = self.more.get_mut(key) {
                *more += 1;
            } else if self.set.contains(key) {
                self.more.insert(key.clone(), 1);
            } else {
                Arc::make_mut(&mut self.set).insert(key.clone());
            }
        }
    }

    fn remove(&mut self, keys: &[Key]) {
        for key in keys {
            match self.more.get_mut(key) {
                Some(1) => drop(self.more.remove(key)),
                Some(more) => *more -= 1,
                None if self.set.contains(key) => drop(Arc::make_mut(&mut self.set).remove(key)),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CountedSet;

    #[test]
    fn a_name_leaves_when_the_last_of_those_who_added_it_takes_it_back() {
        let key = |n: &str| -> crate::objects::Key { ("ns".into(), n.into()) };
        let mut set = CountedSet::default();
        set.add(&[key("a"), key("b")]);
        set.add(&[key("a")]);
        set.add(&[key("a")]);
        assert_eq!(set.set.len(), 2);
        assert_eq!(set.more.len(), 1, "only a name added more than once is counted");
        set.remove(&[key("a"), key("b"), key("c")]);
        assert!(set.set.contains(&key("a")) && !set.set.contains(&key("b")));
        set.remove(&[key("a")]);
        assert!(set.set.contains(&key("a")) && set.more.is_empty());
        set.remove(&[key("a")]);
        assert!(set.set.is_empty() && set.more.is_empty());
        set.remove(&[key("a")]);
        assert!(set.set.is_empty(), "taking back what is not there changes nothing");
    }
}
