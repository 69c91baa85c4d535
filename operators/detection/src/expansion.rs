//! What a rule expands to when compiled, bounded before compiling: the `windash` modifier
//! turns each `-` of a value into five characters, so variants grow as 5^dashes.

use std::iter::Sum;

use rsigma_parser::{Detection, DetectionItem, Detections, Modifier, SigmaValue};

/// The most text one rule or filter may expand to through `windash`. Real rules need well
/// under a kilobyte (the shared corpus's worst is 15 variants); eight dashes in one value are
/// 390,625 variants, and six such values took a release build 46 s and gigabytes to compile: a
/// rule posted to a backtest or a reload could hold a core that long.
pub const MAX_WINDASH_BYTES: u64 = 64 * 1024;

/// The `windash` variants of a rule's values and their length in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Values the compiler makes.
    pub variants: u64,
    /// Their bytes, summed.
    pub bytes: u64,
}

impl Sum for Expansion {
    fn sum<I: Iterator<Item = Expansion>>(parts: I) -> Expansion {
        parts.fold(Expansion::default(), |total, part| Expansion {
            variants: total.variants.saturating_add(part.variants),
            bytes: total.bytes.saturating_add(part.bytes),
        })
    }
}

/// What every `windash` value in `detections` expands to, counted as the compiler expands it.
pub fn windash_expansion(detections: &Detections) -> Expansion {
    detections.named.values().map(detection_expansion).sum()
}

fn detection_expansion(detection: &Detection) -> Expansion {
    match detection {
        Detection::AllOf(items) => items.iter().map(item_expansion).sum(),
        Detection::AnyOf(nested) | Detection::And(nested) => nested.iter().map(detection_expansion).sum(),
        Detection::ArrayMatch { body, .. } => detection_expansion(body),
        Detection::Conditional { named, .. } => named.values().map(detection_expansion).sum(),
        Detection::Keywords(_) => Expansion::default(),
    }
}

fn item_expansion(item: &DetectionItem) -> Expansion {
    if !item.field.has_modifier(Modifier::WindAsh) {
        return Expansion::default();
    }
    item.values
        .iter()
        .filter_map(|value| match value {
            SigmaValue::String(text) => Some(&text.original),
            _ => None,
        })
        .map(|text| {
            let dashes = text.matches('-').count().min(u32::MAX as usize) as u32;
            let variants = 5u64.saturating_pow(dashes);
            Expansion { variants, bytes: variants.saturating_mul(text.len() as u64) }
        })
        .sum()
}
