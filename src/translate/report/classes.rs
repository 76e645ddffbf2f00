//! GatewayClass statuses: the index's verdict on each class of ours, and
//! the features an accepted class supports.

use std::collections::BTreeMap;

use super::statuses::{GatewayClassStatus, SupportedFeature};
use crate::translate::features;
use crate::translate::index::{ClassModel, GatewayIndex};

/// The status of every class of ours, by name.
pub fn classes(index: &GatewayIndex) -> BTreeMap<String, GatewayClassStatus> {
    index
        .classes
        .iter()
        .map(|(name, class)| (name.clone(), class_status(class)))
        .collect()
}

fn class_status(class: &ClassModel) -> GatewayClassStatus {
    GatewayClassStatus {
        conditions: class.conditions.clone().into_vec(),
        supported_features: if class.accepted() {
            features::SUPPORTED
                .iter()
                .map(|f| SupportedFeature {
                    name: (*f).to_string(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}
