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
    counts: HashMap<Key, usize>,
    pub(super) set: Arc<BTreeSet<Key>>,
}

impl CountedSet {
    fn add(&mut self, keys: &[Key]) {
        for key in keys {
            match self.counts.get_mut(key) {
                Some(count) => *count += 1,
                None => {
                    self.counts.insert(key.clone(), 1);
                    Arc::make_mut(&mut self.set).insert(key.clone());
                }
            }
        }
    }

    fn remove(&mut self, keys: &[Key]) {
        for key in keys {
            let Some(count) = self.counts.get_mut(key) else { continue };
            *count -= 1;
            if *count == 0 {
                self.counts.remove(key);
                Arc::make_mut(&mut self.set).remove(key);
            }
        }
    }
}
