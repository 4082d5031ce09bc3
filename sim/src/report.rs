//! How the fakes fail a test: one panic listing every item.

use std::fmt::Display;

/// Panics with `heading` and one item per line unless `items` is empty.
pub(crate) fn assert_none<T: Display>(heading: &str, items: &[T]) {
    assert!(
        items.is_empty(),
        "{heading}:\n  {}",
        items
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}
