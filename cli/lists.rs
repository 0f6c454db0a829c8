//! Comma-separated flag values (`--policies`, `--depths`): each entry once, so no row of a
//! table or a plot runs twice under the same name.

/// Fails naming `flag` and the first entry listed twice.
pub fn each_once<T: PartialEq + std::fmt::Display>(flag: &str, values: &[T]) -> anyhow::Result<()> {
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            anyhow::bail!("{flag}: '{v}' is listed twice");
        }
    }
    Ok(())
}
