//! The hidden files a save writes beside its target (`.NAME.tmp-PID` first, renamed over
//! NAME; `.NAME.lock` while a run saves there), named from NAME but within the file
//! system's limit on one name (255 bytes): a legal NAME near the limit saves like any
//! other. A name that would not fit keeps as much of NAME as fits (cut at a character
//! boundary) and a hash of the whole of it, so two long names never share a hidden file.

use crate::dist::StableHash;

/// The longest file name Linux's file systems take, in bytes.
pub const NAME_MAX: usize = 255;

/// `.NAME` + `suffix`, with `reserve` bytes left for what the caller appends (a process
/// id), within [`NAME_MAX`].
pub fn hidden_beside(name: &str, suffix: &str, reserve: usize) -> String {
    let plain = format!(".{name}{suffix}");
    if plain.len() + reserve <= NAME_MAX {
        return plain;
    }
    let hash = format!("~{:016x}", StableHash::new().bytes(name.as_bytes()).finish());
    let room = NAME_MAX.saturating_sub(1 + hash.len() + suffix.len() + reserve);
    let mut cut = room.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(".{}{hash}{suffix}", &name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_near_the_limit_get_hidden_names_within_it_and_distinct() {
        assert_eq!(hidden_beside("m.st", ".lock", 0), ".m.st.lock");
        for len in [240, 249, 250, 255] {
            let name = "é".repeat(len / 2) + &"m".repeat(len % 2);
            let lock = hidden_beside(&name, ".lock", 0);
            let temp = hidden_beside(&name, ".tmp-", 10) + "4294967295";
            assert!(lock.len() <= NAME_MAX && temp.len() <= NAME_MAX, "{len}");
            let other = hidden_beside(&(name.clone() + "x"), ".lock", 0);
            assert_ne!(lock, other);
        }
    }
}
